"""Write the public intent data sets as ``text,category`` CSVs for ``support-agent intents``.

CLINC150 (Larson et al. 2019, CC BY 3.0; ``../shared/data/clinc150/train_val.json.gz``):

- ``clinc_train.csv``: the 15,000 in-scope training rows;
- ``clinc_oos_train.csv``: the 100 out-of-scope training rows (category ``out_of_scope``);
- ``clinc_val.csv``: the 3,000 in-scope validation rows plus the 100 out-of-scope validation
  rows (category ``out_of_scope``), the measurement set.

Banking77 (Casanueva et al. 2020, CC BY 4.0) is already ``text,category`` and is used as it is.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import json
from pathlib import Path

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def write(path: Path, rows: list[tuple[str, str]]) -> None:
    """Write ``text,category`` rows."""
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["text", "category"])
        writer.writerows(rows)


def main() -> None:
    """Convert CLINC150 into the three CSVs under ``--out``."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--shared", type=Path, default=SHARED)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    data = json.loads(
        gzip.decompress((args.shared / "clinc150" / "train_val.json.gz").read_bytes())
    )
    write(args.out / "clinc_train.csv", [(t, c) for t, c in data["train"]])
    write(args.out / "clinc_oos_train.csv", [(t, "out_of_scope") for t, _ in data["oos_train"]])
    write(
        args.out / "clinc_val.csv",
        [(t, c) for t, c in data["val"]] + [(t, "out_of_scope") for t, _ in data["oos_val"]],
    )
    print(f"wrote CLINC150 CSVs to {args.out}")


if __name__ == "__main__":
    main()
