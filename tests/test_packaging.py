"""The installed package: every subpackage of the source tree is one that ``pyproject.toml``
lists, so a wheel (``pip install .`` without ``-e``) holds all of xpnn, and a wheel built
from this tree imports ``xpnn.torch_nn``."""
from __future__ import annotations

import pathlib
import subprocess
import sys
import tomllib
import zipfile

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _setuptools() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]


def test_every_subpackage_is_listed():
    """Each directory with an ``__init__.py`` under a mapped package directory is a listed package."""
    config = _setuptools()
    found = set()
    for package, directory in config["package-dir"].items():
        for init in (ROOT / directory).rglob("__init__.py"):
            found.add(".".join((package, *init.parent.relative_to(ROOT / directory).parts)))
    missing = found - set(config["packages"])
    assert not missing, f"pyproject.toml's [tool.setuptools] packages lacks {sorted(missing)}"


@pytest.mark.slow
def test_a_wheel_holds_the_torch_style_namespace(tmp_path):
    """``pip wheel .`` builds a wheel with ``xpnn/torch_nn/functional.py`` in it."""
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp_path), str(ROOT)],
                   check=True, capture_output=True, timeout=600)
    wheel = next(tmp_path.glob("xpnn-*.whl"))
    assert "xpnn/torch_nn/functional.py" in zipfile.ZipFile(wheel).namelist()
