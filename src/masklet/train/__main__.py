"""`torchrun --nproc-per-node N -m masklet.train --data ... --out ...`: one training process.

The same options as `masklet train`; under torchrun every process runs this, and rank 0
writes the files and prints the summary.
"""

from __future__ import annotations

import argparse
import os
import sys

from masklet.errors import MaskletError
from masklet.train.options import add_train_arguments, run_from_args, summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m masklet.train", description=__doc__.split("\n")[0])
    add_train_arguments(parser)
    args = parser.parse_args(argv)
    try:
        result = run_from_args(args)
    except MaskletError as exc:
        print(f"python -m masklet.train: error: {exc}", file=sys.stderr)  # noqa: T201
        return 2
    if int(os.environ.get("RANK", "0")) == 0:
        print(summary(result))  # noqa: T201
    return 0


if __name__ == "__main__":
    sys.exit(main())
