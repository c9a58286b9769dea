"""``mlcd predict``'s input path: the chunk's columns go to the model's fast paths
straight from Arrow (the same answers as the DataFrame path, bit for bit), the input is
read by a thread while the model loads (bounded, in order, errors at their place), and a
plan the loaded model changes is read afresh."""

from __future__ import annotations

import threading

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from benchmarks import matrix
from mlcd_actions.core.errors import DataError
from mlcd_actions.delivery import batch
from mlcd_actions.delivery.serving.spec import ModelSpec
from mlcd_actions.models import loading
from mlcd_actions.stages import predict
from tests.stages import test_predict_pool as pool

ROWS = pool.ROWS
models = pool.models  # the benchmark matrix, saved as mlcd train saves it (a fixture)


def _frame_answer(spec, table, features, label):
    frame = loading.prepare_features(table.select(features).to_pandas(), label, spec.model)
    return spec.predict(frame)


# the models whose fast or frameless path takes the chunk's columns
FAST = ("logreg", "hgb", "rf", "tfidf")


@pytest.mark.parametrize("name", matrix.MODELS)
def test_arrow_columns_answer_bit_for_bit_as_the_frame(models, name):
    model, data = models[name]
    spec = ModelSpec(loading.load(str(model)))
    table = pq.read_table(data)
    features = spec.input_names
    arrow = predict._predict_columns(spec, table.to_batches(max_chunksize=ROWS)[0], features,
                                     spec.model.label)
    if name not in FAST:
        assert arrow is None
        return
    assert arrow is not None
    pred, proba = _frame_answer(spec, table, features, spec.model.label)
    assert pred.dtype == arrow[0].dtype and np.array_equal(arrow[0], pred)
    assert (proba is None) == (arrow[1] is None)
    if proba is not None:
        assert np.array_equal(arrow[1], proba)  # exact, not within a tolerance


def test_nulls_and_text_in_a_number_column_are_left_to_the_frame(models):
    model, data = models["hgb"]
    spec = ModelSpec(loading.load(str(model)))
    table = pq.read_table(data).slice(0, 50)
    features, label = spec.input_names, spec.model.label
    assert predict._predict_columns(spec, table.to_batches()[0], features, label) is not None
    with_null = table.set_column(table.schema.get_field_index("income"), "income",
                                 pa.array([None] + table.column("income").to_pylist()[1:],
                                          pa.float64()))
    assert predict._predict_columns(spec, with_null.to_batches()[0], features, label) is None
    as_text = table.set_column(table.schema.get_field_index("income"), "income",
                               pa.array([str(v) for v in table.column("income").to_pylist()]))
    assert predict._predict_columns(spec, as_text.to_batches()[0], features, label) is None


def test_a_text_number_column_still_names_the_bad_row(models, tmp_path):
    model, data = models["hgb"]
    df = pd.read_parquet(data).head(200)
    df["income"] = df["income"].astype(str)
    df.loc[137, "income"] = "lots"
    df.to_parquet(tmp_path / "bad.parquet")
    with pytest.raises(DataError, match=r"'income' must be a number .* data row 138 holds"):
        predict.run(str(model), str(tmp_path / "bad.parquet"), str(tmp_path / "o.parquet"),
                    chunk_rows=64, workers=1)
    assert not (tmp_path / "o.parquet").exists()


def test_read_ahead_keeps_order_and_its_bound():
    taken = []
    resume = threading.Event()

    def items():
        for i in range(20):
            taken.append(i)
            yield i

    ahead = batch.ReadAhead(items, limit=3)
    seen = []
    try:
        for item in ahead:
            if not seen:
                # the reader fills the queue and stops: 3 waiting, one in its hand
                for _ in range(200):
                    if len(taken) >= 5:
                        break
                    resume.wait(0.01)
                assert len(taken) <= 5
            seen.append(item)
    finally:
        ahead.close()
    assert seen == list(range(20))


def test_read_ahead_raises_an_error_after_the_items_before_it():
    def items():
        yield 1
        yield 2
        raise DataError("in.csv: malformed CSV: row 3")

    ahead = batch.ReadAhead(items, limit=8)
    seen = []
    with pytest.raises(DataError, match="row 3"):
        for item in ahead:
            seen.append(item)
    ahead.close()
    assert seen == [1, 2]


def test_read_ahead_close_stops_the_reader_and_closes_its_input():
    closed = threading.Event()

    def items():
        try:
            i = 0
            while True:
                yield i
                i += 1
        finally:
            closed.set()

    ahead = batch.ReadAhead(items, limit=2)
    assert next(iter(ahead)) == 0
    ahead.close()
    assert closed.is_set() and not ahead._thread.is_alive()


