"""Feature code: the ``prepare`` transform and the features the model derives itself.

``prepare(df)`` is the transform mlcd.yaml names (``prepare.transform``). It only
pseudonymises the e-mail address (salted SHA-256), so the compliance check's
``must-be-hashed`` policy passes on the prepared data. It must be deterministic: the same
rows give the same output, so ``mlcd run`` can skip unchanged stages.

Derived features (``add_ratios``) live in the model pipeline, not in ``prepare``: the
model then takes raw applications, exactly as ``serve`` and ``predict`` receive them, and
training and serving cannot compute the features differently.
"""

from __future__ import annotations

import hashlib
import os

import numpy as np
import pandas as pd

RAW_NUMERIC = ["age", "annual_income", "loan_amount", "term_months", "credit_history_years",
               "open_accounts", "late_payments", "debt_to_income"]
DERIVED = ["loan_to_income", "monthly_payment"]
NUMERIC = RAW_NUMERIC + DERIVED
CATEGORICAL = ["employment", "housing", "purpose"]
# sensitive attributes: kept in the data for the bias and fairness checks, never model inputs
SENSITIVE = ["sex", "age_band"]


def pseudonymise(value: str, salt: str) -> str:
    return hashlib.sha256((salt + value.strip().lower()).encode("utf-8")).hexdigest()


def prepare(df: pd.DataFrame) -> pd.DataFrame:
    """The ``prepare`` transform: hash the PII column, leave everything else as it is."""
    salt = os.environ.get("CREDIT_EMAIL_SALT", "mlcd-example")
    out = df.copy()
    out["email"] = [pseudonymise(v, salt) if isinstance(v, str) else v for v in out["email"]]
    return out


def add_ratios(X: pd.DataFrame) -> pd.DataFrame:
    """Derived features, computed inside the model (see the module docstring)."""
    out = X.copy()
    income = out["annual_income"].astype(float).replace(0, np.nan)
    out["loan_to_income"] = out["loan_amount"].astype(float) / income
    out["monthly_payment"] = out["loan_amount"].astype(float) / out["term_months"].astype(float)
    return out
