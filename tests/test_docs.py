"""help() of every public name reads as plain text: no LaTeX or Sphinx roles, defaults that
print as what they are (initializers as their builder call, no closures or lambdas), and every
``xpnn.`` name a docstring cites exists."""
from __future__ import annotations

import importlib
import pydoc
import re

import pytest

import xpnn

_PUBLIC = ([*xpnn.FUNCTIONS, *xpnn.LAYERS, "Module", "save", "load", "scan", "to_backend", "tree_map",
            "check_fast_paths", "fast_paths"]
           + [f"initializers.{name}" for name in xpnn.initializers.__all__]
           + [f"random.{name}" for name in xpnn.random.__all__] + list(xpnn.partitioning.__all__))
_MARKUP = re.compile(r":math:|\.\. math::|\\(?:frac|sqrt|mathrm|text|sum|max|min|log|exp|alpha|lambda|sigma)\b"
                     r"|:(?:func|mod|class|meth|data|attr):`|<locals>|<lambda>")


def _resolve(dotted: str):
    obj = xpnn
    for part in dotted.split("."):
        obj = getattr(obj, part)
    return obj


@pytest.mark.parametrize("name", _PUBLIC)
def test_help_is_plain_text(name):
    text = pydoc.render_doc(_resolve(name), renderer=pydoc.plaintext)
    found = _MARKUP.search(text)
    assert found is None, f"help(xpnn.{name}) shows {text[max(0, found.start() - 60):found.end() + 60]!r}"


def test_every_cited_xpnn_name_exists():
    cited = set()
    for name in _PUBLIC:
        cited |= set(re.findall(r"\bxpnn(?:\.[A-Za-z_][A-Za-z0-9_]*)+", pydoc.render_doc(_resolve(name),
                                                                                          renderer=pydoc.plaintext)))
    missing = []
    for dotted in sorted(cited):
        parts = dotted.split(".")
        for split in range(len(parts), 0, -1):  # the longest importable module, then attributes
            try:
                obj = importlib.import_module(".".join(parts[:split]))
            except ImportError:
                continue
            try:
                for part in parts[split:]:
                    obj = getattr(obj, part)
            except AttributeError:
                missing.append(dotted)
            break
    assert not missing, missing
