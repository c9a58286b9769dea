"""``text.WordCounts``: scikit-learn's word counts of a chunk, bit for bit, or None."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mlcd_actions.delivery.serving import text
from mlcd_actions.delivery.serving.text import WordCounts

WORDS = ["late", "refund", "Great", "DELIVERY", "box", "a", "I", "x9", "9", "42", "_", "__",
         "snake_case", "the", "and", "not", "is", "ok", "OK", "Ok", "zz", "b2b", "e_mail"]
SEPARATORS = [" ", " ", " ", "  ", ", ", ". ", "!", "-", "'", "\t", "\n", "/", "(", ") ",
              "...", "\r\n", "#", "+", "=", "\"", "~", "|"]
EDGES = ["", " ", "   ", "\t\n", "!!!", "a", "a b c", "_", "__", "ab", "late late late late",
         "x" * 300, "Late-Late_late", "9 99 999", "I'm not OK, I'm ok!"]


def corpus(seed: int, n: int = 240) -> list[str]:
    """Documents of random words and separators, plus the awkward ones."""
    rng = np.random.default_rng(seed)
    docs = []
    for _ in range(n):
        k = int(rng.integers(0, 16))
        parts = [str(rng.choice(SEPARATORS)) if rng.random() < 0.3 else ""]
        for _ in range(k):
            word = str(rng.choice(WORDS))
            if rng.random() < 0.1:
                word += str(rng.integers(0, 100))  # unseen words
            parts += [word, str(rng.choice(SEPARATORS))]
        docs.append("".join(parts[:-1] if k and rng.random() < 0.5 else parts))
    return docs + EDGES


def assert_same_csr(got, want) -> None:
    assert got.shape == want.shape
    for attr in ("indptr", "indices", "data"):
        a, b = getattr(got, attr), getattr(want, attr)
        assert a.dtype == b.dtype, (attr, a.dtype, b.dtype)
        assert np.array_equal(a, b), attr


CONFIGS = [
    {},
    {"ngram_range": (1, 2)},
    {"ngram_range": (2, 3)},
    {"ngram_range": (1, 3)},
    {"ngram_range": (2, 2), "lowercase": False},
    {"ngram_range": (1, 2), "stop_words": "english"},
    {"ngram_range": (1, 3), "stop_words": ["the", "and", "not", "zz", "ok"]},
    {"ngram_range": (1, 2), "stop_words": ["OK", "Great"], "lowercase": False},
    {"ngram_range": (1, 2), "max_features": 25},
    {"ngram_range": (1, 3), "max_features": 40, "min_df": 2},
    {"binary": True, "ngram_range": (1, 2)},
    {"dtype": np.float32, "ngram_range": (1, 2)},
    {"dtype": np.int32, "lowercase": False},
]


@pytest.mark.parametrize("dense_limit", [text.DENSE_LIMIT, 0])
@pytest.mark.parametrize("options", CONFIGS)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_counts_are_count_vectorizer_transform(options, seed, dense_limit):
    """Dense n-gram tables and hash lookups alike: the CSR sklearn stores, dtypes too."""
    from sklearn.feature_extraction.text import CountVectorizer

    docs = corpus(seed)
    vec = CountVectorizer(**options).fit(docs[:120])
    counter = WordCounts.of(vec, dense_limit=dense_limit)
    assert counter is not None
    for chunk in (docs, docs[100:], docs[-len(EDGES):], [""], ["!!", " a "]):
        assert_same_csr(counter.counts(np.array(chunk, dtype=object)), vec.transform(chunk))


@pytest.mark.parametrize("dense_limit", [text.DENSE_LIMIT, 0])
@pytest.mark.parametrize("ngram_range", [(1, 1), (1, 2), (2, 3), (1, 3)])
def test_a_given_vocabulary_whose_parts_are_unknown_or_never_tokens(ngram_range, dense_limit):
    """Fixed vocabularies: n-grams whose words are no unigram feature, features the token
    pattern never produces (one letter, capitals under lower-casing, punctuation, non-ASCII,
    double spaces, too many words), stop words inside an n-gram."""
    from sklearn.feature_extraction.text import CountVectorizer

    vocabulary = ["late refund", "refund late", "late", "x9 42 box", "box", "great delivery",
                  "Great", "a b", "a", "i", "snake_case e_mail", "e-mail", "café", "late  refund",
                  "late refund box ok", "the box", "box the late", "42", "_ _", "__ __", "zz zz"]
    for stop in (None, ["the"]):
        vec = CountVectorizer(vocabulary=vocabulary, ngram_range=ngram_range,
                              stop_words=stop).fit([])
        docs = corpus(3)
        got = WordCounts.of(vec, dense_limit=dense_limit).counts(np.array(docs, dtype=object))
        assert_same_csr(got, vec.transform(docs))
        assert got.nnz > 0


@pytest.mark.parametrize("ngram_range", [(1, 1), (1, 3)])
def test_a_vocabulary_ascii_text_never_produces_counts_nothing(ngram_range):
    from sklearn.feature_extraction.text import CountVectorizer

    vec = CountVectorizer(vocabulary=["café", "a b", "x", "Late"], ngram_range=ngram_range,
                          stop_words=["late"]).fit([])
    docs = corpus(8, 50)
    got = WordCounts.of(vec, dense_limit=0).counts(np.array(docs, dtype=object))
    assert_same_csr(got, vec.transform(docs))
    assert got.nnz == 0


def test_unsupported_configurations_are_none():
    from sklearn.feature_extraction.text import CountVectorizer, TfidfVectorizer

    docs = corpus(0, 30)
    assert WordCounts.of(TfidfVectorizer().fit(docs)) is not None
    for options in ({"analyzer": "char"}, {"analyzer": "char_wb"}, {"strip_accents": "ascii"},
                    {"token_pattern": r"\b\w+\b"}, {"tokenizer": str.split,
                                                    "token_pattern": None},
                    {"preprocessor": str.upper}, {"analyzer": str.split}):
        assert WordCounts.of(CountVectorizer(**options).fit(docs)) is None, options
    assert WordCounts.of(CountVectorizer()) is None  # not fitted


@pytest.mark.parametrize("odd", ["café au lait", None, np.nan, 5, b"late refund", "ｌａｔｅ",
                                 "straße", "\u212a"])
def test_a_chunk_with_a_value_that_is_not_ascii_text_is_none(odd):
    """Non-ASCII text (whose lower case or word characters differ), missing values and
    other types: the caller's per-document loop decides."""
    from sklearn.feature_extraction.text import CountVectorizer

    docs = corpus(4, 80)
    vec = CountVectorizer(ngram_range=(1, 2)).fit(docs)
    assert WordCounts.of(vec).counts(np.array([*docs, odd], dtype=object)) is None
    assert WordCounts.of(vec).counts(np.array([], dtype=object)) is None


