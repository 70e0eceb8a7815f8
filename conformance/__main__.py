"""``python -m conformance``: run every public xpnn function, sampler, initializer and layer on every installed backend against the references.

Prints a matrix (check x backend) of the worst error in ulps, or FAIL, each failure in words,
and exits non-zero when any check fails or a public name has no check.  Writes the HTML report
and the JSON results to ``conformance-report/`` under the current directory (``--report``,
``--json`` and ``--no-report`` change that), and prints where.  While it runs, a progress line:
a live bar on a terminal, a line every few seconds (done/total, elapsed, time left) in a log,
and each failure as it happens.
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime
import fnmatch
import functools
import importlib.metadata
import json
import os
import platform
import sys
import time
import warnings
from collections.abc import Callable

import numpy as np

import xpnn
from xpnn.conformance import attention, backends, gradients, models, recurrent, report, runner, torch_nn
from xpnn.conformance.cases import CASES
from xpnn.conformance.compare import Checked


#: Where the report and the JSON results go by default, under the current directory.
REPORT_DIRECTORY = "conformance-report"


def environment(argv: list[str] | None) -> dict[str, str]:
    """What produced a run: the date, the command, Python, the machine's CPU and GPUs, and the
    versions of xpnn and of every library the suite uses that is installed."""
    found = {"date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
             "command": " ".join(["python -m conformance", *(sys.argv[1:] if argv is None else argv)]),
             "python": f"{platform.python_version()} ({platform.system()} {platform.machine()})",
             "cpu": _cpu_name(), "gpu": ", ".join(_gpu_names()) or "none"}
    for name in ("xpnn", "numpy", "array_api_compat", "array_api_strict", "torch", "jax", "flax", "dask", "cupy",
                 "mpmath"):
        try:
            found[name] = importlib.metadata.version(name.replace("_", "-"))
        except importlib.metadata.PackageNotFoundError:
            continue
    return found


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            names = [line.split(":", 1)[1].strip() for line in handle if line.startswith("model name")]
        if names:
            return f"{names[0]} ({len(names)} cores)"
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _gpu_names() -> list[str]:
    if not backends.cuda_available():
        return []
    try:
        import torch

        return [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    except Exception:  # noqa: BLE001 - the GPU answers through jax or CuPy only
        return ["CUDA device"]


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m conformance", description=__doc__)
    parser.add_argument("--backends", default=None,
                        help="comma-separated backends among " + ",".join(backends.CONFORMANCE_NAMES)
                        + " (default: every installed one, or none with --namespace)")
    parser.add_argument("--namespace", action="append", default=[], metavar="MODULE",
                        help="certify another Array API library: a module that is a namespace or makes "
                             "arrays with __array_namespace__ (repeatable)")
    parser.add_argument("--devices", default=None,
                        help="comma-separated devices among cpu,cuda (default: cpu, and cuda where a GPU answers)")
    parser.add_argument("--dtypes", default="float32,float64",
                        help="comma-separated dtypes among " + ",".join(backends.DTYPES))
    parser.add_argument("--only", default="*", help="glob over case labels, e.g. 'gelu*'")
    parser.add_argument("--part", default="1/1", type=_part, metavar="K/N",
                        help="run every N-th check from the K-th (1 <= K <= N), to spread a run over processes "
                             "or machines (default: %(default)s, every check)")
    parser.add_argument("--grad", action=argparse.BooleanOptionalAction, default=True,
                        help="also compare gradients on torch and jax (float64) with the reference's")
    parser.add_argument("--json", metavar="PATH", default=os.path.join(REPORT_DIRECTORY, "report.json"),
                        help="write every result, and the environment, as JSON (default: %(default)s)")
    parser.add_argument("--report", metavar="PATH", default=os.path.join(REPORT_DIRECTORY, "report.html"),
                        help="write a self-contained HTML report with plots (default: %(default)s)")
    parser.add_argument("--no-report", dest="report", action="store_const", const=None,
                        help="write no HTML report")
    parser.add_argument("--merge", action="append", default=[], metavar="JSON",
                        help="report the results of earlier runs' --json files (the parts of a run) as one "
                             "run, instead of running checks; plots for the columns that run here (repeatable)")
    parser.add_argument("--kernels", action="store_true",
                        help="only check every native fast path on this machine against the written-once "
                             "definitions (xpnn.check_fast_paths) and print which are switched off, and why")
    return parser.parse_args(argv)


def _part(text: str) -> tuple[int, int]:
    """``"K/N"`` as ``(K, N)``, with ``1 <= K <= N``."""
    try:
        part, parts = (int(n) for n in text.split("/"))
    except ValueError:
        part = parts = 0
    if not 1 <= part <= parts:
        raise argparse.ArgumentTypeError(f"expected K/N with 1 <= K <= N, e.g. 2/3; got {text!r}")
    return part, parts


@dataclasses.dataclass(frozen=True)
class Check:
    """One row of the report: ``run(backend, dtype) -> Checked``."""

    label: str
    name: str  # the public name it covers
    reference: str
    family: str  # "functions", "random", "initializers", "layers" or "torch_nn"
    run: Callable[[backends.Backend, str], Checked]
    dtypes: tuple[str, ...] = ("float16", "bfloat16", "float32", "float64")
    #: Further agreements recorded for functions: ``(backend, dtype, grad) -> {name: passed or None}``.
    agreements: Callable[[backends.Backend, str, bool], dict] | None = None
    #: Whether the check applies to a backend (64-bit integer draws do not to jax with x64 off).
    applies: Callable[[backends.Backend], bool] = lambda backend: True


def _function_check(case) -> Check:
    def run(backend, dtype):
        outcome = runner.run(case, backend, dtype, np.random.default_rng(0))
        return Checked(outcome.comparison, outcome.output_problem, outcome.output)

    def agreements(backend, dtype, grad):
        """The fast path against the written-once definition; gradients (float64, autodiff backends)."""
        found = {"fast_path_agrees": None, "grad_agrees": None}
        if dtype in ("float32", "float64"):
            found["fast_path_agrees"] = runner.fast_path_check(case, backend, dtype, np.random.default_rng(1)).passed
        if grad and case.grad and dtype == "float64" and backend.name in gradients.AUTODIFF:
            found["grad_agrees"] = all(gradients.gradient_check(case, backend, np.random.default_rng(2), fast).passed
                                       for fast in (True, False))
        return found

    return Check(case.label, case.function, case.framework, "functions", run, agreements=agreements)


def checks() -> list[Check]:
    """Every check of the suite: the function cases, then random, initializers and layers."""
    found = [_function_check(case) for case in CASES]
    for case in models.RANDOM_CASES:
        found.append(Check(case.label, f"random.{case.function}", "jax.random", "random",
                           functools.partial(models.run_random, case),
                           ("float32", "float64") if case.floating else ("float32",),
                           applies=(lambda backend: "x64 off" not in backend.mode) if case.wide else (lambda backend: True)))
    for case in models.INITIALIZER_CASES:
        found.append(Check(case.label, f"initializers.{case.builder}", "jax.nn.initializers", "initializers",
                           functools.partial(models.run_initializer, case), ("float32", "float64")))
    found.append(Check("BatchApply(matmul)", "BatchApply", "flax.linen", "layers", models.run_batch_apply,
                       ("float32", "float64")))
    for case in models.POOL_CASES:
        found.append(Check(case.label, case.function, "flax.linen", "layers", functools.partial(models.run_pool, case),
                           ("float32", "float64")))
    for case in attention.ATTENTION_CASES:
        family = "layers" if case.function.startswith("layers.") else "functions"
        found.append(Check(case.label, case.function, case.reference, family,
                           functools.partial(attention.run_attention, case), case.dtypes,
                           applies=(lambda backend: "explicit axes" not in backend.mode) if not case.batched
                           else (lambda backend: True)))
    found.append(Check("dot_product_attention blocked (flash) path", "dot_product_attention",
                       "xpnn one-block result", "functions", attention.run_chunked, ("float32", "float64")))
    found.append(Check("scaled_dot_general mxfp8, nvfp4", "scaled_dot_general", "jax's quantize + block-scaled product",
                       "functions", attention.run_scaled_dot_general, ("bfloat16", "float32")))
    found.append(Check("one_hot of int32 and uint8 ids, out of range too", "one_hot", "jax.nn.one_hot", "functions",
                       attention.run_one_hot))
    found.append(Check("scaled_matmul (B, M, K) x (B, N, K), two block sizes", "scaled_matmul",
                       "jax.nn.scaled_matmul's definition (float64)", "functions", attention.run_scaled_matmul,
                       ("float32", "float64")))
    for function in ("make_attention_mask", "make_causal_mask"):
        found.append(Check(function, function, f"flax.linen.{function}", "functions",
                           functools.partial(attention.run_masks, function), ("float32", "float64")))
    found.append(Check("MultiHeadDotProductAttention decode 16 steps", "MultiHeadDotProductAttention",
                       "flax.linen", "layers", attention.run_decode, ("float32", "float64")))
    for name in recurrent.CELLS:
        found.append(Check(f"{name} one step", name, "flax.linen", "layers", functools.partial(recurrent.run_cell, name),
                           ("float32", "float64")))
    found.append(Check("RNN seq_lengths, reverse, keep_order, return_carry, initial_carry", "RNN", "flax.linen",
                       "layers", recurrent.run_rnn_options, ("float32", "float64")))
    found.append(Check("RNN of a user's RNNCellBase subclass", "RNNCellBase", "flax.linen", "layers",
                       recurrent.run_user_cell, ("float32",)))
    found.append(Check("scan(LSTMCell) lifted, params broadcast", "scan", "flax.linen.scan", "layers",
                       recurrent.run_lifted_scan, ("float32",)))
    for kind in ("LSTM", "GRU", "RNN"):
        found.append(Check(f"torch.nn.{kind} 2 layers bidirectional via torch_rnn", "layers.torch_rnn",
                           f"torch.nn.{kind}", "layers", functools.partial(recurrent.run_torch_converted, kind),
                           ("float32", "float64")))
    for case in torch_nn.MODULE_CASES:
        found.append(Check(torch_nn.label(case), f"torch_nn.{case[0]}", f"torch.nn.{case[0]} (its state_dict loaded)",
                           "torch_nn", functools.partial(torch_nn.run_module, case), ("float32", "float64")))
    for case in torch_nn.FUNCTIONAL_CASES:
        found.append(Check(torch_nn.functional_label(case), f"torch_nn.functional.{case[0]}",
                           f"torch.nn.functional.{case[0]}", "torch_nn", functools.partial(torch_nn.run_functional, case),
                           ("float32", "float64")))
    for case, (_, _, _, covered) in torch_nn.MODEL_CASES.items():
        for name in covered:
            found.append(Check(f"{case} ({name})", f"torch_nn.{name}", "torch.nn (a trained model's state_dict)",
                               "torch_nn", functools.partial(torch_nn.run_model, case), ("float32", "float64")))
    for case in models.LAYER_CASES:
        for part, check in models.LAYER_PARTS.items():
            found.append(Check(f"{case.label} {part}", case.layer, "flax.linen", "layers",
                               functools.partial(check, case), ("float32", "float64")))
    return found


def public_names() -> set[str]:
    """Every public name xpnn exports that computes something: each needs a check."""
    import xpnn.torch_nn

    return (set(xpnn.FUNCTIONS) | set(xpnn.LAYERS)
            | {f"torch_nn.{n}" for n in xpnn.torch_nn.MODULES}
            | {f"torch_nn.functional.{n}" for n in xpnn.torch_nn.functional.__all__}
            | {f"random.{n}" for n in xpnn.random.__all__}
            | {f"initializers.{n}" for n in xpnn.initializers.__all__ if n != "Initializer"})


def uncovered(found: list[Check]) -> list[str]:
    covered = {check.name for check in found}
    if any("legacy" in check.label for check in found):
        covered |= {"random.set_threefry_partitionable", "random.threefry_partitionable"}
    return sorted(public_names() - covered)


def kernel_report(selected: list[backends.Backend], dtypes: list[str]) -> str:
    """The native fast paths switched off on this machine (``xpnn.check_fast_paths`` on every
    backend in every dtype), one line each, or a line saying that every one agreed."""
    for backend in selected:
        with backend.scope():
            xpnn.check_fast_paths(backend.like(), dtypes=tuple(dtypes))
    entries = xpnn.fast_path_report()
    lines = [f"native kernels checked on this machine ({', '.join(b.label for b in selected)}; "
             f"{', '.join(dtypes)}): " + (f"{len(entries)} switched off" if entries else "every one agrees "
                                          "with the written-once definitions")]
    lines += [f"  switched off: {entry}" for entry in entries]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    warnings.simplefilter("ignore", RuntimeWarning)
    names = args.backends.split(",") if args.backends else ([] if args.namespace else backends.CONFORMANCE_NAMES)
    selected = backends.available(tuple(names)) + [backends.from_namespace(m) for m in args.namespace]
    devices = tuple(args.devices.split(",")) if args.devices else (("cpu", "cuda") if backends.cuda_available() else ("cpu",))
    unknown = set(devices) - {"cpu", "cuda"}
    if unknown:
        raise SystemExit(f"--devices: unknown device(s) {', '.join(sorted(unknown))}; expected cpu and/or cuda")
    if "cuda" in devices and not backends.cuda_available():
        raise SystemExit("--devices cuda: no CUDA device answers here (through torch, jax or CuPy)")
    selected = backends.on_devices(selected, devices)
    dtypes = [d for d in args.dtypes.split(",") if d]
    if args.kernels:
        print(kernel_report(selected, dtypes))
        return 0
    every_check = checks()
    if args.merge:
        results, context = _merged(args.merge)
        present = {record["case"] for record in results}
        selected_checks = [check for check in every_check if check.label in present]
        columns = list(dict.fromkeys(record["backend"] for record in results))
        selected = [backend for backend in selected if backend.label in columns]  # plotted where they run here
        timing = f"merged from {len(args.merge)} runs"
    else:
        part, parts = args.part
        selected_checks = [c for c in every_check if fnmatch.fnmatch(c.label, args.only)][part - 1::parts]
        columns = [backend.label for backend in selected]
        share = f" (part {part}/{parts})" if parts > 1 else ""
        print(f"xpnn {xpnn.__version__} conformance: {len(selected_checks)} checks{share} x "
              f"{', '.join(columns)} x {', '.join(dtypes)}")
        started = time.perf_counter()
        results = _run_checks(selected_checks, selected, dtypes, args.grad)
        timing = f"in {time.perf_counter() - started:.1f} s"
        context = environment(argv)
    missing = uncovered(every_check)
    _print_matrix(results, selected_checks, columns)
    failures = [r for r in results if not r["passed"]]
    print(f"\n{len(results) - len(failures)} passed, {len(failures)} failed {timing}")
    for record in failures:
        print(f"  FAIL {report.describe_failure(record)}")
    if missing:
        print(f"uncovered public names: {', '.join(missing)}")
    if not args.merge:  # the kernels of this machine, which merged results may not come from
        print(kernel_report(selected, dtypes))
    if args.report:
        os.makedirs(os.path.dirname(os.path.abspath(args.report)), exist_ok=True)
        run_dtypes = sorted({record["dtype"] for record in results}, key=backends.DTYPES.index)
        header = (f"xpnn {xpnn.__version__}: {len(selected_checks)} checks on "
                  f"{', '.join(columns)} in {', '.join(run_dtypes)}")
        report.write_html(args.report, results, [c.label for c in selected_checks], columns,
                          report.curves(selected, only=args.only), missing, header, context)
        summary = os.path.splitext(args.report)[0] + "-summary.svg"
        with open(summary, "w", encoding="utf-8") as handle:
            handle.write(report.summary_svg(results, columns))
        print(f"report: {os.path.abspath(args.report)} (summary image: {os.path.abspath(summary)})")
    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, "w") as handle:
            json.dump({"environment": context, "results": results, "uncovered": missing}, handle, indent=1)
        print(f"results: {os.path.abspath(args.json)}")
    return 1 if failures or missing else 0


def _run_checks(selected_checks: list[Check], selected: list[backends.Backend], dtypes: list[str],
                grad: bool) -> list[dict]:
    """Every check on every backend in every dtype it applies to: one record each."""
    results = []
    runs = [(check, backend, dtype) for check in selected_checks for backend in selected for dtype in dtypes
            if dtype in backend.dtypes and dtype in check.dtypes and check.applies(backend)]
    progress = _Progress(len(runs))
    for check, backend, dtype in runs:
        progress.step(f"{check.label} [{backend.label}, {dtype}]")
        record = {"case": check.label, "function": check.name, "family": check.family,
                  "backend": backend.label, "device": backend.device, "dtype": dtype, "reference": check.reference}
        try:
            with backend.scope():
                checked = check.run(backend, dtype)
                agreements = check.agreements(backend, dtype, grad) if check.agreements else {}
            record.update(checked.comparison.as_dict(), output_problem=checked.problem, output=checked.output,
                          **agreements, within_tolerance=checked.comparison.passed,
                          passed=checked.passed and False not in agreements.values())
        except Exception as error:  # noqa: BLE001 - every failure is reported, none stops the run
            record.update(passed=False, error=f"{type(error).__name__}: {error}")
        results.append(record)
        if not record["passed"]:
            progress.failed(report.describe_failure(record))
    progress.close()
    return results


def _merged(paths: list[str]) -> tuple[list[dict], dict]:
    """The results of several ``--json`` files (the parts of a run), and the first one's
    environment with every part's command."""
    results, commands, context = [], [], None
    for path in paths:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
        results += data["results"]
        commands.append(data["environment"]["command"])
        context = context or dict(data["environment"])
    if context is None:
        raise SystemExit("--merge: no results given")
    context["command"] = "; ".join(dict.fromkeys(commands)) + f" (merged from {len(paths)} runs)"
    return results, context


