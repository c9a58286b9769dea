"""Spark engine for the data stages: ``validate``, ``check-data`` and ``monitor`` with
``--engine spark`` (``predict --engine spark`` shares the session and reading pieces).

* :mod:`mlcd_actions.data.spark.session`: one way to reach a cluster (``spark.master`` and
  ``spark.conf`` in ``mlcd.yaml``), reading a table from any Hadoop-compatible path with
  a global row number, and Spark errors turned into one line;
* :mod:`mlcd_actions.data.spark.validate`: the pandera schema on a Spark DataFrame;
* :mod:`mlcd_actions.data.spark.checks`: bias aggregations and the PII scan in the executors;
* :mod:`mlcd_actions.data.spark.drift`: drift statistics from Spark aggregations.

pyspark is imported inside functions only (fast ``mlcd --help``).
"""