def test_the_input_is_read_while_the_model_loads(models, tmp_path, monkeypatch):
    model, data = models["rf"]
    started = threading.Event()
    real_items, real_load = predict._file_items, loading.load
    seen = {}

    def items(plan, chunk_rows):
        for item in real_items(plan, chunk_rows):
            started.set()
            yield item

    def load(*args, **kwargs):
        seen["read before the model"] = started.wait(60)
        return real_load(*args, **kwargs)

    monkeypatch.setattr(predict, "_file_items", items)
    monkeypatch.setattr(loading, "load", load)
    res = predict.run(str(model), str(data), str(tmp_path / "o.parquet"), chunk_rows=500,
                      workers=1)
    assert seen == {"read before the model": True}
    assert res.outputs["rows"] == ROWS
    monkeypatch.undo()
    predict.run(str(model), str(data), str(tmp_path / "plain.parquet"), chunk_rows=500,
                workers=1)
    assert pq.read_table(tmp_path / "o.parquet").equals(pq.read_table(tmp_path / "plain.parquet"))


def test_a_plan_the_loaded_model_changes_is_read_afresh(models, tmp_path, monkeypatch):
    model, data = models["hgb"]
    predict.run(str(model), str(data), str(tmp_path / "plain.parquet"), chunk_rows=500,
                workers=1)
    real = predict._early_plan

    def other(model_uri, files, id_columns):  # an MLmodel that named fewer columns
        plan = real(model_uri, files, id_columns)
        plan.features, plan.csv_types = plan.features[:2], {}
        return plan

    monkeypatch.setattr(predict, "_early_plan", other)
    predict.run(str(model), str(data), str(tmp_path / "o.parquet"), chunk_rows=500, workers=1)
    assert pq.read_table(tmp_path / "o.parquet").equals(pq.read_table(tmp_path / "plain.parquet"))


def _double(state, item):
    return item * 2


@pytest.mark.parametrize(("cost", "used"), [(1e-7, 0), (1e-5, 2), (float("inf"), 2)])
def test_a_model_cheaper_than_the_bound_starts_no_pool(cost, used):
    measured = []

    def cost_of(state, item):
        measured.append(item)
        return cost

    runner = batch.ChunkRunner(_double, None, workers=2, rows_of=lambda item: 600,
                               min_rows=1000, cost_of=cost_of, min_cost=1e-6)
    assert list(runner.map(range(10))) == [i * 2 for i in range(10)]
    assert (runner.used, runner.cost, measured) == (used, cost, [0])


def test_the_cost_of_a_chunk_and_of_a_failing_one(models):
    model, data = models["hgb"]
    spec = ModelSpec(loading.load(str(model)))
    table = pq.read_table(data)
    item = (batch.Chunk(table.to_batches()[0]), spec.input_names, ["row_id"],
            spec.model.label, str(data), 0)
    assert 0 < predict._chunk_cost(spec, item) < float("inf")
    bad = table.set_column(table.schema.get_field_index("income"), "income",
                           pa.array(["lots"] * table.num_rows))
    item = (batch.Chunk(bad.to_batches()[0]), *item[1:])
    assert predict._chunk_cost(spec, item) == float("inf")


@pytest.mark.parametrize(("bound", "used"), [(0.0, 2), (float("inf"), 0)])
def test_default_workers_follow_the_measured_cost(models, tmp_path, monkeypatch, bound, used):
    model, data = models["logreg"]
    monkeypatch.setattr(batch, "POOL_MIN_ROWS", 1000)
    monkeypatch.setattr(predict, "default_workers", lambda: 2)
    monkeypatch.setattr(predict, "POOL_MIN_CPU_PER_ROW", bound)
    res = predict.run(str(model), str(data), str(tmp_path / "o.parquet"), chunk_rows=500)
    assert res.details["workers"] == used
    chosen = predict.run(str(model), str(data), str(tmp_path / "w.parquet"), chunk_rows=500,
                         workers=2)  # chosen by the user: the pool, whatever the cost
    assert chosen.details["workers"] == 2
    assert pq.read_table(tmp_path / "o.parquet").equals(pq.read_table(tmp_path / "w.parquet"))


def test_a_costly_model_is_timed_on_the_small_sample_only(models, monkeypatch):
    model, data = models["hgb"]
    spec = ModelSpec(loading.load(str(model)))
    table = pq.read_table(data)
    item = (batch.Chunk(table.to_batches()[0]), spec.input_names, ["row_id"],
            spec.model.label, str(data), 0)
    sizes = []
    real = predict._predict_chunk

    def counting(spec, item):
        sizes.append(item[0].batch.num_rows)
        return real(spec, item)

    monkeypatch.setattr(predict, "_predict_chunk", counting)
    monkeypatch.setattr(predict, "_COST_CLEAR", 0.0)  # every model counts as costly
    big = min(predict._COST_ROWS, table.to_batches()[0].num_rows)
    assert predict._chunk_cost(spec, item) > 0
    assert sizes == [min(100, big), big // 5]  # the warm-up and the fifth, not the sample
