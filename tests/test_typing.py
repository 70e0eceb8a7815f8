"""xpnn ships py.typed, and ``mypy --strict`` accepts a user script of its public API (the
public functions keep their signatures without the adapter, layers are dataclasses to the
type checker), checked against a regular (non-editable) install of this tree."""
from __future__ import annotations

import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "tests" / "typing" / "user_script.py"


@pytest.mark.slow
def test_mypy_strict_accepts_a_user_script(tmp_path):
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site), str(ROOT)],
                   check=True, capture_output=True, timeout=600)
    assert (site / "xpnn" / "py.typed").exists()
    done = subprocess.run([sys.executable, "-m", "mypy", "--strict", "--follow-imports=silent",
                           "--cache-dir", str(tmp_path / "cache"), str(SCRIPT)],
                          capture_output=True, text=True, timeout=600, cwd=tmp_path,
                          env={"MYPYPATH": str(site), "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_user_script_runs(tmp_path, monkeypatch):
    import runpy

    monkeypatch.setattr(sys, "argv", [str(SCRIPT), str(tmp_path / "v.safetensors")])
    runpy.run_path(str(SCRIPT), run_name="__main__")
    assert (tmp_path / "v.safetensors").stat().st_size > 100
