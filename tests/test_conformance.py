"""The conformance suite itself: it can fail, it fails on uncovered names, its JSON keeps its shape."""
from __future__ import annotations

import json

import numpy as np
import pytest

import xpnn
from xpnn.conformance import __main__ as suite

RECORD_KEYS = {"case", "function", "family", "backend", "dtype", "reference", "max_abs", "max_rel", "max_ulp",
               "special_mismatch", "passed", "output_problem"}


def _run(tmp_path, *argv):
    path = tmp_path / "report.json"
    status = suite.main([*argv, "--json", str(path)])
    return status, json.loads(path.read_text())


def test_every_public_name_has_a_check():
    assert suite.uncovered(suite.checks()) == []
    names = suite.public_names()
    assert {"gelu", "Dense", "Dropout", "BatchApply", "random.normal", "initializers.orthogonal"} <= names


def test_clean_run_passes_with_a_stable_json_schema(tmp_path):
    status, report = _run(tmp_path, "--only", "gelu", "--backends", "numpy,torch")
    assert status == 0 and report["uncovered"] == []
    assert {r["backend"] for r in report["results"]} == {"numpy", "torch"}
    for record in report["results"]:
        assert set(record) == RECORD_KEYS and record["passed"]


@pytest.mark.parametrize("name, wrong, only", [
    ("gelu", lambda x, approximate=True: xpnn.activations.gelu(x * (1 + 1e-5), approximate), "gelu"),
    ("Dense", None, "Dense(3) apply"),
])
def test_a_wrong_implementation_is_reported(tmp_path, monkeypatch, name, wrong, only):
    if name == "Dense":
        original = xpnn.Dense.__call__.__wrapped__

        def off_by_a_little(self, inputs):
            return original(self, inputs) * 1.0001

        monkeypatch.setattr(xpnn.Dense, "__call__", xpnn.module._wrap_method(off_by_a_little))
    else:
        monkeypatch.setattr(xpnn, name, wrong)
    status, report = _run(tmp_path, "--only", only, "--backends", "numpy")
    assert status == 1
    assert report["results"] and not any(r["passed"] for r in report["results"])


def test_a_wrong_sampler_is_reported(tmp_path, monkeypatch):
    normal = xpnn.random.normal
    monkeypatch.setattr(xpnn.random, "normal", lambda key, shape=(), dtype=None: normal(key, shape, dtype) * 1.001)
    status, report = _run(tmp_path, "--only", "random.normal", "--backends", "numpy")
    assert status == 1 and not any(r["passed"] for r in report["results"])


def test_an_uncovered_public_name_fails_the_run(tmp_path, monkeypatch):
    monkeypatch.setattr(xpnn, "FUNCTIONS", (*xpnn.FUNCTIONS, "not_yet_checked"))
    status, report = _run(tmp_path, "--only", "relu", "--backends", "numpy")
    assert status == 1 and report["uncovered"] == ["not_yet_checked"]
    assert all(r["passed"] for r in report["results"])


def test_errors_are_recorded_not_raised(tmp_path, monkeypatch):
    def broken(x):
        raise RuntimeError("boom")

    monkeypatch.setattr(xpnn, "relu", broken)
    status, report = _run(tmp_path, "--only", "relu", "--backends", "numpy")
    assert status == 1
    assert all(r["error"] == "RuntimeError: boom" for r in report["results"])
    np.testing.assert_equal(len(report["results"]), 2)  # float32 and float64


def test_namespace_option_certifies_a_library(tmp_path):
    status, report = _run(tmp_path, "--namespace", "array_api_strict", "--only", "softplus")
    assert status == 0 and report["results"]
    assert {r["backend"] for r in report["results"]} == {"array_api_strict"}
    assert {r["dtype"] for r in report["results"]} == {"float32", "float64"}


def test_namespace_option_rejects_a_non_namespace():
    with pytest.raises(ValueError, match="not an Array API namespace"):
        suite.main(["--namespace", "json", "--only", "relu"])
