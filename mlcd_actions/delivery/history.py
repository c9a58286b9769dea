"""The promotion history: an append-only record of every alias move and deploy outcome,
kept in the MLflow tracking store with the registered model, so it outlives the CI runner.

Storage. The history of registered model NAME is one MLflow run, the *ledger*, in the
experiment ``mlcd-history/NAME``; the registered model points at it with the tag
``mlcd.history.ledger`` (the run id). Each entry is one run *parameter*
``<environment>.<seq>`` (``seq`` zero-padded to six digits) whose value is the entry as
compact JSON. MLflow never lets a logged parameter change ("Changing param values is not
allowed", enforced by the backend store's primary key), which gives two properties:

* append-only: an entry cannot be rewritten through the MLflow API;
* check-and-set: of two writers claiming number ``n + 1``, exactly one succeeds.

Each entry is also copied to the registered-model tag ``mlcd.history.<environment>.<seq>``
so the registry UI shows it on the model's page; the ledger is what ``mlcd`` reads.

Concurrency. A promotion reads the environment's head (the newest entry) before it starts
the new version, and claims the next number when it is ready to move the alias. When
another writer claimed that number first with an alias move, this promotion lost: it gets
:class:`Conflict`, naming the winner, and moves nothing. Entries that move no alias (a
shadow or canary start, a failed deploy) are appended at the next free number. After a
winning claim the alias is set to the version of the newest alias-moving entry and the
head is read again until it is unchanged, so the alias always ends where the history says.
"""

from __future__ import annotations

import datetime as _dt
import getpass
import json
import os
import time
import uuid
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from mlcd_actions.core.errors import ConfigError, StageFailed
from mlcd_actions.models import tracking

LEDGER_TAG = "mlcd.history.ledger"
EXPERIMENT_PREFIX = "mlcd-history/"
SEQ_DIGITS = 6
MAX_ATTEMPTS = 50  # entries claimed by others in a row before giving up

# actions; an entry that moves the alias says so in ``moves_alias``
DEPLOY = "deploy"        # direct deploy: the new version serves, the alias moved
START = "start"          # shadow/canary candidate started beside the current version
PROMOTE = "promote"      # the candidate took over, the alias moved
ABORT = "abort"          # the candidate was stopped; the current version kept serving
ROLLBACK = "rollback"    # the previous version was put back, the alias moved back
FAILED = "failed"        # a deploy that did not happen (unhealthy, lost a race...)


class Conflict(StageFailed):
    """Another promotion of the same environment won the race (exit 1)."""


@dataclass
class Entry:
    """One history record. ``from_version`` -> ``to_version`` of ``environment``."""

    environment: str
    action: str
    to_version: str | None = None
    from_version: str | None = None
    strategy: str = "direct"
    moves_alias: bool = False
    alias: str | None = None
    outcome: str = ""
    actor: str = ""
    reason: str = ""
    run_url: str | None = None
    time: str = ""
    traffic: float | None = None
    image: str | None = None
    digest: str | None = None
    url: str | None = None
    lineage_id: str | None = None
    override: list[dict[str, Any]] = field(default_factory=list)
    seq: int = 0
    nonce: str = ""

    def to_json(self) -> str:
        data = {k: v for k, v in asdict(self).items() if v not in (None, "", [])}
        data.pop("seq", None)
        return json.dumps(data, separators=(",", ":"), sort_keys=True)

    @classmethod
    def from_json(cls, seq: int, raw: str) -> Entry:
        data = json.loads(raw)
        known = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        return cls(**{**known, "seq": seq})

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def change(self) -> str:
        a = f"v{self.from_version}" if self.from_version else "—"
        b = f"v{self.to_version}" if self.to_version else "—"
        return f"{a} -> {b}"


def actor(env: dict[str, str] | None = None) -> str:
    """Who does this: the CI user (GitHub, GitLab), else the login name."""
    env = os.environ if env is None else env
    for var in ("GITHUB_ACTOR", "GITLAB_USER_LOGIN", "USER", "LOGNAME"):
        if env.get(var):
            return env[var]
    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001 - no passwd entry in a container
        return "unknown"


def now_iso() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def new_entry(environment: str, action: str, **fields: Any) -> Entry:
    from mlcd_actions.ci import forges as hosting

    fields.setdefault("actor", actor())
    fields.setdefault("run_url", hosting.run_url())
    return Entry(environment, action, time=now_iso(), nonce=uuid.uuid4().hex[:12], **fields)


