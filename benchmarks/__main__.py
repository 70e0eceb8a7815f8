"""``python -m benchmarks {activations,kernels,random,layers,conv,norms,attention,recurrent,torch_nn,distributed,keras} [--device cpu|cuda] [--libraries ...] [--json PATH]``."""
from __future__ import annotations

import argparse
import json
import sys

from xpnn.benchmarks import (
    activations, attention, conv, distributed, keras_ops, layers, norms, random, recurrent, torch_nn,
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks")
    parser.add_argument("suite", choices=["activations", "kernels", "random", "layers", "conv", "norms", "attention", "recurrent",
                                          "torch_nn", "distributed", "keras"],
                        help="kernels: what the first-use kernel check costs; torch_nn: xpnn.torch_nn against torch.nn "
                             "on torch tensors; distributed: models on Dask arrays "
                             "on a 2-worker dask.distributed LocalCluster against NumPy; keras: xpnn against "
                             "Keras 3's keras.ops at (1000,), CPU only (needs keras)")
    parser.add_argument("--device", choices=sorted(activations.LIBRARIES), default="cpu",
                        help="where the arrays live; cuda times cupy, torch and jax on the GPU")
    parser.add_argument("--libraries", default=None,
                        help="comma-separated; default: " + "; ".join(
                            f"{device}: {','.join(names)}" for device, names in activations.LIBRARIES.items()))
    parser.add_argument("--json", metavar="PATH")
    args = parser.parse_args(argv)
    result: dict
    libraries = tuple(args.libraries.split(",")) if args.libraries else activations.LIBRARIES[args.device]
    for library in libraries:
        optional = activations.OPTIONAL_LIBRARIES[args.device] if args.suite == "conv" else ()
        if library not in activations.LIBRARIES[args.device] + optional:
            parser.error(f"--libraries: {library!r} does not run on --device {args.device}"
                         f"{' in this suite' if library in activations.OPTIONAL_LIBRARIES[args.device] else ''}; "
                         f"expected among {','.join(activations.LIBRARIES[args.device] + optional)}")
    if args.suite == "distributed":
        rows = distributed.run()
        print(distributed.report(rows))
        result = {"rows": rows}
    elif args.suite == "keras":
        if args.device != "cpu":
            parser.error("keras runs on --device cpu only")
        rows = keras_ops.run(libraries)
        print(keras_ops.report(rows))
        result = {"rows": rows}
    elif args.suite == "kernels":
        cost = activations.kernel_check_cost(libraries, args.device)
        print(activations.kernel_check_report(cost))
        result = {"kernel_check": cost}
    elif args.suite in ("random", "layers", "conv", "norms", "attention", "recurrent", "torch_nn"):
        suite = {"random": random, "layers": layers, "conv": conv, "norms": norms, "attention": attention,
                 "recurrent": recurrent, "torch_nn": torch_nn}[args.suite]
        rows = suite.run(libraries, args.device)
        print(suite.report(rows))
        result = {"rows": rows}
    else:
        rows = activations.run(libraries, args.device)
        overhead = activations.dispatch_overhead(libraries, args.device)
        print(activations.report(rows, overhead))
        result = {"rows": rows, "dispatch_overhead_us": overhead}
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(result, handle, indent=1, default=str)
    return 0


if __name__ == "__main__":
    sys.exit(main())
