"""A fitted word vectorizer's counts of a whole chunk of ASCII text, vectorised and exact.

scikit-learn's ``CountVectorizer`` (and so ``TfidfVectorizer``) counts one document at a
time in Python: lower-case it, ``re.findall`` the token pattern, drop stop words, join the
n-grams, look each up in ``vocabulary_`` (about 20 µs a document). :class:`WordCounts`
computes the same CSR count matrix for a whole chunk with array operations:

* The text is laid out as one byte buffer (Arrow's ``large_string``). On ASCII text the
  default token pattern ``(?u)\\b\\w\\w+\\b`` finds exactly the maximal runs of
  ``[0-9A-Za-z_]`` of at least two characters within a document, and ``str.lower`` is
  ASCII lower-casing: one byte lookup turns every other byte into a space and lower-cases
  the rest, Arrow splits on spaces, and pieces shorter than two characters are dropped.
* Each token becomes an integer id by a hash lookup (``pyarrow.compute.index_in``) among
  the words the vocabulary's features are made of (a feature is its n-gram's tokens joined
  by one space); stop words are removed before the n-grams, as ``_word_ngrams`` does.
* An n-gram is a run of ``n`` adjacent tokens of one document; it is matched against
  the vocabulary through integer keys (the id of its first ``n - 1`` tokens' prefix times
  one more than the number of words, plus its last token's id): a dense table, or a hash
  lookup when that would be large, built on the first chunk.
* The features found, grouped by document, are sorted and their repeats added up per
  row (scipy's ``sum_duplicates``), of the vectorizer's ``dtype``: ``indptr``,
  ``indices`` and ``data`` are what ``CountVectorizer.transform`` stores, value for value
  and dtype for dtype.

It is used only for the configuration this holds for (:meth:`WordCounts.of`: word
analyzer, default token pattern, no preprocessor, tokenizer or accent stripping, input
``content``), and only on a chunk whose values are all ``str`` and all ASCII
(:meth:`WordCounts.counts` returns None otherwise and the caller counts document by
document, raising on a value that is not a string as scikit-learn does).
"""

from __future__ import annotations

import re
import threading
from typing import Any

import numpy as np

TOKEN_PATTERN = r"(?u)\b\w\w+\b"
DENSE_LIMIT = 1 << 20  # cells (int64, 8 MiB) of an n-gram level's dense table, else hashed
_ASCII_TOKEN = re.compile(r"[0-9A-Za-z_]{2,}")
# byte -> itself if a word character (ASCII \w), else a space; the same lower-casing
_TO_WORD = np.full(256, ord(" "), dtype=np.uint8)
for _c in b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_":
    _TO_WORD[_c] = _c
_TO_LOWER_WORD = _TO_WORD.copy()
_TO_LOWER_WORD[ord("A"):ord("Z") + 1] += 32
del _c


