"""Beyond one machine: sharded jax over 8 host devices (a subprocess: the device count is set
before jax starts) and inference on a 2-worker dask.distributed LocalCluster, every result
compared with the unsharded NumPy or jax run."""
from __future__ import annotations

import logging
import pathlib
import subprocess
import sys

import cloudpickle
import dask
import dask.array as da
import numpy as np
import pytest
from distributed import Client, LocalCluster

import xpnn as nn

_HERE = pathlib.Path(__file__).parent


@pytest.mark.slow  # .ci/run runs the script itself, with both axis types, outside the timed test run
@pytest.mark.parametrize("axis_type", ["explicit", "auto"])
def test_sharded_jax_models_equal_the_unsharded_runs(axis_type):
    """tests/distributed/sharded_jax.py: data- and tensor-parallel MLPs, a transformer block, an
    LSTM, a jitted training step, random draws and the functions under jit, with explicit mesh
    axes (jax's default, the strict one) and auto axes."""
    done = subprocess.run([sys.executable, str(_HERE / "distributed" / "sharded_jax.py"), axis_type],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-6000:]
    assert f"{axis_type.capitalize()}: ok" in done.stdout, done.stdout


class MLP(nn.Module):
    @nn.compact
    def __call__(self, x):
        return nn.Dense(10)(nn.relu(nn.Dense(256)(x)))


class CNN(nn.Module):
    @nn.compact
    def __call__(self, x):
        x = nn.relu(nn.Conv(8, (3, 3))(x))
        x = nn.Conv(4, (3, 3), kernel_dilation=2, padding=((2, 1), (0, 3)))(x)
        return nn.LayerNorm()(nn.avg_pool(x, (2, 2), strides=(2, 2)))


def test_numpy_variables_without_a_cluster():
    """Without a dask.distributed client the NumPy variables enter the graph once (from_array).
    (Before the cluster below starts: a running client is the default one.)"""
    images = np.random.default_rng(2).standard_normal((2, 9, 8, 3)).astype(np.float32)
    variables = CNN().init(nn.random.key(0), images)
    with dask.config.set(scheduler="threads"):
        out = CNN().apply(variables, da.from_array(images, chunks=(1, 5, 4, 3)))
        np.testing.assert_allclose(out.compute(), CNN().apply(variables, images), rtol=1e-4, atol=1e-5)


@pytest.fixture(scope="module")
def client():
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                      silence_logs=logging.ERROR) as cluster, Client(cluster) as connected:
        yield connected


def _graph_bytes(array: da.Array) -> int:
    return len(cloudpickle.dumps(dict(array.__dask_graph__())))


def test_mlp_with_numpy_variables_on_a_local_cluster(client):
    """A batch-chunked Dask input with NumPy variables: a lazy result equal to NumPy's, whose
    graph references the weights (scattered to the workers once) instead of holding them."""
    x = da.random.default_rng(0).standard_normal((4096, 512), chunks=(512, 512)).astype(np.float32)
    variables = MLP().init(nn.random.key(0), np.zeros((1, 512), np.float32))
    weights = sum(leaf.nbytes for leaf in nn.tree_leaves(variables))
    out = MLP().apply(variables, x)
    assert isinstance(out, da.Array) and out.chunks[0] == (512,) * 8
    assert _graph_bytes(out) < weights / 4, (_graph_bytes(out), weights)  # no copy of the weights
    again = MLP().apply(variables, x)
    assert set(dict(again.__dask_graph__())) == set(dict(out.__dask_graph__()))  # the same scattered weights
    np.testing.assert_allclose(out.compute(), MLP().apply(variables, x.compute()), rtol=1e-5, atol=1e-5)


def test_cnn_on_spatially_chunked_images_on_a_local_cluster(client):
    """Convolutions of images chunked along their height and width run in overlapping blocks
    (the kernel's halo from the next block), one task per block, equal to NumPy's."""
    images = np.random.default_rng(1).standard_normal((4, 32, 30, 3)).astype(np.float32)
    variables = CNN().init(nn.random.key(0), images[:1])
    x = da.from_array(images, chunks=(2, 12, 10, 3))
    out = CNN().apply(variables, x)
    assert isinstance(out, da.Array)
    convolutions = [name for name in out.__dask_graph__().layers if name.startswith("convolve")]
    assert len(convolutions) == 2
    np.testing.assert_allclose(out.compute(), CNN().apply(variables, images), rtol=1e-4, atol=1e-5)
