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