class _Progress:
    """Progress on stderr while the checks run: a one-line bar on a terminal; in a log, a line
    every ``every`` seconds with the checks done, the time elapsed and an estimate of the rest."""

    def __init__(self, total: int, width: int = 30, every: float = 10.0) -> None:
        self.total, self.width, self.done, self.every = total, width, 0, every
        self.live = sys.stderr.isatty()
        self.started = self.reported = time.perf_counter()

    def step(self, label: str) -> None:
        self.done += 1
        if not self.live:
            now = time.perf_counter()
            if now - self.reported >= self.every:
                self.reported = now
                elapsed = now - self.started
                left = elapsed / self.done * (self.total - self.done)
                sys.stderr.write(f"conformance: {self.done}/{self.total} checks ({100 * self.done // self.total}%), "
                                 f"{elapsed:.0f} s elapsed, about {left:.0f} s left\n")
                sys.stderr.flush()
            return
        filled = self.width * self.done // max(self.total, 1)
        elapsed = time.perf_counter() - self.started
        sys.stderr.write(f"\r[{'#' * filled}{'.' * (self.width - filled)}] {self.done}/{self.total} "
                         f"{elapsed:5.0f} s  {label[:60]:60}")
        sys.stderr.flush()

    def failed(self, description: str) -> None:
        """A failure in words as soon as it happens (on its own line), so that a long run that is
        stopped early still tells what failed."""
        sys.stderr.write(("\r" + " " * (self.width + 90) + "\r" if self.live else "") + f"FAIL {description}\n")
        sys.stderr.flush()

    def close(self) -> None:
        if self.live:
            sys.stderr.write("\r" + " " * (self.width + 90) + "\r")
            sys.stderr.flush()


def _print_matrix(results: list[dict], cases: list, names: list[str]) -> None:
    """One row per case: the worst ulp error over dtypes per backend (column), or FAIL."""
    width = max(len(c.label) for c in cases) + 2 if cases else 6
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
