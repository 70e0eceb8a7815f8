"""The README's model example runs as printed and trains."""
from __future__ import annotations

import pathlib
import re

import numpy as np

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"


def _example(section: str) -> str:
    text = README.read_text()
    body = text.split(f"# {section}", 1)[1]
    return re.search(r"```python\n(.*?)```", body, re.S).group(1)


def test_model_example_trains_on_torch_and_jax_and_serves_on_numpy():
    namespace: dict = {}
    exec(compile(_example("Models"), "README.md", "exec"), namespace)
    x, y, model = namespace["x"], namespace["y"], namespace["model"]
    untrained = model.apply(model.init(namespace["nn"].random.key(0), x), x)
    baseline = np.mean((untrained - y) ** 2)
    assert isinstance(namespace["prediction"], np.ndarray)
    assert np.mean((namespace["prediction"] - y) ** 2) < 0.1 * baseline
    jax_prediction = np.asarray(model.apply({"params": namespace["jparams"]}, namespace["xj"]))
    assert np.mean((jax_prediction - y) ** 2) < 0.1 * baseline


def test_cnn_example_trains_on_torch_and_jax_and_serves_on_numpy():
    namespace: dict = {}
    exec(compile(_example("A small CNN, the same way"), "README.md", "exec"), namespace)
    labels = namespace["labels"]
    assert isinstance(namespace["cnn_prediction"], np.ndarray)
    assert np.mean(namespace["cnn_prediction"] == labels) >= 0.9  # trained on torch, run on NumPy
    cnn, ij = namespace["cnn"], namespace["ij"]
    jax_prediction = np.asarray(cnn.apply({"params": namespace["cnn_jparams"]}, ij)).argmax(axis=-1)
    assert np.mean(jax_prediction == labels) >= 0.9


def test_attention_example_decodes_as_the_full_causal_pass():
    namespace: dict = {}
    exec(compile(_example("Attention, and decoding with a cache"), "README.md", "exec"), namespace)
    assert tuple(namespace["out"].shape) == (2, 16, 8, 64)
    np.testing.assert_allclose(np.concatenate(namespace["steps"], axis=1), namespace["full"], rtol=1e-5, atol=1e-6)


def test_recurrent_example_gives_torchs_lstm_on_numpy():
    namespace: dict = {}
    exec(compile(_example("Recurrent layers, and torch's LSTM weights"), "README.md", "exec"), namespace)
    np.testing.assert_allclose(namespace["numpy_out"], namespace["torch_out"].numpy(), rtol=1e-5, atol=1e-6)
    carry, outputs = namespace["carry"], namespace["outputs"]
    assert outputs.shape == (4, 20, 32)
    np.testing.assert_allclose(carry[2], outputs[2, 6])  # the carry after step len - 1 = 6


def _run_as_script(example: str, check: str, tmp_path: pathlib.Path) -> None:
    """Run a README example as a script of its own (it starts processes or sets jax's devices),
    with ``check``, Python that prints "checked" when the example did what it says, after it."""
    import subprocess
    import sys

    script = tmp_path / "example.py"
    script.write_text(example + "\n" + check)
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    assert "checked" in done.stdout


def test_sharded_training_example_learns_on_8_devices(tmp_path):
    _run_as_script(_example("Beyond one machine: sharded jax and Dask clusters"), """
first = float(jnp.mean((MLP().apply(model.init(nn.random.key(0), np.asarray(x)), np.asarray(x)) - np.asarray(y)) ** 2))
assert len(jax.devices()) == 8 and float(loss) < first, (float(loss), first)
assert all(leaf.sharding.device_set == set(mesh.devices.flat) for leaf in jax.tree_util.tree_leaves(params))
print("checked")
""", tmp_path)


def test_dask_cluster_example_gives_numpys_predictions(tmp_path):
    text = README.read_text().split("Inference on a Dask cluster", 1)[1]
    _run_as_script(re.search(r"```python\n(.*?)```", text, re.S).group(1), """
        want = MLP().apply(variables, x.compute())
        assert isinstance(lazy, da.Array)
        np.testing.assert_allclose(predictions, want, rtol=1e-5, atol=1e-5)
        print("checked")
""", tmp_path)


#: The sections whose examples the tests above run on their own and check.
_CHECKED_SECTIONS = ("Models", "A small CNN, the same way", "Attention, and decoding with a cache",
                     "Recurrent layers, and torch's LSTM weights", "Beyond one machine: sharded jax and Dask clusters",
                     "torch.nn models, as they are")


def test_every_python_block_runs_on_its_own(tmp_path, monkeypatch):
    """Every other ```python block of the README, alone (a namespace of its own, in an empty
    directory): it imports all it uses."""
    import xpnn

    monkeypatch.chdir(tmp_path)
    sections = re.split(r"^#+ ", README.read_text(), flags=re.M)
    blocks = [block for section in sections if not section.startswith(_CHECKED_SECTIONS)
              for block in re.findall(r"```python\n(.*?)```", section, re.S)]
    assert len(blocks) >= 5
    try:
        for index, block in enumerate(blocks):
            exec(compile(block, f"README.md block {index}", "exec"), {"__name__": "__main__"})
    finally:
        xpnn.set_fast_paths(True)
        xpnn.random.set_threefry_partitionable(True)


def test_torch_nn_example_gives_torchs_outputs_on_numpy_and_jax(tmp_path, monkeypatch):
    import torch

    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(_example("torch.nn models, as they are"), "README.md", "exec"), namespace)
    want = namespace["torch_model"](torch.from_numpy(namespace["images"])).detach().numpy()
    np.testing.assert_allclose(namespace["numpy_logits"], want, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.asarray(namespace["jax_logits"]), want, rtol=1e-5, atol=1e-6)
    assert namespace["tokens"].shape == (2, 5, 16)
