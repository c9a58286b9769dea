"""Online predictions (``mlcd serve``): the ASGI app, request parsing and validation
against the model signature, the prediction log, and the uvicorn runner.

Modules:

* :mod:`.spec` — what the model takes and gives (:class:`~.spec.ModelSpec`), shared by
  ``serve`` and ``predict``: input columns and types, classes, lineage, result columns.
* :mod:`.payload` — MLflow-compatible JSON payloads to a DataFrame, with one clear
  message naming the field for every way a request can be wrong.
* :mod:`.predlog` — the JSON-lines prediction log ``monitor`` reads.
* :mod:`.app` — the ASGI app (``/health``, ``/metadata``, ``/predict``).
* :mod:`.server` — runs the app under uvicorn with N worker processes.

A Docker image runs it as ``mlcd serve --model-uri /opt/model``.
"""
