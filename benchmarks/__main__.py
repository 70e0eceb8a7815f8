"""``python -m benchmarks {activations,random,layers} [--libraries numpy,torch,jax] [--json PATH]``."""
from __future__ import annotations

import argparse
import json
import sys

from benchmarks import activations, layers, random


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks")
    parser.add_argument("suite", choices=["activations", "random", "layers"])
    parser.add_argument("--libraries", default="numpy,torch,jax")
    parser.add_argument("--json", metavar="PATH")
    args = parser.parse_args(argv)
    libraries = tuple(args.libraries.split(","))
    if args.suite in ("random", "layers"):
        suite = random if args.suite == "random" else layers
        rows = suite.run(libraries)
        print(suite.report(rows))
        result: dict = {"rows": rows}
    else:
        rows = activations.run(libraries)
        overhead = activations.dispatch_overhead()
        print(activations.report(rows, overhead))
        result = {"rows": rows, "dispatch_overhead_us": overhead}
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(result, handle, indent=1, default=str)
    return 0


if __name__ == "__main__":
    sys.exit(main())
