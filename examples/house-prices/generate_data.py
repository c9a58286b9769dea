"""Generate the house-prices example data, deterministically.

    python generate_data.py            # writes data/houses.csv

Synthetic house sales with a numeric label ``price``: a regression example showing that
nothing in mlcd is classification-only. Same seed, same bytes.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

NEIGHBOURHOODS = {"riverside": 1.25, "old_town": 1.15, "harbour": 1.05, "hillcrest": 0.95,
                  "industrial": 0.8}


def houses(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    hood = rng.choice(list(NEIGHBOURHOODS), size=n, p=[0.15, 0.2, 0.25, 0.25, 0.15])
    area = np.round(np.clip(rng.lognormal(4.6, 0.35, n), 25, 450), 1)
    rooms = np.clip(np.round(area / 28 + rng.normal(0, 0.8, n)), 1, 12).astype(int)
    year = rng.integers(1900, 2025, size=n)
    garage = rng.random(n) < 0.45
    condition = rng.choice(["poor", "fair", "good", "excellent"], size=n,
                           p=[0.08, 0.3, 0.45, 0.17])
    cond_factor = pd.Series(condition).map({"poor": 0.85, "fair": 0.95, "good": 1.0,
                                            "excellent": 1.12}).to_numpy()
    distance = np.round(rng.gamma(2.0, 2.5, n), 2)
    factor = pd.Series(hood).map(NEIGHBOURHOODS).to_numpy()
    price = (2600 * area * factor * cond_factor
             * (1 - 0.012 * np.minimum(distance, 20))
             * (1 + 0.0015 * (year - 1960))
             + 9000 * garage + 4000 * rooms
             + rng.normal(0, 18000, n))
    return pd.DataFrame({
        "house_id": np.arange(1, n + 1),
        "neighbourhood": hood,
        "area_m2": area,
        "rooms": rooms,
        "year_built": year,
        "garage": garage.astype(int),
        "condition": condition,
        "distance_to_centre_km": distance,
        "price": np.round(np.clip(price, 30000, None), -2),
    })


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1500)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "data")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    df = houses(args.rows, args.seed)
    df.to_csv(args.out / "houses.csv", index=False, lineterminator="\n")
    print(f"wrote {len(df)} rows to {args.out / 'houses.csv'}")


if __name__ == "__main__":
    main()