class _Tables:
    """The vocabulary as integer tables (see the module doc).

    Words (the parts of the features that ASCII text can produce) have ids ``0 ..
    n_words - 1``; stop words that are not such a word follow (they are dropped before
    n-grams); ``n_words`` stands for any other token after the drop. The k-token prefixes
    of the features have ids too, with one more id for "no such prefix". Level k maps
    (prefix of k tokens, next word) to the prefix of k + 1 tokens, either by a dense table
    (``prefix * (n_words + 1) + word``) when it has at most ``dense_limit`` cells, or by a
    hash lookup of that key among the prefixes' keys.
    """

    def __init__(self, vocabulary: dict, ngram_range: tuple[int, int], lowercase: bool,
                 stop_words, dense_limit: int) -> None:
        import pyarrow as pa

        min_n, max_n = ngram_range
        stop = {w for w in stop_words or () if isinstance(w, str)}
        words: dict[str, int] = {}
        # prefixes[k]: (id of a k-token prefix, next word) -> id of the (k+1)-token prefix
        prefixes: list[dict[tuple[int, int], int]] = [{} for _ in range(max_n)]
        ends: list[dict[int, int]] = [{} for _ in range(max_n)]  # k: prefix id -> feature
        for feature, index in vocabulary.items():
            if not isinstance(feature, str):
                continue
            parts = feature.split(" ")
            if not min_n <= len(parts) <= max_n or any(
                    not _ASCII_TOKEN.fullmatch(p) or p in stop or (lowercase and p != p.lower())
                    for p in parts):
                continue  # never produced from ASCII text
            prefix = words.setdefault(parts[0], len(words))
            for k, part in enumerate(parts[1:], start=1):
                word = words.setdefault(part, len(words))
                level = prefixes[k]
                prefix = level.setdefault((prefix, word), len(level))
            ends[len(parts) - 1][prefix] = int(index)
        n_words = self.n_words = len(words)
        width = n_words + 1
        extra = sorted(w for w in stop if _ASCII_TOKEN.fullmatch(w) and w not in words)
        self.dictionary = pa.array(list(words) + extra, type=pa.large_string())
        self.n_stop = len(extra)
        # word id -> unigram feature (-1: none); the last entry is the "other token" id
        self.unigram = np.full(width, -1, dtype=np.int64)
        for word, index in ends[0].items():
            self.unigram[word] = index
        # per level k >= 1: (dense table or hash keys, prefix id for "none", features)
        self.levels: list[tuple[np.ndarray | None, Any, int, np.ndarray]] = []
        n_prefixes = n_words
        for k in range(1, max_n):
            level = prefixes[k]
            none = len(level)
            keys = np.fromiter((p * width + w for p, w in level), dtype=np.int64,
                               count=len(level))  # in prefix id order
            if (n_prefixes + 1) * width <= dense_limit:
                dense = np.full((n_prefixes + 1) * width, none, dtype=np.int64)
                dense[keys] = np.arange(len(level))
                self.levels.append((dense, None, none, self._features(ends[k], none)))
            else:
                self.levels.append((None, pa.array(keys), none, self._features(ends[k], none)))
            n_prefixes = len(level)

    @staticmethod
    def _features(ends: dict[int, int], none: int) -> np.ndarray:
        feature = np.full(none + 1, -1, dtype=np.int64)
        for prefix, index in ends.items():
            feature[prefix] = index
        return feature


class WordCounts:
    """``CountVectorizer.transform``'s count matrix of a chunk (``binary``: ones),
    computed with arrays."""

    def __init__(self, vec, dense_limit: int = DENSE_LIMIT) -> None:
        self.dense_limit = dense_limit
        self.vocabulary = vec.vocabulary_
        self.ngram_range = (int(vec.ngram_range[0]), int(vec.ngram_range[1]))
        self.lowercase = bool(vec.lowercase)
        self.binary = bool(vec.binary)
        self.stop_words = vec.get_stop_words()
        self.dtype = np.dtype(vec.dtype)
        self.n_features = len(self.vocabulary)
        self._tables: _Tables | None = None
        self._lock = threading.Lock()

    @classmethod
    def of(cls, vec, dense_limit: int = DENSE_LIMIT) -> WordCounts | None:
        """For a fitted vectorizer of a supported configuration, else None."""
        try:
            min_n, max_n = (int(v) for v in vec.ngram_range)
            supported = (
                getattr(vec, "input", None) == "content" and vec.analyzer == "word"
                and vec.preprocessor is None and vec.tokenizer is None
                and vec.strip_accents is None and vec.token_pattern == TOKEN_PATTERN
                and isinstance(vec.lowercase, bool) and 1 <= min_n <= max_n
                and isinstance(getattr(vec, "vocabulary_", None), dict)
                and np.dtype(vec.dtype).kind in "fiu")
            stop = vec.get_stop_words()
        except (AttributeError, TypeError, ValueError):
            return None
        if not supported or not (stop is None or isinstance(stop, (set, frozenset))):
            return None
        return cls(vec, dense_limit)

    def tables(self) -> _Tables:
        """Built on the first chunk counted (serving: by the start-up probe), once."""
        if self._tables is None:
            with self._lock:
                if self._tables is None:
                    self._tables = _Tables(self.vocabulary, self.ngram_range,
                                           self.lowercase, self.stop_words,
                                           self.dense_limit)
        return self._tables

    def counts(self, values: np.ndarray) -> Any:
        """The CSR counts of ``values`` (a 1-D array of documents), or None when a value
        is not a ``str`` or not ASCII."""
        import pandas as pd
        import pyarrow as pa
        import pyarrow.compute as pc
        from scipy import sparse

        n = len(values)
        if n == 0 or pd.api.types.infer_dtype(values, skipna=False) != "string":
            return None
        text = pa.array(values, type=pa.large_string())
        if text.null_count or not pc.all(pc.string_is_ascii(text)).as_py():
            return None
        tables = self.tables()
        other = tables.n_words + tables.n_stop  # the id of any other token, for now
        docs, ids = _word_ids(text, self.lowercase, tables.dictionary, other)
        if tables.n_stop:  # stop words go before the n-grams are made
            keep = ids < tables.n_words
            keep |= ids == other
            docs, ids = docs[keep], ids[keep]
            np.minimum(ids, tables.n_words, out=ids)
        cols, indptr = _ngrams(docs, ids, tables, self.ngram_range, n)
        x = sparse.csr_matrix((np.ones(len(cols), dtype=np.int64), cols, indptr),
                              shape=(n, self.n_features))
        x.sum_duplicates()  # each row's features sorted, repeats added up
        # as _count_vocab builds it: int32 indices unless the entries need int64
        index_dtype = np.int64 if x.nnz > np.iinfo(np.int32).max else np.int32
        x = sparse.csr_matrix((x.data.astype(self.dtype), x.indices.astype(index_dtype),
                               x.indptr.astype(index_dtype)), shape=(n, self.n_features))
        if self.binary:
            x.data.fill(1)
        return x


