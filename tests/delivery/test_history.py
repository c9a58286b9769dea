"""The promotion history's check-and-set, deterministically, on a SQLite registry: of two
promotions that read the same head, the second loses with one line and moves nothing;
entries that move no alias never conflict; the alias follows the newest move; rollback's
previous version skips versions a rollback took out."""

from __future__ import annotations

import pytest

from mlcd_actions.delivery import history


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """One SQLite registry for the module (creating its tables is the slow part)."""
    return f"sqlite:///{tmp_path_factory.mktemp('history') / 'mlflow.db'}"


@pytest.fixture
def ledger(store, monkeypatch, request, tmp_path):
    """Model ``<test name>`` with versions 1-3, and its (empty) history."""
    from mlflow import MlflowClient

    from mlcd_actions.models import tracking

    monkeypatch.setenv("MLFLOW_TRACKING_URI", store)
    tracking.configure()
    client = MlflowClient()
    name = request.node.name[:60]
    client.create_registered_model(name)
    for _ in range(3):
        client.create_model_version(name, source=(tmp_path / "model").as_uri())
    return history.Ledger(name)


def move(version, frm, actor):
    return history.new_entry("production", history.DEPLOY, to_version=version,
                             from_version=frm, moves_alias=True, actor=actor)


def test_the_second_of_two_racing_promotions_loses(ledger):
    head = ledger.head("production")  # both read the same head before they start
    assert head == 0
    won = ledger.append(move("2", "1", "alice"), after=head)
    assert won.seq == 1
    with pytest.raises(history.Conflict) as exc:
        history.Ledger(ledger.name).append(move("3", "1", "bob"), after=head)
    assert exc.value.one_line().startswith(
        "production changed while this promotion ran: deploy v1 -> v2 by alice at ")
    assert "(history #1); nothing moved" in exc.value.one_line()
    # an entry that moves nothing takes the next free number instead
    start = history.new_entry("production", history.START, to_version="3", from_version="2")
    assert ledger.append(start, after=head).seq == 2
    assert [e.seq for e in ledger.entries("production")] == [1, 2]
    # the alias goes where the newest alias-moving entry says
    assert history.settle_alias(ledger, "champion", "production") == "2"
    assert str(ledger.client.get_model_version_by_alias(ledger.name, "champion").version) == "2"


def test_entries_are_append_only(ledger):
    from mlflow.exceptions import MlflowException

    entry = ledger.append(move("1", None, "alice"))
    with pytest.raises(MlflowException, match="Changing param values is not allowed"):
        ledger.client.log_param(ledger.run_id(), f"production.{entry.seq:06d}", "{}")
    tags = ledger.client.get_registered_model(ledger.name).tags
    assert tags[history.LEDGER_TAG] == ledger.run_id()
    assert '"to_version":"1"' in tags["mlcd.history.production.000001"]


def test_previous_skips_what_a_rollback_took_out(ledger):
    ledger.append(move("1", None, "a"))
    ledger.append(move("2", "1", "a"))
    assert ledger.previous("production") == "1"
    back = history.new_entry("production", history.ROLLBACK, to_version="1",
                             from_version="2", moves_alias=True)
    ledger.append(back)
    assert ledger.serving("production").to_version == "1"
    assert ledger.previous("production") is None  # v2 is not brought back
    assert ledger.entries("staging") == []
