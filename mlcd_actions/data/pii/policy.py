"""Compliance policies for ``mlcd check-data``: built-in rule sets (gdpr, hipaa, pci) and
policy files, per-column actions (forbid, allow, must-be-hashed)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    pass
from mlcd_actions.data.pii.patterns import KINDS

# --------------------------------------------------------------------------- policies

FORBID = "forbid"
ALLOW = "allow"
HASHED_ACTION = "must-be-hashed"
ACTIONS = (FORBID, ALLOW, HASHED_ACTION)
_POLICY_KEYS = {"version", "name", "title", "rules", "forbid", "columns"}


@dataclass
class ColumnRule:
    pattern: str                 # a column name, or a glob (``*_email``)
    action: str                  # forbid | allow | must-be-hashed
    kinds: tuple[str, ...] | None = None   # None: every kind
    where: str = ""              # "policy.yaml:7", for messages

    @property
    def is_glob(self) -> bool:
        return any(c in self.pattern for c in "*?[")

    def covers(self, kind: str) -> bool:
        return self.kinds is None or kind in self.kinds


@dataclass
class Policy:
    """What PII may be where: per-column rules plus kinds forbidden everywhere else."""

    columns: list[ColumnRule] = field(default_factory=list)
    forbid: dict[str, list[str]] = field(default_factory=dict)   # kind -> sources
    sources: list[str] = field(default_factory=list)             # files / rule sets read

    @property
    def empty(self) -> bool:
        return not self.columns and not self.forbid

    def rule_for(self, column: str) -> ColumnRule | None:
        import fnmatch

        exact = [r for r in self.columns if not r.is_glob and r.pattern == column]
        if exact:
            return exact[-1]
        globbed = [r for r in self.columns if r.is_glob and fnmatch.fnmatchcase(column, r.pattern)]
        return globbed[-1] if globbed else None


def builtin_rule_sets() -> list[str]:
    from importlib import resources

    files = resources.files("mlcd_actions").joinpath("policies")
    return sorted(f.name[:-5] for f in files.iterdir() if f.name.endswith(".yaml"))


def _kinds(value: Any, where: str, what: str) -> list[str]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(k, str) for k in items):
        from mlcd_actions.core.errors import ConfigError

        raise ConfigError(f"{where}: {what} must be a list of PII kinds ({', '.join(KINDS)})")
    out = []
    for k in items:
        kind = k.strip().lower().replace("-", "_")
        kind = {"ip": "ip_address", "dob": "date_of_birth", "card": "credit_card",
                "credit_card_number": "credit_card", "e_mail": "email"}.get(kind, kind)
        if kind not in KINDS:
            import difflib

            from mlcd_actions.core.errors import ConfigError

            close = difflib.get_close_matches(kind, KINDS, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise ConfigError(f"{where}: unknown PII kind {k!r}{hint}; known: {', '.join(KINDS)}")
        out.append(kind)
    return out


def load_rule_set(name_or_path: str, policy: Policy) -> None:
    """Add a built-in rule set (``hipaa``, ``pci``, ``gdpr``) or a rule-set file."""
    import os
    from importlib import resources

    from mlcd_actions.core.errors import ConfigError

    name = str(name_or_path).strip()
    if name.lower() in builtin_rule_sets():
        path = resources.files("mlcd_actions").joinpath("policies", f"{name.lower()}.yaml")
        with resources.as_file(path) as real:
            _merge_file(real, policy, label=name.lower())
        return
    if name.endswith((".yaml", ".yml")) or os.sep in name:
        _merge_file(name, policy, label=os.path.basename(name))
        return
    raise ConfigError(f"--rules {name!r}: unknown rule set; built-in: "
                      f"{', '.join(builtin_rule_sets())} (or a path to a .yaml rule set)")


def load_policy(path: str | None = None, rules: Iterable[str] = ()) -> Policy:
    """Read ``--pii-policy`` and the ``--rules`` sets into one :class:`Policy`."""
    policy = Policy()
    for name in rules:
        load_rule_set(name, policy)
    if path:
        _merge_file(path, policy, label=None)
    return policy


def _merge_file(path, policy: Policy, label: str | None) -> None:
    import os

    from mlcd_actions.core import config
    from mlcd_actions.core.errors import ConfigError

    if not os.path.isfile(path):
        raise ConfigError(f"{path}: no such policy file")
    cfg = config.load(path)
    data = cfg.data
    name = os.path.basename(str(path))
    source = label or str(data.get("name") or name)
    policy.sources.append(source)
    for key in data:
        if key not in _POLICY_KEYS:
            raise ConfigError(f"{cfg.where(key)}: unknown key {key!r} in policy "
                              f"(keys: {', '.join(sorted(_POLICY_KEYS))})",
                              file=str(path), line=cfg.line_of(key))
    for rule in data.get("rules") or []:
        load_rule_set(str(rule), policy)
    for kind in _kinds(data.get("forbid") or [], cfg.where("forbid"), "forbid"):
        policy.forbid.setdefault(kind, [])
        if source not in policy.forbid[kind]:
            policy.forbid[kind].append(source)
    columns = data.get("columns") or {}
    if not isinstance(columns, dict):
        raise ConfigError(f"{cfg.where('columns')}: columns must map a column name to "
                          f"{' | '.join(ACTIONS)}", file=str(path), line=cfg.line_of("columns"))
    for col, spec in columns.items():
        where = cfg.where("columns", col)
        kinds = None
        if isinstance(spec, dict):
            unknown = set(spec) - {"action", "kinds"}
            if unknown or "action" not in spec:
                raise ConfigError(f"{where}: column {col!r}: expected 'action' and optional "
                                  f"'kinds', got {', '.join(map(str, spec))}",
                                  file=str(path), line=cfg.line_of("columns", col))
            action = spec["action"]
            if spec.get("kinds") is not None:
                kinds = tuple(_kinds(spec["kinds"], where, "kinds"))
        else:
            action = spec
        action = str(action).strip().lower().replace("_", "-")
        if action not in ACTIONS:
            raise ConfigError(f"{where}: column {col!r}: unknown action {spec!r}; "
                              f"use {', '.join(ACTIONS)}",
                              file=str(path), line=cfg.line_of("columns", col))
        policy.columns.append(ColumnRule(str(col), action, kinds, where))