def test_numpy_unicode_arrays_count_too():
    from sklearn.feature_extraction.text import CountVectorizer

    docs = corpus(5, 60)
    vec = CountVectorizer(ngram_range=(1, 2)).fit(docs)
    assert_same_csr(WordCounts.of(vec).counts(np.array(docs)), vec.transform(docs))


# ------------------------------------------------------------ the frameless TF-IDF block

TFIDF = [{}, {"ngram_range": (1, 2)}, {"ngram_range": (1, 2), "sublinear_tf": True},
         {"ngram_range": (2, 3), "norm": "l1", "stop_words": "english"},
         {"binary": True, "norm": None, "use_idf": False},
         {"ngram_range": (1, 3), "smooth_idf": False, "max_features": 30},
         {"dtype": np.float32, "ngram_range": (1, 2), "sublinear_tf": True}]


@pytest.mark.parametrize("options", TFIDF)
def test_tfidf_block_large_chunks_are_the_vectorizer_transform(options):
    """Above the threshold (vectorised) and below it (per document): what
    ``TfidfVectorizer.transform`` stores, bit for bit; a non-ASCII chunk goes through the
    loop with the same result."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    from mlcd_actions.delivery.serving.fastpath import SMALL_BATCH, _tfidf_block

    docs = corpus(6, 300)
    vec = TfidfVectorizer(**options).fit(docs[:150])
    run = _tfidf_block(vec)
    for chunk in (docs, docs[:SMALL_BATCH], [*docs[:100], "Crème brûlée, late refund"]):
        got = run({"text": np.array(chunk, dtype=object)}, ["text"], len(chunk))
        assert_same_csr(got, vec.transform(chunk))


@pytest.mark.parametrize("odd", [None, np.nan, 7])
def test_tfidf_block_chunk_with_a_missing_value_raises_as_sklearn_does(odd):
    from sklearn.feature_extraction.text import TfidfVectorizer

    from mlcd_actions.delivery.serving.fastpath import _tfidf_block

    docs = [*corpus(7, 100), odd]
    vec = TfidfVectorizer().fit(docs[:100])
    with pytest.raises((TypeError, ValueError, AttributeError)):
        vec.transform(docs)
    with pytest.raises(TypeError):
        _tfidf_block(vec)({"text": np.array(docs, dtype=object)}, ["text"], len(docs))


def test_the_probe_compares_the_vectorised_counts(monkeypatch, tmp_path):
    """A wrong vectorised count disables the frameless path although the probe batch is
    smaller than the vectorising threshold."""
    from benchmarks import matrix
    from mlcd_actions.delivery.serving.fastpath import SMALL_BATCH
    from mlcd_actions.delivery.serving.spec import ModelSpec
    from mlcd_actions.models import loading as models

    path = matrix.build("tfidf", tmp_path / "tfidf", rows=300)
    spec = ModelSpec(models.load(str(path)))
    assert spec.frameless
    # the probe's switch to the vectorised counts does not outlive it
    assert [fn.vector_rows for _, _, fn in spec._frameless.blocks
            if hasattr(fn, "vector_rows")] == [SMALL_BATCH]
    real = WordCounts.counts

    def off_by_one(self, values):
        x = real(self, values)
        if x is not None:
            x.data += 1
        return x

    monkeypatch.setattr(WordCounts, "counts", off_by_one)
    assert not ModelSpec(models.load(str(path))).frameless


def test_mlcd_predict_on_the_tfidf_model_is_the_model_exactly(monkeypatch, tmp_path):
    """End to end, one process: chunks large enough to be vectorised, the CSV's text with
    capitals and punctuation; labels and probabilities equal the model's own."""
    from benchmarks import matrix
    from mlcd_actions.stages import predict
    from tests.delivery.serving import fixtures

    path = matrix.build("tfidf", tmp_path / "tfidf", rows=400)
    df = matrix.inputs("tfidf", 1500, seed=9)
    rng = np.random.default_rng(9)
    shout = rng.random(len(df)) < 0.3
    df.loc[shout, "text"] = df.loc[shout, "text"].str.upper() + "!! (late, LATE_2)"
    df.loc[5, "text"] = "!!! ..."  # no token
    df.to_csv(tmp_path / "in.csv", index=False)
    seen = []
    real = WordCounts.counts

    def spy(self, values):
        x = real(self, values)
        seen.append(None if x is None else len(values))
        return x

    monkeypatch.setattr(WordCounts, "counts", spy)
    res = predict.run(str(path), str(tmp_path / "in.csv"), str(tmp_path / "out.parquet"),
                      chunk_rows=500, workers=1, progress=False)
    assert res.status == "passed"
    assert None not in seen and seen.count(500) == 3, seen  # (and the probe's rows)
    out = pd.read_parquet(tmp_path / "out.parquet")
    pred, proba = fixtures.in_process(path, pd.read_csv(tmp_path / "in.csv"))
    assert out["prediction"].tolist() == pred.tolist()
    assert np.array_equal(out["probability"].to_numpy(), proba[:, 1])
