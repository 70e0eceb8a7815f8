"""``python -m benchmarks activations [--libraries numpy,torch,jax] [--json PATH]``."""
from __future__ import annotations

import argparse
import json
import sys

from benchmarks import activations


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks")
    parser.add_argument("suite", choices=["activations"])
    parser.add_argument("--libraries", default="numpy,torch,jax")
    parser.add_argument("--json", metavar="PATH")
    args = parser.parse_args(argv)
    rows = activations.run(tuple(args.libraries.split(",")))
    overhead = activations.dispatch_overhead()
    print(activations.report(rows, overhead))
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"rows": rows, "dispatch_overhead_us": overhead}, handle, indent=1, default=str)
    return 0


if __name__ == "__main__":
    sys.exit(main())
