"""Per-call timings against Keras 3: xpnn and ``keras.ops`` on the same (1000,) float32 arrays.

Keras fixes its backend when it is imported (``KERAS_BACKEND``), so each
library runs in its own process: ``python -m benchmarks.keras_ops LIBRARY``
prints that library's rows as JSON, and :func:`run` gathers them.  Every
function that both xpnn and ``keras.ops`` define with one argument is timed
(interleaved rounds, medians); ``ratio`` below 1 means xpnn is faster.
"""
from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys

import numpy as np

SHAPE = (1000,)
#: xpnn names whose keras.ops name differs.
KERAS_NAMES = {"soft_sign": "softsign"}


def _worker(library: str) -> list[dict]:
    """The rows of ``library``, timed in this process (Keras's backend must be ``library``)."""
    import keras

    import xpnn
    from xpnn.benchmarks.activations import _interleaved, placement, ratio_fields

    if keras.backend.backend() != library:
        raise RuntimeError(f"KERAS_BACKEND is {keras.backend.backend()!r}, expected {library!r}")
    put, sync = placement(library, "cpu")
    x = put(np.random.default_rng(0).normal(scale=3.0, size=SHAPE).astype(np.float32))
    rows = []
    for name in xpnn.FUNCTIONS:
        theirs = getattr(keras.ops, KERAS_NAMES.get(name, name), None)
        if theirs is None:
            continue
        ours = getattr(xpnn, name)
        try:
            theirs(x)
        except TypeError:  # needs more arguments than the array
            continue
        medians = _interleaved({"xpnn": lambda: ours(x), "native": lambda: theirs(x)}, sync)
        rows.append({"library": library, "function": name, "keras": f"keras.ops.{theirs.__name__}",
                     **ratio_fields(medians, "us")})
    return rows


def run(libraries: tuple[str, ...] = ("numpy", "torch", "jax")) -> list[dict]:
    """Every library's rows, each from a process with ``KERAS_BACKEND`` set to it."""
    rows = []
    for library in libraries:
        env = {**os.environ, "KERAS_BACKEND": library}
        done = subprocess.run([sys.executable, "-m", "benchmarks.keras_ops", library], env=env,
                              capture_output=True, text=True, check=False)
        if done.returncode:
            raise RuntimeError(f"keras benchmark on {library} failed:\n{done.stderr[-2000:]}")
        rows += json.loads(done.stdout.strip().splitlines()[-1])
    return rows


def report(rows: list[dict]) -> str:
    from xpnn.benchmarks.activations import ratio_table

    lines = [ratio_table(rows, (("library", "6"), ("function", "13")), "us").replace("native", "keras ")]
    for library in dict.fromkeys(r["library"] for r in rows):
        ratios = [r["ratio"] for r in rows if r["library"] == library]
        lines.append(f"{library}: xpnn / keras.ops median {statistics.median(ratios):.2f}, worst {max(ratios):.2f}, "
                     f"xpnn faster in {sum(r < 1 for r in ratios)} of {len(ratios)}")
    return "\n".join(lines)


if __name__ == "__main__":
    print(json.dumps(_worker(sys.argv[1])))
