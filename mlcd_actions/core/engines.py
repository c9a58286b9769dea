"""The engines a data stage runs on: ``pandas`` (in process, the default) or ``spark``.

One option everywhere: ``--engine`` = ``MLCD_ENGINE`` = ``engine:`` in ``mlcd.yaml`` (top
level: every stage that has the option takes it), for ``validate``, ``check-data``,
``monitor`` and ``predict``. Where Spark runs is :class:`mlcd_actions.data.spark.session.Settings`
(``--spark-master``, ``--spark-conf``; ``spark: {master, conf}`` in ``mlcd.yaml``).
"""

from __future__ import annotations

from mlcd_actions.core.errors import ConfigError

PANDAS = "pandas"
SPARK = "spark"
ENGINES = (PANDAS, SPARK)


def check_engine(engine: str | None) -> str:
    """The engine's name (None: pandas); an unknown one is a ConfigError."""
    name = (engine or PANDAS).strip().lower()
    if name not in ENGINES:
        raise ConfigError(f"--engine {engine!r}: use {' or '.join(ENGINES)}")
    return name
