"""The option spec shared by the ``mlcd`` commands and ``mlcd.yaml`` validation.

Every ``mlcd`` option has one public name (``--model-uri`` -> ``model-uri``): the
``mlcd.yaml`` key, the action input and, upper-cased, the ``MLCD_MODEL_URI`` env var.
:func:`option_spec` turns a click command group into ``{command: {option: validator}}`` for
:func:`mlcd_actions.core.config.validate`.

The library never imports :mod:`mlcd_actions.cli`: whoever calls a library function that
needs the commands (``mlcd run``'s orchestrator, ``mlcd init``'s config check) passes a
:class:`Commands`, which the CLI builds from its click group. Only click is imported here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import click

# options that must not read MLCD_<NAME> (they would collide with CI outputs)
NO_ENVVAR = {"help"}


def option_key(param: click.Parameter) -> str:
    """The public name of a parameter: ``--model-uri`` -> ``model-uri`` (also the mlcd.yaml
    key, the action input and, upper-cased, the ``MLCD_MODEL_URI`` env var)."""
    if isinstance(param, click.Option):
        longs = [o for o in param.opts if o.startswith("--")]
        if longs:
            return longs[0][2:]
    return (param.name or "").replace("_", "-")


def env_name(key: str) -> str:
    return "MLCD_" + key.replace("-", "_").upper()


def with_envvars(cmd: click.Command) -> click.Command:
    """Give every parameter (recursively) the env var ``MLCD_<OPTION>`` unless it has one."""
    for param in cmd.params:
        if param.envvar is None and param.name and param.name not in NO_ENVVAR:
            param.envvar = env_name(option_key(param))
            if isinstance(param, click.Option):
                param.show_envvar = True
    if isinstance(cmd, click.Group):
        for sub in cmd.commands.values():
            with_envvars(sub)
    return cmd


def validator(cmd: click.Command, param: click.Parameter) -> Callable[[Any], Any]:
    """Convert a config value the way click converts the option's value (or raise
    ``ValueError`` with click's message)."""

    def check(value: Any) -> Any:
        ctx = click.Context(cmd)
        if param.multiple or getattr(param, "nargs", 1) == -1:
            values = value if isinstance(value, list) else [value]
            return [param.type.convert(v, param, ctx) for v in values]
        if isinstance(value, (list, dict)):
            raise ValueError(f"expected one value, got a {type(value).__name__}")
        try:
            return param.type.convert(value, param, ctx)
        except click.BadParameter as exc:
            raise ValueError(exc.format_message()) from exc

    check.param_name = param.name  # type: ignore[attr-defined]
    return check


# options that only make sense on the command line, never as mlcd.yaml keys (the config
# cannot name itself; where a run starts is a per-invocation choice)
NOT_CONFIG_KEYS = frozenset({"config_file", "from_"})


def config_params(cmd: click.Command) -> list[click.Parameter]:
    """The parameters of ``cmd`` that mlcd.yaml may set."""
    return [p for p in cmd.params if p.name not in ("help", *NOT_CONFIG_KEYS)]


def option_spec(group: click.Group, ctx: click.Context) -> dict[str, Any]:
    """``{command: {option: validator}}`` for every command, for config validation."""
    spec: dict[str, Any] = {}
    for name in group.list_commands(ctx):
        cmd = group.get_command(ctx, name)
        if isinstance(cmd, click.Group):
            sub_spec: dict[str, Any] = {"__group__": True}
            for sub_name, sub in cmd.commands.items():
                sub_spec[sub_name] = {option_key(p): validator(sub, p)
                                      for p in config_params(sub)}
            spec[name] = sub_spec
        elif cmd is not None:
            spec[name] = {option_key(p): validator(cmd, p) for p in config_params(cmd)}
    return spec


@dataclass(frozen=True)
class Commands:
    """The ``mlcd`` commands as the library sees them: their click definitions (the option
    spec) and how to run one (``invoke(argv) -> exit code``)."""

    group: click.Group
    invoke: Callable[[list[str]], int]

    def context(self) -> click.Context:
        return click.Context(self.group)

    def command(self, name: str) -> click.Command | None:
        return self.group.get_command(self.context(), name)

    def spec(self) -> dict[str, Any]:
        return option_spec(self.group, self.context())
