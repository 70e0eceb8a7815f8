"""The registry of public functions against the exports, the conformance cases and the adapters.

A function is added by writing its definition (entered in the registry by
``@public``) and one conformance case; these tests fail when the two, the
exported names, or an adapter's fast-path tables drift apart.
"""
from __future__ import annotations

import numpy as np
import pytest

import xpnn
from conftest import BACKENDS
from xpnn._dispatch import REGISTRY, adapter_of
from xpnn.backends import _numpy_slices
from xpnn.conformance.cases import CASES

#: jax.nn's aliases: public names that are another registered function.
ALIASES = {"swish": "silu", "hard_swish": "hard_silu"}


def test_every_exported_function_is_registered_and_every_registered_one_exported():
    registered = set(REGISTRY)
    exported = set(xpnn.FUNCTIONS)
    assert exported - set(ALIASES) == registered
    for alias, name in ALIASES.items():
        assert getattr(xpnn, alias) is getattr(xpnn, name)
    for name, entry in REGISTRY.items():
        assert getattr(xpnn, name) is entry.public, name
        assert xpnn.__all__.count(name) == 1, name


def test_every_registered_function_has_a_conformance_case_against_its_reference():
    """Each has a check in the main job (the elementwise and axis cases, ``CASES``; the poolings,
    attention functions, one_hot of integer ids and scaled_matmul of 3-d operands have checks of
    their own), and each function case compares with the framework of the function's reference."""
    from xpnn.conformance.__main__ import checks

    covered = {check.name for check in checks()} & set(xpnn.FUNCTIONS)
    assert set(REGISTRY) <= covered, set(REGISTRY) - covered
    assert covered <= set(xpnn.FUNCTIONS), covered - set(xpnn.FUNCTIONS)
    for case in CASES:
        entry = REGISTRY[ALIASES.get(case.function, case.function)]
        framework = entry.reference.split(".")[0]
        assert case.framework == framework, (case.label, case.framework, entry.reference)


@pytest.mark.parametrize("name", sorted(BACKENDS))
def test_every_fast_path_key_is_a_reachable_public_function(name):
    """An adapter's fast paths are looked up by the registered name of the function called: a
    key that is no registered name (an alias such as ``swish``, a typo) is never reached."""
    adapter = adapter_of(BACKENDS[name].asarray(np.zeros(1), "float32"))
    assert set(adapter.fast_paths) <= set(REGISTRY), set(adapter.fast_paths) - set(REGISTRY)
    assert adapter.fast_path_zero_signs <= set(REGISTRY)


def test_backend_tables_name_registered_functions():
    names = {name for names, _ in _numpy_slices.SLICED for name in names}
    assert names <= set(REGISTRY), names - set(REGISTRY)
    jax_backend = pytest.importorskip("xpnn.backends.jax")
    assert set(jax_backend._JAX_NN) <= set(REGISTRY), set(jax_backend._JAX_NN) - set(REGISTRY)


def test_traits_are_known_and_rowwise_functions_take_an_axis():
    for name, entry in REGISTRY.items():
        assert entry.traits <= {"elementwise", "rowwise"}, name
        if "rowwise" in entry.traits:
            assert "axis" in entry.static, name
