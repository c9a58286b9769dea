"""``mlcd.yaml``: loading, ``${VAR}`` interpolation, validation with line numbers.

The file mirrors the CLI (DESIGN §2, "one name everywhere")::

    version: 1
    label: approved            # a shared option (GLOBAL_OPTIONS) at the top level applies
                               # to every stage that has it; any other option is per stage
    sensitive: [sex, age_band]
    ingest:                    # a stage section holds options of that stage
      out: .mlcd/data/raw
    validate:
      schema: schema.yaml
    schema:                    # a command group: one section per subcommand
      infer:
        out: schema.yaml

Keys are the CLI option names, kebab-case (``model-uri``); underscores are accepted.
Precedence: command-line option > ``MLCD_<OPTION>`` env var > ``mlcd.yaml`` > default.

``${VAR}`` and ``${VAR:-default}`` are replaced from the environment; every value that
came from the environment is registered as a secret and never printed.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlcd_actions.core import secrets
from mlcd_actions.core.errors import ConfigError

DEFAULT_FILE = "mlcd.yaml"
SCHEMA_VERSION = 1
# top-level keys that are not options; other modules add theirs (``mlcd run`` adds its own)
def _check_spark(value: Any) -> None:
    """``spark: {master: URL, remote: sc://..., conf: {spark.key: value}}`` (see
    mlcd_actions.data.spark.session)."""
    if not isinstance(value, dict):
        raise ValueError("'spark' must be a mapping with 'master', 'remote' and/or 'conf'")
    unknown = [k for k in value if k not in ("master", "remote", "conf")]
    if unknown:
        raise ValueError(f"spark: unknown key '{unknown[0]}' (known: master, remote, conf)")
    if value.get("master") is not None and not isinstance(value["master"], str):
        raise ValueError("spark.master must be a URL such as local[*], yarn or spark://host:7077")
    remote = value.get("remote")
    if remote is not None and not (isinstance(remote, str) and remote.startswith("sc://")):
        raise ValueError("spark.remote must be a Spark Connect URL: sc://host:port")
    conf = value.get("conf")
    if conf is not None:
        if not isinstance(conf, dict):
            raise ValueError("spark.conf must map Spark properties to values")
        for key, item in conf.items():
            if not str(key).startswith("spark."):
                raise ValueError(f"spark.conf: {key!r} is not a Spark property (spark.*)")
            if isinstance(item, (dict, list)):
                raise ValueError(f"spark.conf: {key} must be one value")


RESERVED: dict[str, Callable[[Any], Any] | None] = {
    "version": None,
    "project": None,
    "spark": _check_spark,
}
# options that may sit at the top level (shared by the stages that have them); any other
# option (``threshold``, ``out``...) means different things per stage and must be in a section
GLOBAL_OPTIONS = frozenset({"label", "sensitive", "pos-label", "tracking-uri", "experiment",
                            "name", "report-dir", "docker-host", "id-column", "seed",
                            "engine", "spark-master", "spark-conf"})
_VAR = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::-(?P<default>[^}]*))?\}")


def option_key(name: str) -> str:
    """Normalise a config key or option name to kebab-case."""
    return name.strip().replace("_", "-").lower()


@dataclass
class Config:
    path: Path | None
    data: dict[str, Any] = field(default_factory=dict)
    lines: dict[tuple[str, ...], int] = field(default_factory=dict)

    def line_of(self, *keys: str) -> int | None:
        return self.lines.get(tuple(keys))

    def where(self, *keys: str) -> str:
        line = self.line_of(*keys)
        name = self.path.name if self.path else DEFAULT_FILE
        return f"{name}:{line}" if line else name

    def section(self, name: str) -> dict[str, Any]:
        value = self.data.get(name)
        return value if isinstance(value, dict) else {}

    def get(self, key: str, default: Any = None) -> Any:
        return self.data.get(key, default)


def find(explicit: str | os.PathLike | None = None) -> Path | None:
    """The config file to use: the one named, else ``./mlcd.yaml`` when present."""
    if explicit:
        path = Path(explicit)
        if not path.is_file():
            raise ConfigError(f"config file not found: {path}")
        return path
    path = Path(DEFAULT_FILE)
    return path if path.is_file() else None


def load(path: str | os.PathLike | None) -> Config:
    """Read and interpolate a config file; an absent path gives an empty config."""
    if path is None:
        return Config(None)
    import yaml  # light, and only when a config exists

    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from exc
    lines: dict[tuple[str, ...], int] = {}
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{where}: not valid YAML: {problem}", file=str(path),
                          line=mark.line + 1 if mark else None) from exc
    if node is None:
        return Config(path)
    if not isinstance(node, yaml.MappingNode):
        raise ConfigError(f"{path}:1: the top level must be a mapping of keys to values",
                          file=str(path), line=1)
    _record_lines(node, (), lines)
    data = yaml.safe_load(text) or {}
    cfg = Config(path, {}, lines)
    cfg.data = _interpolate(data, cfg, ())
    version = cfg.data.get("version", SCHEMA_VERSION)
    if version != SCHEMA_VERSION:
        raise ConfigError(f"{cfg.where('version')}: version {version!r} is not supported "
                          f"(this mlcd reads version {SCHEMA_VERSION})",
                          file=str(path), line=cfg.line_of("version"))
    return cfg


def _record_lines(node, prefix: tuple[str, ...], lines: dict) -> None:
    import yaml

    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = (*prefix, str(key_node.value))
            lines[key] = key_node.start_mark.line + 1
            _record_lines(value_node, key, lines)


def _interpolate(value: Any, cfg: Config, keys: tuple[str, ...]) -> Any:
    if isinstance(value, dict):
        return {str(k): _interpolate(v, cfg, (*keys, str(k))) for k, v in value.items()}
    if isinstance(value, list):
        return [_interpolate(v, cfg, keys) for v in value]
    if not isinstance(value, str) or "${" not in value:
        return value

    def sub(m: re.Match) -> str:
        name, default = m["name"], m["default"]
        if name in os.environ:
            secret = os.environ[name]
            secrets.register(secret)
            return secret
        if default is not None:
            return default
        raise ConfigError(f"{cfg.where(*keys)}: ${{{name}}} is not set in the environment",
                          file=str(cfg.path), line=cfg.line_of(*keys))

    return _VAR.sub(sub, value)


Validator = Callable[[Any], Any]


def validate(cfg: Config, commands: Mapping[str, Mapping[str, Validator] | Mapping[str, Any]],
             reserved: Mapping[str, Validator | None] | None = None) -> dict[str, Any]:
    """Check every key and build click's ``default_map``.

    ``commands`` maps a command name to ``{option-name: validator}``, or for a command
    group to ``{subcommand: {option-name: validator}}`` (mark groups with the key
    ``"__group__"``). A validator converts a value or raises ``ValueError``.
    Returns ``{command: {param_name: value}}`` for click.
    """
    reserved = {**RESERVED, **(reserved or {})}
    all_options: dict[str, list[Validator]] = {}
    _collect(commands, all_options)
    errors = _Errors(cfg)
    defaults: dict[str, Any] = {}
    globals_: dict[str, Any] = {}
    for raw_key, value in cfg.data.items():
        key = option_key(raw_key)
        if raw_key in reserved or key in reserved:
            check = reserved.get(raw_key) or reserved.get(key)
            if check is not None:
                try:
                    check(value)
                except ValueError as exc:
                    errors.fail((raw_key,), str(exc))
        elif key in commands:
            _section(raw_key, key, value, commands[key], defaults, errors)
        elif key in all_options and key not in GLOBAL_OPTIONS:
            stage = next((n for n, sp in commands.items()
                          if key in sp or any(isinstance(v, Mapping) and key in v
                                              for v in sp.values())), None)
            example = f" (e.g. {stage}:)" if stage else ""
            errors.fail((raw_key,), f"'{raw_key}' is a per-stage option; put it under the "
                                    f"stage{example}")
        elif key in all_options:
            try:
                for check in all_options[key]:
                    check(value)
                globals_[key] = value
            except ValueError as exc:
                errors.fail((raw_key,), f"{raw_key}: {exc}")
        else:
            choices = [*commands, *all_options, *reserved]
            errors.fail((raw_key,), f"unknown key '{raw_key}'{errors.suggest(key, choices)}")
    errors.raise_any()
    default_map = _default_map(commands, defaults, globals_)
    _source_default(defaults, commands, default_map)
    _spark_defaults(cfg.data.get("spark"), commands, default_map)
    return default_map


def _collect(spec: Mapping, into: dict) -> None:
    """Every option name of every command (and subcommand) -> its validators."""
    for name, val in spec.items():
        if name == "__group__":
            continue
        if isinstance(val, Mapping):
            _collect(val, into)
        else:
            into.setdefault(name, []).append(val)


class _Errors:
    """Every problem in the config, reported together as one ConfigError at the first one."""

    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.messages: list[str] = []
        self.first_line: int | None = None

    def fail(self, keys: tuple[str, ...], message: str) -> None:
        self.messages.append(f"{self.cfg.where(*keys)}: {message}")
        if self.first_line is None:
            self.first_line = self.cfg.line_of(*keys)

    @staticmethod
    def suggest(name: str, choices) -> str:
        close = difflib.get_close_matches(name, list(choices), n=1)
        return f" (did you mean '{close[0]}'?)" if close else ""

    def raise_any(self) -> None:
        errors = self.messages
        if errors:
            more = f" (+{len(errors) - 1} more: {'; '.join(errors[1:])})" if len(errors) > 1 else ""
            raise ConfigError(errors[0] + more, file=str(self.cfg.path), line=self.first_line)


def _section(raw_key: str, key: str, value: Any, spec: Mapping[str, Any],
             defaults: dict[str, Any], errors: _Errors) -> None:
    """A command's section (``train:``), or a group's (``schema: {infer: ...}``)."""
    if not isinstance(value, dict):
        errors.fail((raw_key,), f"'{raw_key}' must be a mapping of {key} options")
        return
    if "__group__" not in spec:
        defaults[key] = _options(value, spec, (raw_key,), errors.fail, errors.suggest)
        return
    for sub_raw, sub_value in value.items():
        sub = option_key(sub_raw)
        if sub not in spec or sub == "__group__":
            errors.fail((raw_key, sub_raw), f"unknown command '{raw_key} {sub_raw}'"
                        f"{errors.suggest(sub, [s for s in spec if s != '__group__'])}")
            continue
        if not isinstance(sub_value, dict):
            errors.fail((raw_key, sub_raw), f"'{raw_key}.{sub_raw}' must be a mapping")
            continue
        defaults.setdefault(key, {})[sub] = _options(
            sub_value, spec[sub], (raw_key, sub_raw), errors.fail, errors.suggest)


def _default_map(commands: Mapping[str, Any], defaults: Mapping[str, Any],
                 globals_: Mapping[str, Any]) -> dict[str, Any]:
    """click's default_map: global keys where a command has the option, then its section."""
    default_map: dict[str, Any] = {}
    for name, spec in commands.items():
        if "__group__" in spec:
            group_map = {}
            for sub, sub_spec in spec.items():
                if sub == "__group__":
                    continue
                merged = {k: v for k, v in globals_.items() if k in sub_spec}
                merged.update(defaults.get(name, {}).get(sub, {}))
                group_map[sub] = {_param_name(sub_spec, k): v for k, v in merged.items()}
            default_map[name] = group_map
        else:
            merged = {k: v for k, v in globals_.items() if k in spec}
            merged.update(defaults.get(name, {}))
            default_map[name] = {_param_name(spec, k): v for k, v in merged.items()}
    return default_map


