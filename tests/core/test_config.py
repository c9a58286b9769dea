import pytest

from mlcd_actions.core import config, secrets
from mlcd_actions.core.errors import ConfigError


def spec():
    ident = lambda v: v  # noqa: E731

    def integer(v):
        if not isinstance(v, int):
            raise ValueError("expected an integer")
        return v

    return {
        "ingest": {"source-uri": ident, "out": ident},
        "evaluate": {"label": ident, "threshold": ident, "model-uri": ident},
        "prepare": {"label": ident, "seed": integer},
        "schema": {"__group__": True, "infer": {"out": ident, "data": ident}},
    }


def write(text):
    with open("mlcd.yaml", "w") as fh:
        fh.write(text)
    return config.load(config.find(None))


def test_defaults_global_and_per_stage():
    cfg = write("version: 1\nlabel: approved\nprepare:\n  seed: 7\nschema:\n  infer:\n"
                "    out: s.yaml\nevaluate:\n  model_uri: runs:/x/model\n")
    dm = config.validate(cfg, spec())
    assert dm["prepare"] == {"label": "approved", "seed": 7}
    assert dm["evaluate"] == {"label": "approved", "model_uri": "runs:/x/model"}
    assert dm["schema"]["infer"] == {"out": "s.yaml"}
    assert dm["ingest"] == {}


@pytest.mark.parametrize("text,needle", [
    ("version: 1\nlabl: x\n", "mlcd.yaml:2: unknown key 'labl' (did you mean 'label'?)"),
    ("version: 1\nprepare:\n  sede: 1\n", "mlcd.yaml:3: unknown option 'sede' for 'prepare'"),
    ("version: 1\nprepare:\n  seed: abc\n", "mlcd.yaml:3: seed: expected an integer"),
    ("version: 1\nschema:\n  infr: {}\n", "unknown command 'schema infr'"),
    ("version: 2\n", "version 2 is not supported"),
    ("version: 1\ningest: [1]\n", "'ingest' must be a mapping"),
])
def test_errors_name_the_line(text, needle):
    cfg = None
    with pytest.raises(ConfigError) as err:
        cfg = write(text)
        config.validate(cfg, spec())
    assert needle in err.value.message
    assert "\n" not in err.value.one_line()


@pytest.mark.parametrize("text,needle", [
    ("version: 1\nlabel: x\nthreshold: ['f1>=0.8']\n",
     "mlcd.yaml:3: 'threshold' is a per-stage option; put it under the stage (e.g. evaluate:)"),
    ("version: 1\nout: data\n",
     "mlcd.yaml:2: 'out' is a per-stage option; put it under the stage (e.g. ingest:)"),
    ("version: 1\nmodel_uri: runs:/x/m\n",
     "mlcd.yaml:2: 'model_uri' is a per-stage option; put it under the stage (e.g. evaluate:)"),
])
def test_per_stage_options_are_refused_at_the_top_level(text, needle):
    cfg = write(text)
    with pytest.raises(ConfigError) as err:
        config.validate(cfg, spec())
    assert err.value.one_line() == needle
    assert err.value.line == int(needle.split(":")[1])


def test_only_shared_options_apply_from_the_top_level():
    assert {"label", "seed", "sensitive", "tracking-uri", "name"} <= config.GLOBAL_OPTIONS
    assert not {"threshold", "out", "model-uri"} & config.GLOBAL_OPTIONS
    cfg = write("version: 1\nseed: 3\nlabel: y\nevaluate:\n  threshold: ['f1>=0.8']\n")
    dm = config.validate(cfg, spec())
    assert dm["prepare"] == {"label": "y", "seed": 3}
    assert dm["evaluate"] == {"label": "y", "threshold": ["f1>=0.8"]}
    assert dm["ingest"] == {}


def test_invalid_yaml_names_the_line():
    with pytest.raises(ConfigError, match=r"mlcd.yaml:3: not valid YAML"):
        write("version: 1\nlabel: x\n  bad: [\n")


def test_several_errors_reported_together():
    cfg = write("version: 1\nfoo: 1\nbar: 2\n")
    with pytest.raises(ConfigError, match=r"unknown key 'foo'.*\+1 more.*unknown key 'bar'"):
        config.validate(cfg, spec())


def test_interpolation_registers_secret(monkeypatch):
    monkeypatch.setenv("MODEL_TOKEN", "s3cr3t-value")
    cfg = write("version: 1\nevaluate:\n  model-uri: http://u:${MODEL_TOKEN}@h/m\n"
                "  label: ${UNSET_VAR:-approved}\n")
    assert cfg.data["evaluate"]["model-uri"] == "http://u:s3cr3t-value@h/m"
    assert cfg.data["evaluate"]["label"] == "approved"
    assert secrets.mask("token s3cr3t-value here") == "token *** here"


def test_missing_variable_is_config_error():
    with pytest.raises(ConfigError, match=r"mlcd.yaml:3: \$\{NOPE\} is not set"):
        write("version: 1\nevaluate:\n  label: ${NOPE}\n")


def test_explicit_missing_file():
    with pytest.raises(ConfigError, match="config file not found: other.yaml"):
        config.find("other.yaml")


def test_cli_refuses_a_per_stage_option_at_the_top_level(mlcd):
    write("version: 1\nlabel: y\nthreshold: ['f1>=0.8']\n")
    r = mlcd("validate", "x.csv", "--schema", "s.yaml")
    assert r.exit_code == 2, r
    assert r.verdict == ("mlcd validate: failed — mlcd.yaml:3: 'threshold' is a per-stage option; "
                         "put it under the stage (e.g. check-data:)")


def test_ingest_source_defaults_to_run_source():
    cfg = write("version: 1\nrun:\n  source: data/a.csv\n")
    dm = config.validate(cfg, {**spec(), "run": {"source": lambda v: v}})
    assert dm["ingest"] == {"source_uri": "data/a.csv"}
    cfg = write("version: 1\nrun:\n  source: data/a.csv\ningest:\n  source-uri: b.csv\n")
    dm = config.validate(cfg, {**spec(), "run": {"source": lambda v: v}})
    assert dm["ingest"] == {"source_uri": "b.csv"}


def test_engine_and_spark_section_reach_every_spark_stage():
    ident = lambda v: v  # noqa: E731
    spark_opts = {"engine": ident, "spark-master": ident, "spark-conf": ident}
    stages = {"validate": {"schema": ident, **spark_opts}, "monitor": dict(spark_opts),
              "prepare": {"label": ident}}
    cfg = write("version: 1\nengine: spark\nspark:\n  master: yarn\n  conf:\n"
                "    spark.executor.memory: 8g\n    spark.dynamicAllocation.enabled: true\n"
                "monitor:\n  spark-master: local[2]\n")
    dm = config.validate(cfg, stages)
    assert dm["validate"] == {"engine": "spark", "spark_master": "yarn", "spark_conf": [
        "spark.executor.memory=8g", "spark.dynamicAllocation.enabled=true"]}
    assert dm["monitor"]["spark_master"] == "local[2]"          # the stage's own value wins
    assert dm["prepare"] == {}


@pytest.mark.parametrize("text,needle", [
    ("version: 1\nspark: yarn\n", "'spark' must be a mapping"),
    ("version: 1\nspark:\n  mastr: yarn\n", "spark: unknown key 'mastr'"),
    ("version: 1\nspark:\n  conf:\n    executor.memory: 8g\n", "not a Spark property"),
])
def test_bad_spark_section_names_the_line(text, needle):
    with pytest.raises(ConfigError, match="mlcd.yaml:2") as info:
        config.validate(write(text), spec())
    assert needle in str(info.value)
