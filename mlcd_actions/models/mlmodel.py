"""Read a local MLflow model directory without importing mlflow, when that is safe.

Importing mlflow costs about 2 s (its package ``__init__`` pulls in tracking, tracing and
GenAI modules), which is most of what ``mlcd predict`` spends on a small file and a
good part of a serving container's start-up. For the common case, a scikit-learn model
in a local directory, mlflow would only read the YAML ``MLmodel`` file and unpickle one
file, so :func:`read` does the same:

* the ``MLmodel`` file is parsed with PyYAML (``safe_load``);
* the signature is kept when every input is a named column of a scalar MLflow type
  (``double``, ``long``, ``string``...) or there is none; :class:`Signature` offers the
  part of mlflow's ``ModelSignature`` API mlcd uses (``inputs.has_input_names()``,
  ``input_names()``, ``inputs.inputs[i].name/.type.name/.required``, ``to_dict()``);
* the ``sklearn`` flavor is loaded as ``mlflow.sklearn.load_model`` does: ``pickle``,
  ``cloudpickle`` or ``skops`` (with the flavor's ``skops_trusted_types``), and only
  while ``MLFLOW_ALLOW_PICKLE_DESERIALIZATION`` allows it the way mlflow reads it
  (unset, ``true`` or ``1``).

Anything else (tensor or object signatures, a flavor with ``code`` paths, a
``python_function``-only model, the flag set to refuse, an unknown format) returns None
from :func:`read` or :meth:`Light.load_sklearn`, and the caller loads the model through
mlflow, so every decision mlflow makes for those cases is still its own.
``tests/models/test_mlmodel.py`` checks that both routes agree, including on the flag.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# mlflow.types.DataType names: a column signature with only these types is read here
SCALAR_TYPES = frozenset({"string", "integer", "long", "float", "double", "boolean",
                          "binary", "datetime"})
SERIALIZATION_FORMATS = frozenset({"pickle", "cloudpickle", "skops"})
PICKLE_FLAG = "MLFLOW_ALLOW_PICKLE_DESERIALIZATION"


@dataclass(frozen=True)
class DataType:
    name: str


@dataclass(frozen=True)
class ColSpec:
    name: str
    type: DataType
    required: bool = True


@dataclass
class Schema:
    """Column schema: ``inputs`` is the list of :class:`ColSpec`; ``raw`` is the JSON list
    the MLmodel file holds (what mlflow's ``Schema.to_dict`` returns)."""

    inputs: list[ColSpec]
    raw: list = field(repr=False, default_factory=list)

    def has_input_names(self) -> bool:
        return bool(self.inputs) and len(self.inputs) == len(self.raw)

    def input_names(self) -> list[str]:
        return [c.name for c in self.inputs]

    def to_dict(self) -> list:
        return self.raw


@dataclass
class Signature:
    inputs: Schema | None
    outputs: Schema | None


@dataclass
class Light:
    """What the MLmodel file says, read without mlflow."""

    path: Path
    flavors: dict
    metadata: dict
    signature: Signature | None
    run_id: str | None
    model_id: str | None

    def load_sklearn(self) -> Any | None:
        """The scikit-learn model as ``mlflow.sklearn.load_model`` returns it, or None when
        mlflow has to decide (no sklearn flavor, code paths, the pickle flag, a format this
        module does not know). Unpickling errors propagate, as they do from mlflow."""
        conf = self.flavors.get("sklearn")
        if not isinstance(conf, dict) or conf.get("code") or not pickle_allowed():
            return None
        fmt = conf.get("serialization_format", "pickle")
        pickled = conf.get("pickled_model")
        if fmt not in SERIALIZATION_FORMATS or not isinstance(pickled, str):
            return None
        target = self.path / pickled
        if fmt == "skops":
            import skops.io

            return skops.io.load(target, trusted=conf.get("skops_trusted_types"))
        with open(target, "rb") as fh:
            if fmt == "pickle":
                import pickle

                return pickle.load(fh)
            import cloudpickle

            return cloudpickle.load(fh)


def pickle_allowed() -> bool:
    """``MLFLOW_ALLOW_PICKLE_DESERIALIZATION`` as mlflow reads it, default True (mlflow 3):
    False for every other value, so mlflow itself refuses or rejects it."""
    value = os.environ.get(PICKLE_FLAG)
    return value is None or value.lower() in ("true", "1")


def read(path: Path) -> Light | None:
    """The MLmodel file of the model directory ``path``; None when mlflow must read it.

    A file that is not YAML (or not a mapping) raises ``ValueError`` with its reason.
    """
    import yaml

    text = (path / "MLmodel").read_text(encoding="utf-8")
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ValueError(str(exc).splitlines()[0] if str(exc) else "not YAML") from exc
    if not isinstance(doc, dict):
        raise ValueError("the MLmodel file is not a YAML mapping")
    flavors = doc.get("flavors")
    if not isinstance(flavors, dict):
        return None
    signature = doc.get("signature")
    sig = None
    if signature is not None:
        sig = _signature(signature)
        if sig is None:
            return None
    metadata = doc.get("metadata")
    return Light(path=path, flavors=flavors,
                 metadata=metadata if isinstance(metadata, dict) else {},
                 signature=sig, run_id=_text(doc.get("run_id")),
                 model_id=_text(doc.get("model_id")))


def _text(value) -> str | None:
    return str(value) if value not in (None, "") else None


def _signature(doc) -> Signature | None:
    if not isinstance(doc, dict):
        return None
    inputs = _schema(doc.get("inputs"))
    outputs = _schema(doc.get("outputs"), named=False)
    if inputs is False or outputs is False:
        return None
    return Signature(inputs=inputs or None, outputs=outputs or None)


def _schema(text, named: bool = True) -> Schema | None | bool:
    """A :class:`Schema`; None when absent; False when only mlflow can read it.

    Inputs must be named scalar columns; outputs (only shown by ``/metadata``) are kept
    as the JSON list they are, with their named scalar columns as ``inputs``."""
    if text is None:
        return None
    try:
        raw = json.loads(text) if isinstance(text, str) else None
    except ValueError:
        return False
    if not isinstance(raw, list) or not raw:
        return False
    cols = []
    for item in raw:
        if not (isinstance(item, dict) and isinstance(item.get("name"), str)
                and item.get("type") in SCALAR_TYPES):
            if named:
                return False
            continue
        cols.append(ColSpec(item["name"], DataType(item["type"]), bool(item.get("required", True))))
    return Schema(cols, raw)
