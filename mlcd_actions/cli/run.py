"""``mlcd run [--config mlcd.yaml] [--until STAGE] [--from STAGE] [--force]``: the pipeline."""

from __future__ import annotations

import click

from mlcd_actions.cli.common import stage_command

STAGES = ("ingest, validate, prepare, check-data, version-data, build-training, train, "
          "evaluate, check-fairness, register, deploy-staging, smoke-test-staging, "
          "deploy-production, smoke-test-production, predict, monitor, report")


@stage_command("run", short_help="Run the whole pipeline locally, skipping unchanged stages.",
               help=f"""Run the whole pipeline from mlcd.yaml: {STAGES}.

Each stage is the same `mlcd <stage>` command CI runs, with the same mlcd.yaml; `run` wires
each stage's outputs into the next and fills in local defaults (MLflow in
sqlite:///.mlcd/mlflow.db, a DVC remote folder in .mlcd/dvc-remote, the `local` deploy
target). A stage whose inputs did not change (content hashes of data and code, its
resolved options, upstream outputs) is skipped and its report and files are restored from
.mlcd/cache. Gate thresholds are part of the gate stages' keys only: changing one re-runs
that gate, not training. Local servers started by deploy are stopped at the end unless
--keep-serving. Prints a summary table; the last line is the verdict and where the report
is. Exit code: the first failing stage's.

--print-cache-key STAGE prints a key for CI caches (actions/cache, GitLab cache:key),
computed from the repository alone, and exits.""")
@click.option("--config", "config_file", default=None, type=click.Path(dir_okay=False),
              metavar="FILE", help="Pipeline config (default: ./mlcd.yaml). Stages run in "
                                   "its folder.")
@click.option("--until", default=None, metavar="STAGE",
              help="Stop after this stage (a stage or step name, e.g. train or "
                   "deploy-staging).")
@click.option("--from", "from_", default=None, metavar="STAGE",
              help="Re-run from this stage on; earlier stages are taken from the cache or "
                   "their last reports.")
@click.option("--force", is_flag=True, default=False,
              help="Ignore the cache: run every stage.")
@click.option("--keep-serving", is_flag=True, default=False,
              help="Leave the staging and production servers running (deploy and "
                   "smoke-test then always run).")
@click.option("--source", default=None, metavar="URI",
              help="What ingest fetches [default: run.source or ingest.source-uri in "
                   "mlcd.yaml].")
@click.option("--batch", default=None, metavar="PATH",
              help="Data scored by predict and compared by monitor [default: the prepared "
                   "test set].")
@click.option("--name", default=None,
              help="Registered model name when register/deploy have none [default: the "
                   "config's project, else the folder name].")
@click.option("--schema", default=None, metavar="SCHEMA",
              help="Schema for validate when validate.schema is unset [default: "
                   "./schema.yaml when present].")
@click.option("--cache-dir", default=".mlcd/cache", show_default=True,
              type=click.Path(file_okay=False), help="Stage cache (relative to the project).")
@click.option("--print-cache-key", default=None, metavar="STAGE",
              help="Print STAGE's CI cache key (also the cache-key output) and exit.")
def cmd(config_file, until, from_, force, keep_serving, source, batch, name, schema, cache_dir,
        print_cache_key):
    from mlcd_actions.cli import commands
    from mlcd_actions.core.results import StageResult
    from mlcd_actions.run import pipeline

    ctx = click.get_current_context()
    report_dir = ctx.params.get("report_dir") or ".mlcd/reports"
    config_file = config_file or ctx.find_root().params.get("config_path")
    settings = pipeline.Settings(config_path=config_file, source=source, batch=batch,
                                 name=name, schema=schema, report_dir=report_dir,
                                 keep_serving=keep_serving)
    if print_cache_key:
        key = pipeline.static_key(print_cache_key, settings, commands=commands())
        click.echo(key)
        return StageResult("run", reason=f"cache key of {print_cache_key}: {key}",
                           outputs={"cache-key": key, "stage": print_cache_key})
    result = pipeline.execute_pipeline(settings, until=until, from_=from_, force=force,
                                       cache_dir=cache_dir, echo=click.echo,
                                       commands=commands())
    click.echo("")
    click.echo(pipeline.render_table(result))
    return result