def _key(environment: str, seq: int) -> str:
    return f"{environment}.{seq:0{SEQ_DIGITS}d}"


def _client(tracking_uri: str | None):
    from mlflow import MlflowClient

    tracking.configure(tracking_uri)
    return MlflowClient()


def _first(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


# --------------------------------------------------------------------------- the ledger

class Ledger:
    """The history of one registered model."""

    def __init__(self, name: str, tracking_uri: str | None = None) -> None:
        self.name = name
        self.tracking_uri = tracking_uri
        self.client = _client(tracking_uri)
        self._run_id: str | None = None

    def _call(self, fn, what: str):
        return tracking.with_retries(fn, what=f"{what} (history of model {self.name!r})")

    def run_id(self, create: bool = False) -> str | None:
        """The ledger run; created on first write (safely when two writers race)."""
        from mlflow.exceptions import MlflowException

        if self._run_id:
            return self._run_id
        try:
            rm = self._call(lambda: self.client.get_registered_model(self.name), "reading")
        except MlflowException as exc:
            raise ConfigError(f"model {self.name!r} is not registered: {_first(exc)}") from exc
        run_id = (rm.tags or {}).get(LEDGER_TAG)
        if not run_id and create:
            run_id = self._create()
        self._run_id = run_id or None
        return self._run_id

    def _create(self) -> str:
        from mlflow.exceptions import MlflowException

        exp_name = EXPERIMENT_PREFIX + self.name
        created = False
        try:
            exp_id = self._call(lambda: self.client.create_experiment(
                exp_name, tags={"mlcd.history.model": self.name}), "creating the ledger")
            created = True
        except MlflowException:
            exp = self._call(lambda: self.client.get_experiment_by_name(exp_name), "reading")
            if exp is None:
                raise
            exp_id = exp.experiment_id
            if exp.lifecycle_stage == "deleted":
                self._call(lambda: self.client.restore_experiment(exp_id), "restoring")
        run_id = None if created else self._wait_for_ledger(exp_id)
        if run_id is None:
            run = self._call(lambda: self.client.create_run(
                exp_id, run_name=f"promotion history of {self.name}",
                tags={"mlcd.history.model": self.name}), "creating the ledger")
            run_id = run.info.run_id
            self._call(lambda: self.client.set_terminated(run_id), "creating the ledger")
            self._call(lambda: self.client.set_experiment_tag(exp_id, "mlcd.ledger_run", run_id),
                       "creating the ledger")
        self._call(lambda: self.client.set_registered_model_tag(self.name, LEDGER_TAG, run_id),
                   "creating the ledger")
        return run_id

    def _wait_for_ledger(self, exp_id: str, timeout: float = 20.0) -> str | None:
        """Another writer created the experiment: wait for it to name its ledger run.
        A writer that died in between leaves runs and no tag: the oldest run is the ledger."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            exp = self._call(lambda: self.client.get_experiment(exp_id), "reading")
            run_id = (exp.tags or {}).get("mlcd.ledger_run")
            if run_id:
                return run_id
            time.sleep(0.3)
        runs = self._call(lambda: self.client.search_runs(
            [exp_id], order_by=["attributes.start_time ASC"], max_results=1), "reading")
        return runs[0].info.run_id if runs else None

    # ------------------------------------------------------------------ read

    def entries(self, environment: str | None = None) -> list[Entry]:
        """Every entry (of ``environment``), oldest first."""
        run_id = self.run_id()
        if not run_id:
            return []
        run = self._call(lambda: self.client.get_run(run_id), "reading")
        out = []
        for key, raw in (run.data.params or {}).items():
            env, _, seq = key.rpartition(".")
            if not seq.isdigit() or (environment is not None and env != environment):
                continue
            try:
                out.append(Entry.from_json(int(seq), raw))
            except (ValueError, TypeError):
                continue  # a foreign parameter: not ours
        return sorted(out, key=lambda e: (e.environment, e.seq))

    def head(self, environment: str) -> int:
        """The newest entry's number (0 when the environment has none)."""
        entries = self.entries(environment)
        return entries[-1].seq if entries else 0

    # ------------------------------------------------------------------ write

    def append(self, entry: Entry, *, after: int | None = None) -> Entry:
        """Append ``entry`` after entry number ``after`` (default: the current head).

        An entry that moves the alias loses to any alias-moving entry another writer
        appended since ``after``: :class:`Conflict`. Other entries take the next free number.
        """
        from mlflow.exceptions import MlflowException

        run_id = self.run_id(create=True)
        seq = (self.head(entry.environment) if after is None else after) + 1
        value = entry.to_json()
        for _ in range(MAX_ATTEMPTS):
            key = _key(entry.environment, seq)
            try:
                self._call(lambda k=key: self.client.log_param(run_id, k, value), "appending")
            except MlflowException as exc:
                other = self._read(run_id, key)
                if other is None:
                    raise StageFailed(f"cannot append to the promotion history of model "
                                      f"{self.name!r}: {_first(exc)}") from exc
                if entry.moves_alias and other.moves_alias:
                    raise Conflict(
                        f"{entry.environment} changed while this promotion ran: "
                        f"{other.action} {other.change()} by {other.actor or 'someone'} at "
                        f"{other.time} (history #{other.seq}); nothing moved — re-run to "
                        "promote on top of it") from exc
                seq += 1
                continue
            entry.seq = seq
            self._mirror(entry)
            return entry
        raise StageFailed(f"cannot append to the promotion history of model {self.name!r}: "
                          f"{MAX_ATTEMPTS} numbers in a row were taken")

    def _read(self, run_id: str, key: str) -> Entry | None:
        run = self._call(lambda: self.client.get_run(run_id), "reading")
        raw = (run.data.params or {}).get(key)
        if raw is None:
            return None
        try:
            return Entry.from_json(int(key.rpartition(".")[2]), raw)
        except (ValueError, TypeError):
            return None

    def _mirror(self, entry: Entry) -> None:
        """Copy to a registered-model tag for the registry UI (best effort: the ledger
        already holds the entry)."""
        import contextlib

        with contextlib.suppress(Exception):
            self.client.set_registered_model_tag(
                self.name, f"mlcd.history.{_key(entry.environment, entry.seq)}", entry.to_json())

    # ------------------------------------------------------------------ derived

    def serving(self, environment: str) -> Entry | None:
        """The newest entry that moved the alias: what the environment serves."""
        moved = [e for e in self.entries(environment) if e.moves_alias]
        return moved[-1] if moved else None

    def previous(self, environment: str, current: str | None = None) -> str | None:
        """The version to roll back to: what served before ``current`` (default: the
        serving version) was last brought in by a deploy or promotion. Versions brought in
        by a rollback are skipped, so two rollbacks do not toggle between two versions."""
        moved = [e for e in self.entries(environment) if e.moves_alias]
        if not moved:
            return None
        current = current or moved[-1].to_version
        for e in reversed(moved):
            if e.to_version == current and e.action != ROLLBACK:
                return e.from_version
        return None


def settle_alias(ledger: Ledger, alias: str, environment: str, attempts: int = 10) -> str | None:
    """Point ``alias`` at the version of the newest alias-moving entry, until the history
    stops changing under us. Returns that version."""
    version = None
    last = -1
    for _ in range(attempts):
        serving = ledger.serving(environment)
        if serving is None or not serving.to_version:
            return None
        if serving.seq == last:
            return version
        version = serving.to_version
        ledger._call(lambda v=version: ledger.client.set_registered_model_alias(
            ledger.name, alias, v), f"moving alias {alias!r}")
        last = serving.seq
    return version


def record(name: str | None, entry: Entry, tracking_uri: str | None = None,
           warnings: list[str] | None = None) -> Entry | None:
    """Append an entry that moves no alias; a failure to record becomes a warning."""
    if not name:
        return None
    from mlcd_actions.core.errors import MlcdError

    try:
        return Ledger(name, tracking_uri).append(entry)
    except (MlcdError, Exception) as exc:  # noqa: BLE001 - never hide the real outcome
        if warnings is not None:
            warnings.append(f"promotion history not updated: {_first(exc)}")
        return None


def table_rows(entries: Iterable[Entry]) -> list[list[Any]]:
    rows = []
    for e in entries:
        override = "; ".join(f"{o.get('stage')} by {o.get('approver')}: {o.get('reason')}"
                             for o in e.override) if e.override else ""
        rows.append([e.seq, e.time, e.environment, e.action, e.strategy
                     + (f" {e.traffic:g}%" if e.traffic is not None else ""),
                     e.change(), "yes" if e.moves_alias else "no", e.outcome, e.actor,
                     e.reason, e.run_url or "", override])
    return rows


COLUMNS = ["#", "time", "environment", "action", "strategy", "version", "alias moved",
           "outcome", "actor", "reason", "run", "override"]
