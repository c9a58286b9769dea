"""The ``mlcd`` command: a lazy click group; exit codes from :func:`~mlcd_actions.core.errors.failure`.

Subcommands are imported only when named (click's "Lazily Loading Subcommands"
recipe), and their modules import no pandas, sklearn, mlflow or dvc at module level,
so ``mlcd --help`` stays fast. Every option also reads ``MLCD_<OPTION>`` and
``mlcd.yaml`` (see :mod:`mlcd_actions.core.config`).
"""

from __future__ import annotations

import gc
import importlib
import importlib.util
import os
import sys
from typing import Any

import click

from mlcd_actions import __version__
from mlcd_actions.core import secrets
from mlcd_actions.core.errors import EXIT_USAGE, MlcdError, failure
from mlcd_actions.core.options import Commands, option_spec, with_envvars

# command name -> "module:attribute"; a module not yet present is simply not listed
COMMANDS: dict[str, str] = {
    "init": "mlcd_actions.cli.init:cmd",
    "ingest": "mlcd_actions.cli.ingest:cmd",
    "schema": "mlcd_actions.cli.schema:group",
    "validate": "mlcd_actions.cli.validate:cmd",
    "prepare": "mlcd_actions.cli.prepare:cmd",
    "check-data": "mlcd_actions.cli.check_data:cmd",
    "version-data": "mlcd_actions.cli.version_data:cmd",
    "build-training": "mlcd_actions.cli.build_training:cmd",
    "train": "mlcd_actions.cli.train:cmd",
    "evaluate": "mlcd_actions.cli.evaluate:cmd",
    "check-fairness": "mlcd_actions.cli.check_fairness:cmd",
    "register": "mlcd_actions.cli.register:cmd",
    "build-app": "mlcd_actions.cli.build_app:cmd",
    "deploy": "mlcd_actions.cli.deploy:cmd",
    "smoke-test": "mlcd_actions.cli.smoke_test:cmd",
    "rollback": "mlcd_actions.cli.rollback:cmd",
    "promote": "mlcd_actions.cli.promote:cmd",
    "history": "mlcd_actions.cli.history:cmd",
    "override": "mlcd_actions.cli.override:cmd",
    "predict": "mlcd_actions.cli.predict:cmd",
    "serve": "mlcd_actions.cli.serve:cmd",
    "monitor": "mlcd_actions.cli.monitor:cmd",
    "report": "mlcd_actions.cli.report:cmd",
    "run": "mlcd_actions.cli.run:cmd",
}
class LazyGroup(click.Group):
    def __init__(self, *args: Any, lazy: dict[str, str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy = lazy
        self._loaded: dict[str, click.Command] = {}

    def _available(self, name: str) -> bool:
        module = self.lazy[name].split(":")[0]
        return importlib.util.find_spec(module) is not None

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*self.commands, *(n for n in self.lazy if self._available(n))])

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in self.commands:
            return self.commands[name]
        if name not in self.lazy or not self._available(name):
            return None
        if name not in self._loaded:
            module, attr = self.lazy[name].split(":")
            cmd = getattr(importlib.import_module(module), attr)
            self._loaded[name] = with_envvars(cmd)
        return self._loaded[name]


@click.group(cls=LazyGroup, lazy=COMMANDS,
             context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="mlcd")
@click.option("--config", "config_path", envvar="MLCD_CONFIG", type=click.Path(dir_okay=False),
              default=None, help="Config file (default: ./mlcd.yaml when present).")
@click.pass_context
def cli(ctx: click.Context, config_path: str | None) -> None:
    """Continuous delivery for machine learning: one command per pipeline stage.

    Exit codes: 0 passed, 1 a gate failed, 2 usage or configuration error,
    3 an outside service or source failed. The last line on stdout is the verdict.
    """
    argv = (ctx.obj or {}).get("argv", sys.argv[1:])
    if ctx.resilient_parsing or any(a in ("--help", "-h") for a in argv):
        return  # help never fails on a broken config
    from mlcd_actions.core import config

    path = config.find(config_path)
    if path is None:
        return
    cfg = config.load(path)
    ctx.default_map = config.validate(cfg, option_spec(ctx.command, ctx))
    ctx.meta["mlcd.config"] = cfg


def commands() -> Commands:
    """The commands, for library code that runs or validates them (``mlcd run``, ``init``)."""
    return Commands(cli, main)


def _stage_of(args: list[str]) -> str:
    for a in args:
        if not a.startswith("-"):
            return a
    return "cli"


def main(argv: list[str] | None = None) -> int:
    """Entry point. Returns the documented exit code; exits with it when run as ``mlcd``."""
    # MLflow's usage telemetry calls an outside host (none at run time: DESIGN §9) and
    # holds every process that imported mlflow for seconds at exit; CI runners have it off
    # already (CI=true). MLFLOW_DISABLE_TELEMETRY=false keeps it on.
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    code = _main(list(sys.argv[1:] if argv is None else argv))
    if argv is None:
        # the process ends: skip the collector's last pass over every object mlflow,
        # pandas and sklearn made (0.3-0.5 s of CPU at exit); atexit handlers still run
        gc.freeze()
        sys.exit(code)
    return code


# pyspark (pulled in by pandera's optional pyspark backend) warns on import under pandas 3,
# once per import site, on every stage that reads a schema; it says nothing to a mlcd user
_QUIET = (("ignore", r"PySpark does not yet fully support pandas", FutureWarning),)


def _main(args: list[str]) -> int:
    import warnings

    for action, message, category in _QUIET:
        warnings.filterwarnings(action, message=message, category=category)
    try:
        rv = cli.main(args=args, prog_name="mlcd", standalone_mode=False, obj={"argv": args})
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.exceptions.Abort:
        click.echo("mlcd: aborted", err=True)
        return 130
    except click.ClickException as exc:
        # usage errors: click's own line on stderr, the verdict on stdout
        ctx = getattr(exc, "ctx", None)
        stage = " ".join(ctx.command_path.split()[1:]) if ctx else ""
        stage = stage or _stage_of(args)
        message = " ".join(secrets.mask(exc.format_message()).split())
        click.echo(f"Error: {message}", err=True)
        click.echo(f"mlcd {stage}: failed — usage: {message}")
        return EXIT_USAGE if exc.exit_code == 2 else exc.exit_code
    except MlcdError as exc:  # before any stage runs: config, option spec
        code, line = failure(exc)
        click.echo(f"mlcd {_stage_of(args)}: failed — {secrets.mask(line)}")
        return code
    return rv if isinstance(rv, int) else 0
