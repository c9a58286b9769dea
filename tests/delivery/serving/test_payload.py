"""Request bodies -> validated batches: every accepted shape, every client error."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mlcd_actions.delivery.serving.payload import RequestError, parse
from mlcd_actions.delivery.serving.spec import Column

COLS = [Column("a", "double"), Column("c", "long"), Column("color", "string"),
        Column("flag", "boolean", required=False)]


def body(obj) -> bytes:
    return json.dumps(obj).encode()


def expect_error(raw: bytes, status: int, *words: str, field: str | None = None):
    with pytest.raises(RequestError) as info:
        parse(raw, COLS)
    err = info.value
    assert err.status == status, err.message
    for w in words:
        assert w in err.message, err.message
    if field is not None:
        assert err.field == field
    return err


RECORDS = [{"a": 1.5, "c": 2, "color": "red"}, {"a": -1, "c": 3.0, "color": "blue", "x": 9}]


@pytest.mark.parametrize("payload", [
    RECORDS,
    {"dataframe_records": RECORDS},
    {"columns": ["color", "a", "c"], "data": [["red", 1.5, 2], ["blue", -1, 3]]},
    {"dataframe_split": {"columns": ["a", "c", "color"], "data": [[1.5, 2, "red"],
                                                                   [-1, 3, "blue"]]}},
    {"inputs": {"a": [1.5, -1], "c": [2, 3], "color": ["red", "blue"]}},
    {"instances": RECORDS},
    {"inputs": [[1.5, 2, "red", None], [-1, 3, "blue", None]]},
])
def test_every_payload_shape_gives_the_same_frame(payload):
    batch = parse(body(payload), COLS)
    df = batch.frame()
    assert list(df.columns) == ["a", "c", "color", "flag"]
    assert df["a"].tolist() == [1.5, -1.0] and df["a"].dtype == np.float64
    assert df["c"].tolist() == [2, 3] and df["c"].dtype == np.int64
    assert df["color"].tolist() == ["red", "blue"]
    assert df["flag"].isna().all()
    assert batch.row_inputs(0) == {"a": 1.5, "c": 2, "color": "red", "flag": None}


def test_single_record_object():
    batch = parse(body({"a": 1, "c": 1, "color": "red", "flag": True}), COLS)
    assert batch.n_rows == 1 and batch.frame()["flag"].tolist() == [True]


def test_nan_written_by_python_json_is_accepted():
    batch = parse(b'[{"a": NaN, "c": 1, "color": null}]', COLS)
    assert np.isnan(batch.frame()["a"][0])


@pytest.mark.parametrize("raw, words", [
    (b"", ["empty"]),
    (b"{not json", ["not valid JSON"]),
    (b"[1, 2]", ["must be an object"]),
    (b'"text"', ["JSON object or array"]),
    (b"[]", ["no rows"]),
    (b'{"foo": 1}', ["unknown payload", "1 key(s), none of them an input column"]),
    (b'{"columns": ["a", "c"], "data": [[1, 2, 3]]}', ["3 values, expected 2"]),
    (b'{"dataframe_split": {"columns": "a", "data": []}}', ["columns must be an array"]),
    (b'{"inputs": {"a": [1, 2], "c": [1]}}', ["'c' has 1 values, expected 2"]),
])
def test_malformed_payloads_are_400(raw, words):
    expect_error(raw, 400, *words)


def test_missing_column_is_422_naming_it():
    err = expect_error(body([{"a": 1, "color": "x"}]), 422, "missing column 'c'", field="c")
    assert err.to_dict() == {"error": "row 0: missing column 'c'", "field": "c", "row": 0}
    expect_error(body({"columns": ["a", "color"], "data": [[1, "x"]]}), 422, "'c'", field="c")


def test_missing_column_in_a_later_record_names_the_row():
    err = expect_error(body([RECORDS[0], {"a": 1, "color": "x"}]), 422, "row 1", field="c")
    assert err.row == 1


@pytest.mark.parametrize("record, field, words", [
    ({"a": "1.5", "c": 1, "color": "x"}, "a", ["must be a number", "string"]),
    ({"a": True, "c": 1, "color": "x"}, "a", ["must be a number", "boolean"]),
    ({"a": 1, "c": 1.5, "color": "x"}, "c", ["whole number"]),
    ({"a": 1, "c": 2 ** 70, "color": "x"}, "c", ["out of range for long"]),
    ({"a": 1, "c": 1, "color": 7}, "color", ["must be a string", "number"]),
    ({"a": 1, "c": 1, "color": "x", "flag": "yes"}, "flag", ["true or false"]),
    ({"a": [1], "c": 1, "color": "x"}, "a", ["array"]),
])
def test_wrong_types_are_422_naming_the_field(record, field, words):
    expect_error(body([record]), 422, *words, field=field)


def test_untyped_model_takes_every_key():
    batch = parse(body([{"p": 1, "q": "x"}, {"p": 2}]), None)
    df = batch.frame()
    assert list(df.columns) == ["p", "q"] and df["p"].tolist() == [1, 2]


def test_unicode_and_long_strings_pass_through():
    long = "ü" * 10_000
    batch = parse(body([{"a": 1, "c": 1, "color": long}]), COLS)
    assert batch.frame()["color"][0] == long
