"""``python -m conformance``: run every public xpnn function on every installed backend against the references.

Prints a matrix (case x backend) of the worst error in ulps, or FAIL, and exits
non-zero when any check fails or a public function has no case.
"""
from __future__ import annotations

import argparse
import fnmatch
import json
import sys
import time
import warnings

import numpy as np

import xpnn
from xpnn.conformance import backends, runner
from xpnn.conformance.cases import CASES, SPECIAL


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m conformance", description=__doc__)
    parser.add_argument("--backends", default=",".join(backends.BACKEND_NAMES),
                        help="comma-separated backends (default: every installed one)")
    parser.add_argument("--dtypes", default="float32,float64",
                        help="comma-separated dtypes among " + ",".join(backends.DTYPES))
    parser.add_argument("--only", default="*", help="glob over case labels, e.g. 'gelu*'")
    parser.add_argument("--json", metavar="PATH", help="write every result as JSON")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    warnings.simplefilter("ignore", RuntimeWarning)
    selected = backends.available(tuple(args.backends.split(",")))
    dtypes = [d for d in args.dtypes.split(",") if d]
    cases = [case for case in CASES if fnmatch.fnmatch(case.label, args.only)]
    print(f"xpnn {xpnn.__version__} conformance: {len(cases)} cases x "
          f"{', '.join(b.name for b in selected)} x {', '.join(dtypes)}")
    results = []
    started = time.perf_counter()
    for case in cases:
        for backend in selected:
            for dtype in dtypes:
                if dtype not in backend.dtypes:
                    continue
                record = {"case": case.label, "function": case.function, "backend": backend.name,
                          "dtype": dtype, "reference": case.framework}
                try:
                    outcome = runner.run(case, backend, dtype, np.random.default_rng(0))
                    record.update(outcome.comparison.as_dict(), passed=outcome.passed,
                                  output_problem=outcome.output_problem)
                except Exception as error:  # noqa: BLE001 - every failure is reported, none stops the run
                    record.update(passed=False, error=f"{type(error).__name__}: {error}")
                results.append(record)
    uncovered = sorted(set(xpnn.FUNCTIONS) - {c.function for c in CASES} - set(SPECIAL))
    _print_matrix(results, cases, selected)
    failures = [r for r in results if not r["passed"]]
    print(f"\n{len(results) - len(failures)} passed, {len(failures)} failed "
          f"in {time.perf_counter() - started:.1f} s")
    for record in failures:
        print(f"  FAIL {record['case']} [{record['backend']}, {record['dtype']}]: "
              f"{record.get('error') or record.get('output_problem') or record}")
    if uncovered:
        print(f"uncovered public functions: {', '.join(uncovered)}")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"results": results, "uncovered": uncovered}, handle, indent=1)
    return 1 if failures or uncovered else 0


def _print_matrix(results: list[dict], cases: list, selected: list) -> None:
    """One row per case: the worst ulp error over dtypes per backend, or FAIL."""
    names = [b.name for b in selected]
    width = max(len(c.label) for c in cases) + 2
    print("\n" + "case".ljust(width) + "".join(n[:16].rjust(17) for n in names) + "   (max error in ulp)")
    for case in cases:
        cells = []
        for name in names:
            rows = [r for r in results if r["case"] == case.label and r["backend"] == name]
            if not rows:
                cells.append("-")
            elif not all(r["passed"] for r in rows):
                cells.append("FAIL")
            else:
                cells.append(f"{max(r['max_ulp'] for r in rows):.3g}")
        print(case.label.ljust(width) + "".join(c.rjust(17) for c in cells))


if __name__ == "__main__":
    sys.exit(main())
