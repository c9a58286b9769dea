"""Generate the credit-approval example data, deterministically.

    python generate_data.py            # writes data/applications.csv and data/new_applications.csv

The data is synthetic: loan applications with a binary label ``approved``, two sensitive
attributes (``sex``, ``age_band``) for the bias and fairness checks, and one planted PII
column (``email``) that the compliance check must catch unless it is hashed (the example's
``prepare`` transform hashes it; see credit/features.py and pii-policy.yaml).

Same seed, same bytes: the committed CSVs are what this script writes.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

FIRST = ["alex", "sam", "maria", "li", "omar", "anna", "jon", "fatima", "yuki", "noah",
         "ines", "raj", "chloe", "ivan", "zoe", "tariq", "emma", "diego", "sara", "kofi"]
LAST = ["smith", "garcia", "chen", "khan", "muller", "rossi", "silva", "kim", "novak",
        "okafor", "dubois", "nakamura", "jensen", "ahmed", "lopez", "brown"]
PURPOSES = ["car", "home_improvement", "debt_consolidation", "education", "business", "other"]
EMPLOYMENT = ["salaried", "self_employed", "contract", "unemployed"]
HOUSING = ["rent", "mortgage", "own"]


def age_band(age: np.ndarray) -> np.ndarray:
    bands = np.array(["18-25", "26-35", "36-50", "51+"])
    return bands[np.digitize(age, [26, 36, 51])]


def applications(n: int, seed: int, *, start_id: int = 100000, labelled: bool = True,
                 income_shift: float = 0.0) -> pd.DataFrame:
    """``n`` synthetic applications; ``income_shift`` moves log-income (for drift demos)."""
    rng = np.random.default_rng(seed)
    age = rng.integers(18, 76, size=n)
    sex = rng.choice(["female", "male"], size=n, p=[0.48, 0.52])
    employment = rng.choice(EMPLOYMENT, size=n, p=[0.62, 0.18, 0.14, 0.06])
    housing = rng.choice(HOUSING, size=n, p=[0.45, 0.38, 0.17])
    purpose = rng.choice(PURPOSES, size=n)
    income = np.round(np.exp(rng.normal(10.6 + income_shift + 0.006 * (age - 40), 0.45, n)), -2)
    income[employment == "unemployed"] = np.round(income[employment == "unemployed"] * 0.3, -2)
    loan = np.round(np.clip(rng.lognormal(9.3, 0.6, n), 1000, 80000), -2)
    term = rng.choice([12, 24, 36, 48, 60], size=n)
    history = np.clip(np.round(rng.gamma(2.0, 3.0, n) + (age - 18) * 0.15, 1), 0, None)
    accounts = rng.poisson(3, n)
    late = rng.poisson(0.4, n)
    dti = np.round(np.clip((loan / term * 12) / income + rng.normal(0.15, 0.08, n), 0, 1.5), 3)

    first = rng.choice(FIRST, size=n)
    last = rng.choice(LAST, size=n)
    ids = np.arange(start_id, start_id + n)
    email = [f"{f}.{sname}{i % 997}@example.com" for f, sname, i in zip(first, last, ids)]

    df = pd.DataFrame({
        "applicant_id": ids,
        "email": email,
        "age": age,
        "age_band": age_band(age),
        "sex": sex,
        "employment": employment,
        "housing": housing,
        "purpose": purpose,
        "annual_income": income,
        "loan_amount": loan,
        "term_months": term,
        "credit_history_years": history,
        "open_accounts": accounts,
        "late_payments": late,
        "debt_to_income": dti,
    })
    if labelled:
        score = (0.55
                 + 1.1 * (np.log(income) - 10.6)
                 - 3.2 * (dti - 0.35)
                 + 0.08 * np.minimum(history, 15)
                 - 0.7 * late
                 - 0.9 * (employment == "unemployed")
                 + 0.25 * (housing == "own")
                 - 0.35 * (loan > 30000)
                 + rng.logistic(0, 0.8, n))
        df["approved"] = (score > 0).astype(int)
    return df


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=3000, help="labelled applications")
    parser.add_argument("--batch-rows", type=int, default=500, help="unlabelled new applications")
    parser.add_argument("--seed", type=int, default=20240611)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "data")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    train = applications(args.rows, args.seed)
    batch = applications(args.batch_rows, args.seed + 1, start_id=900000, labelled=False)
    train.to_csv(args.out / "applications.csv", index=False, lineterminator="\n")
    batch.to_csv(args.out / "new_applications.csv", index=False, lineterminator="\n")
    print(f"wrote {len(train)} rows to {args.out / 'applications.csv'} "
          f"(approval rate {train['approved'].mean():.2f}) and {len(batch)} rows to "
          f"{args.out / 'new_applications.csv'}")


if __name__ == "__main__":
    main()