def _word_ids(text, lowercase: bool, dictionary, other: int
              ) -> tuple[np.ndarray, np.ndarray]:
    """(document, index in ``dictionary`` or ``other``) of each token of ASCII ``text`` (a
    ``large_string`` array of offset 0): every byte that is not a word character becomes
    a space (lower-casing, A-Z become a-z), the text is split on spaces and the pieces
    shorter than two characters are dropped."""
    import pyarrow as pa
    import pyarrow.compute as pc

    offsets, data = text.buffers()[1:3]
    table = _TO_LOWER_WORD if lowercase else _TO_WORD
    spaced = table[np.frombuffer(data, dtype=np.uint8)] if data is not None \
        else np.zeros(0, dtype=np.uint8)
    pieces = pc.split_pattern(
        pa.LargeStringArray.from_buffers(len(text), offsets, pa.py_buffer(spaced)), " ")
    flat = pc.list_flatten(pieces)
    keep = pc.binary_length(flat).to_numpy(zero_copy_only=False) >= 2
    docs = pc.list_parent_indices(pieces).to_numpy(zero_copy_only=False)[keep]
    ids = pc.index_in(flat, value_set=dictionary).fill_null(other) \
        .to_numpy(zero_copy_only=False)[keep]
    return docs.astype(np.int64, copy=False), ids.astype(np.int64)


def _ngrams(docs: np.ndarray, ids: np.ndarray, tables: _Tables,
            ngram_range: tuple[int, int], n_rows: int) -> tuple[np.ndarray, np.ndarray]:
    """(features, row pointers) of the vocabulary n-grams of each document, grouped by
    document, ``docs`` (ascending) and ``ids`` being the documents and word ids
    (``n_words``: any other token) of the tokens left after stop words, in order."""
    import pyarrow as pa
    import pyarrow.compute as pc

    min_n, max_n = ngram_range
    length = len(ids)
    # the feature of the n-gram starting at each token, one column per n (-1: none)
    found = np.empty((length, max_n - min_n + 1), dtype=np.int64)
    if min_n == 1:
        found[:, 0] = tables.unigram[ids]
    for n in range(max(min_n, 2), max_n + 1):
        found[max(length - n + 1, 0):, n - min_n] = -1  # too near the end
    width = tables.n_words + 1
    prefix = ids  # the 1-token prefixes are the words
    for k in range(1, max_n):
        if length <= k:
            break
        dense, keys, none, feature = tables.levels[k - 1]
        key = prefix[:-1] * width + ids[k:]
        if dense is not None:
            prefix = dense[key]
        else:
            prefix = pc.index_in(pa.array(key), value_set=keys).fill_null(none) \
                .to_numpy(zero_copy_only=False).astype(np.int64)
        prefix[docs[:-k] != docs[k:]] = none  # runs across two documents
        if k + 1 >= min_n:
            found[:length - k, k + 1 - min_n] = feature[prefix]
    cells = found.ravel()
    hits = np.flatnonzero(cells >= 0)
    first = np.searchsorted(docs, np.arange(n_rows + 1)) * found.shape[1]  # a row's cells
    return cells[hits], np.searchsorted(hits, first)
