"""A training script, not a package."""

import json
import os


def main():
    with open(os.environ["MLCD_PARAMS_PATH"], encoding="utf-8") as fh:
        params = json.load(fh)
    print(params)


if __name__ == "__main__":
    main()
