"""Inference on a dask.distributed cluster: xpnn models applied to Dask arrays on a 2-worker
LocalCluster (1 thread each) against the same model on NumPy in this process (NumPy's BLAS
on all cores), same machine, same data.

* MLP 512-256-10 on a (16384, 512) batch in 8 chunks;
* CNN (Conv 3x3 x16, relu, Conv 3x3 x16, avg_pool 2, Dense 10) on (32, 64, 64, 3) images in
  chunks of (8, 32, 32, 3): batch and spatial blocks, the convolutions overlapped.

The inputs are made on the workers and kept there (``persist``), as data loaded by the
workers would be; the variables are NumPy arrays, scattered to the workers once.  Reported:
seconds per apply (computed, gathered to the client), samples per second, the ratio to NumPy,
the graph's tasks and pickled bytes per task (the weights are not in it).
"""
from __future__ import annotations

import logging
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np

import xpnn as nn


class MLP(nn.Module):
    @nn.compact
    def __call__(self, x):
        return nn.Dense(10)(nn.relu(nn.Dense(256)(x)))


class CNN(nn.Module):
    @nn.compact
    def __call__(self, x):
        x = nn.relu(nn.Conv(16, (3, 3))(x))
        x = nn.relu(nn.Conv(16, (3, 3))(x))
        x = nn.avg_pool(x, (2, 2), strides=(2, 2))
        return nn.Dense(10)(x)


#: label -> (model, input shape, chunks)
CASES: dict[str, tuple[nn.Module, tuple[int, ...], tuple[int, ...]]] = {
    "MLP 512-256-10 (16384, 512)": (MLP(), (16384, 512), (2048, 512)),
    "CNN (32, 64, 64, 3)": (CNN(), (32, 64, 64, 3), (8, 32, 32, 3)),
}


def _median_seconds(call: Callable[[], Any], repeats: int = 5) -> float:
    call()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def run(libraries: tuple[str, ...] = ("dask",), device: str = "cpu") -> list[dict]:
    import cloudpickle
    import dask.array as da
    from distributed import Client, LocalCluster

    rows = []
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                      silence_logs=logging.ERROR) as cluster, Client(cluster) as client:
        for label, (model, shape, chunks) in CASES.items():
            x = client.persist(da.random.default_rng(0).standard_normal(shape, chunks=chunks).astype(np.float32))
            host = x.compute()
            variables = model.init(nn.random.key(0), host[:1])
            numpy_seconds = _median_seconds(lambda: model.apply(variables, host))
            cluster_seconds = _median_seconds(lambda: model.apply(variables, x).compute())
            np.testing.assert_allclose(model.apply(variables, x).compute(), model.apply(variables, host),
                                       rtol=1e-4, atol=1e-4)
            graph = dict(model.apply(variables, x).__dask_graph__())
            rows.append({"model": label, "numpy_s": numpy_seconds, "cluster_s": cluster_seconds,
                         "ratio": cluster_seconds / numpy_seconds, "samples_per_s": shape[0] / cluster_seconds,
                         "tasks": len(graph), "graph_bytes_per_task": len(cloudpickle.dumps(graph)) / len(graph),
                         "weights_bytes": sum(leaf.nbytes for leaf in nn.tree_leaves(variables))})
    return rows


def report(rows: list[dict]) -> str:
    lines = [f"{'model':30} {'numpy s':>9} {'cluster s':>10} {'ratio':>6} {'samples/s':>10} {'tasks':>6} "
             f"{'bytes/task':>10} {'weights':>9}"]
    for row in rows:
        lines.append(f"{row['model']:30} {row['numpy_s']:9.3f} {row['cluster_s']:10.3f} {row['ratio']:6.2f} "
                     f"{row['samples_per_s']:10.0f} {row['tasks']:6d} {row['graph_bytes_per_task']:10.0f} "
                     f"{row['weights_bytes']:9d}")
    return "\n".join(lines)
