"""The lineage id and its MLflow tags."""

from __future__ import annotations

import re

from mlcd_actions.ci.lineage import Lineage, lineage_id

SHA = "a" * 64


def test_lineage_id_is_short_stable_and_prefixed():
    first = lineage_id(SHA, "0123abcd" * 5, "1.2.0-beta.3")
    assert re.fullmatch(r"lin-[0-9a-f]{12}", first)
    assert lineage_id(SHA, "0123abcd" * 5, "1.2.0-beta.3") == first
    # case and surrounding blanks of hashes do not matter
    assert lineage_id(SHA.upper(), " " + "0123ABCD" * 5, "1.2.0-beta.3") == first


def test_lineage_id_changes_with_each_part_and_tolerates_missing_parts():
    base = lineage_id(SHA, "c1", "1.0.0")
    assert lineage_id("b" * 64, "c1", "1.0.0") != base
    assert lineage_id(SHA, "c2", "1.0.0") != base
    assert lineage_id(SHA, "c1", "1.0.1") != base
    assert lineage_id(SHA, None, None) == lineage_id(SHA, "", "")
    assert lineage_id(SHA, None, None) != lineage_id(None, None, SHA)  # parts are not mixed


def test_tags_round_trip_and_later_fields_keep_the_id():
    lin = Lineage(data_sha256=SHA, git_sha="c1", code_version="1.0.0", data_version="v3")
    assert lin.id == lineage_id(SHA, "c1", "1.0.0")
    later = lin.replace(run_id="r1", model_name="churn", model_version="4",
                        image_digest="sha256:" + "f" * 64)
    assert later.id == lin.id
    tags = later.to_tags()
    assert tags["mlcd.lineage_id"] == lin.id
    assert tags["mlcd.data_sha256"] == SHA
    assert tags["mlcd.data_version"] == "v3"
    assert tags["mlcd.git_sha"] == "c1"
    assert tags["mlcd.code_version"] == "1.0.0"
    assert tags["mlcd.model_version"] == "4"
    assert "mlcd.image" not in tags  # unset fields are not tagged
    assert all(isinstance(v, str) for v in tags.values())
    back = Lineage.from_tags({**tags, "mlflow.user": "x", "other": "y"})
    assert back == later
    assert Lineage.from_dict(later.to_dict()) == later


def test_changing_a_part_recomputes_the_id_but_a_stored_id_is_kept():
    lin = Lineage(data_sha256=SHA, git_sha="c1", code_version="1.0.0")
    assert lin.replace(git_sha="c2").id == lineage_id(SHA, "c2", "1.0.0")
    stored = Lineage.from_tags({"mlcd.lineage_id": "lin-000000000000", "mlcd.git_sha": "c1"})
    assert stored.id == "lin-000000000000"
