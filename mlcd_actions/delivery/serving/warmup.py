"""``python -m mlcd_actions.delivery.serving.warmup MODEL_DIR``: import what ``mlcd serve``
imports and load the model once, as the serving image's build does.

The image installs its packages without compiling them (``pip --no-compile``: the
bytecode of every module of scipy, pandas and friends is about a quarter of the image)
and then runs this as root, so Python writes ``__pycache__`` for exactly the modules
serving uses; a module imported later is compiled in memory. It also proves, at build
time, that the image can load its model.
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        sys.stderr.write("usage: python -m mlcd_actions.delivery.serving.warmup MODEL_DIR\n")
        return 2
    import compileall
    import os

    import uvicorn.config  # noqa: F401 - what uvicorn imports before the app
    import uvicorn.supervisors  # noqa: F401

    import mlcd_actions
    import mlcd_actions.delivery.serving.server  # noqa: F401
    from mlcd_actions.delivery.serving import app, threads

    # mlcd-actions itself is small: all of it (the command and stage modules included)
    compileall.compile_dir(os.path.dirname(mlcd_actions.__file__), quiet=1)

    for name in ("uvloop", "httptools", "uvicorn.loops.uvloop",
                 "uvicorn.protocols.http.httptools_impl", "uvicorn.lifespan.on"):
        try:
            __import__(name)
        except ImportError:
            pass
    spec = app.load_spec(app.Settings(model_uri=args[0]))
    threads.info()
    path = ("numeric fast path" if spec.fast else "frameless path" if spec.frameless
            else "direct python_function path" if spec.direct else "DataFrame path")
    sys.stdout.write(f"warm-up: model {spec.model.display} loaded ({path})\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
