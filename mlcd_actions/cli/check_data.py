"""``mlcd check-data DATA [--label COL] [--sensitive COL]... [--pii-policy policy.yaml]``."""

from __future__ import annotations

import click

from mlcd_actions.cli.common import (
    GATE,
    engine_options,
    spark_settings,
    split_multi,
    split_thresholds,
    stage_command,
)


@stage_command("check-data", help="Data tests: bias per sensitive feature and a PII scan "
               "against a policy (findings are always masked).")
@click.argument("data", type=click.Path(dir_okay=True))
@click.option("--label", default=None, help="Label column (for label-rate gaps per group).")
@click.option("--sensitive", multiple=True,
              help="Sensitive feature column; repeat or separate with commas.")
@click.option("--pii-policy", default=None, type=click.Path(dir_okay=False),
              help="Policy YAML: per column forbid | allow | must-be-hashed, plus rules/forbid.")
@click.option("--rules", multiple=True,
              help="Rule set(s) forbidding PII kinds: hipaa, pci, gdpr, or a rule-set .yaml.")
@click.option("--threshold", "thresholds", multiple=True, type=GATE, metavar="SPEC",
              help="Bias gate, e.g. 'label_rate_gap<=0.2' or 'sex:label_rate_ratio>=0.8'.")
@click.option("--min-group-size", type=int, default=None,
              help="Gate: every group of every sensitive feature has at least N rows.")
@click.option("--pos-label", "positive_label", default=None,
              help="Positive class for label_rate_ratio (binary labels; default 1/True).")
@click.option("--pii/--no-pii", "pii", default=True, show_default=True,
              help="Scan for PII (e-mail, phone, SSN, card, IBAN, IP, date of birth).")
@engine_options
def cmd(data, label, sensitive, pii_policy, rules, thresholds, min_group_size, positive_label,
        pii, engine, spark_master, spark_conf):
    from mlcd_actions.stages import check_data

    return check_data.run(data, label=label, sensitive=split_multi(sensitive),
                          pii_policy=pii_policy, rules=split_multi(rules),
                          thresholds=split_thresholds(thresholds), min_group_size=min_group_size,
                          positive_label=positive_label, scan_pii=pii, engine=engine,
                          spark=spark_settings(spark_master, spark_conf))