def _spark_defaults(spark: Any, commands: Mapping[str, Any], default_map: dict[str, Any]) -> None:
    """``spark: {master, remote, conf}`` is where every Spark stage's session comes from: the
    defaults of ``--spark-master`` and ``--spark-conf`` wherever a command has them (a
    value set for that stage, or at the top level, wins)."""
    if not isinstance(spark, dict):
        return
    conf = dict(spark.get("conf") or {})
    if spark.get("remote"):                  # Spark's own property for Spark Connect
        conf["spark.remote"] = spark["remote"]
    values = {"spark-master": spark.get("master"),
              "spark-conf": [f"{k}={'true' if v is True else 'false' if v is False else v}"
                             for k, v in conf.items()] or None}
    for name, spec in commands.items():
        if "__group__" in spec:
            continue
        for key, value in values.items():
            if value is not None and key in spec:
                default_map.setdefault(name, {}).setdefault(_param_name(spec, key), value)


def _source_default(defaults: Mapping[str, Any], commands: Mapping[str, Any],
                    default_map: dict[str, Any]) -> None:
    """``ingest``'s SOURCE_URI defaults to ``run.source`` (what ``mlcd init`` writes), so a
    CI job that runs ``mlcd ingest`` alone finds the same source as ``mlcd run``."""
    source = (defaults.get("run") or {}).get("source")
    spec = commands.get("ingest")
    if source is None or not spec or "source-uri" not in spec:
        return
    ingest = default_map.setdefault("ingest", {})
    ingest.setdefault(_param_name(spec, "source-uri"), source)


def _param_name(spec: Mapping[str, Any], key: str) -> str:
    """click's parameter name for a config key (validators may carry it)."""
    return getattr(spec.get(key), "param_name", None) or key.replace("-", "_")


def _options(values: Mapping, spec: Mapping, keys: tuple[str, ...], fail, suggest) -> dict:
    out = {}
    for raw, value in values.items():
        key = option_key(raw)
        if key not in spec:
            fail((*keys, raw), f"unknown option '{raw}' for '{' '.join(keys)}'"
                 f"{suggest(key, spec)}")
            continue
        try:
            spec[key](value)
        except ValueError as exc:
            fail((*keys, raw), f"{raw}: {exc}")
            continue
        out[key] = value
    return out
