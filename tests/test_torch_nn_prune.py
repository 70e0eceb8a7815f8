"""xpnn.torch_nn.utils.prune against torch.nn.utils.prune: the masks of the deterministic methods
(alone and one after another), pruned checkpoints both ways, outputs and gradients, the random
methods' counts, ``remove`` and the errors."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.utils.prune as torch_prune
from hypothesis import given, settings
from hypothesis import strategies as st

import xpnn.torch_nn as nn
from xpnn.torch_nn.utils import prune

#: (function name, keyword arguments) applied one after another to a Conv2d(3, 8, 3)'s weight
_CHAINS = {
    "l1": [("l1_unstructured", {"amount": 0.3})],
    "l1-int": [("l1_unstructured", {"amount": 17})],
    "ln2-dim0": [("ln_structured", {"amount": 3, "n": 2, "dim": 0})],
    "ln1-dim1": [("ln_structured", {"amount": 0.4, "n": 1, "dim": 1})],
    "lninf-dim-1": [("ln_structured", {"amount": 1, "n": float("inf"), "dim": -1})],
    "ln-neg-inf": [("ln_structured", {"amount": 0.5, "n": -float("inf"), "dim": 2})],
    "l1-then-ln": [("l1_unstructured", {"amount": 0.3}), ("ln_structured", {"amount": 2, "n": 2, "dim": 0})],
    "ln-then-l1-then-ln": [("ln_structured", {"amount": 2, "n": 2, "dim": 0}), ("l1_unstructured", {"amount": 0.25}),
                           ("ln_structured", {"amount": 0.5, "n": 1, "dim": 1})],
    "l1-twice": [("l1_unstructured", {"amount": 40}), ("l1_unstructured", {"amount": 0.5})],
    "identity-then-l1": [("identity", {}), ("l1_unstructured", {"amount": 0.1})],
    "custom-then-l1": [("custom_from_mask", {"mask": "every third"}), ("l1_unstructured", {"amount": 0.2})],
    "l1-then-custom": [("l1_unstructured", {"amount": 0.2}), ("custom_from_mask", {"mask": "every third"})],
}
_SHAPE = (8, 3, 3, 3)


def _pruned(library, chain, like=None, dtype="float64"):
    """A Conv2d of ``library`` (torch.nn or xpnn.torch_nn), torch's seeded weights, pruned by ``chain``."""
    torch.manual_seed(0)
    reference = torch.nn.Conv2d(3, 8, 3).double()
    if library is torch.nn:
        layer, convert = reference, torch.tensor
    else:
        layer = nn.Conv2d(3, 8, 3, like=like, dtype=dtype)
        layer.load_state_dict(reference.state_dict())
        convert = np.asarray
    for function, kwargs in chain:
        kwargs = dict(kwargs)
        if kwargs.get("mask") == "every third":
            kwargs["mask"] = convert(np.arange(math.prod(_SHAPE)).reshape(_SHAPE) % 3 != 0)
        getattr(library.utils.prune, function)(layer, "weight", **kwargs)
    return layer


@pytest.mark.parametrize("chain", list(_CHAINS))
def test_masks_outputs_and_state_dicts_are_torchs(backend, chain):
    reference = _pruned(torch.nn, _CHAINS[chain])
    layer = _pruned(nn, _CHAINS[chain], like=backend.like())
    assert list(layer.state_dict()) == list(reference.state_dict()) == ["bias", "weight_orig", "weight_mask"]
    assert [name for name, _ in layer.named_parameters()] == ["bias", "weight_orig"]
    np.testing.assert_array_equal(backend.to_numpy(layer.weight_mask), reference.weight_mask.numpy())
    np.testing.assert_array_equal(backend.to_numpy(layer.weight), reference.weight.detach().numpy())
    x = np.random.default_rng(0).standard_normal((2, 3, 7, 7))
    np.testing.assert_allclose(backend.to_numpy(layer(backend.asarray(x, "float64"))),
                               reference(torch.tensor(x)).detach().numpy(), rtol=1e-12, atol=1e-12)
    assert [type(hook).__name__ for hook, _ in layer._forward_pre_hooks.values()] == [
        type(hook).__name__ for hook in reference._forward_pre_hooks.values()]


def test_a_pruned_torch_checkpoint_loads_and_trains_the_same(backend):
    """A torch model pruned and trained: its state_dict into an xpnn twin pruned by ``identity``
    gives torch's outputs, a weight_orig update moves ``weight`` only where the mask is 1, and
    the twin's state_dict loads back into the torch model."""
    torch.manual_seed(1)
    reference = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3)).double()
    torch_prune.l1_unstructured(reference[0], "weight", amount=0.5)
    torch_prune.ln_structured(reference[2], "weight", amount=1, n=1, dim=1)
    torch_prune.global_unstructured([(reference[0], "bias"), (reference[2], "weight")], torch_prune.L1Unstructured,
                                    amount=6)
    optimizer = torch.optim.SGD(reference.parameters(), lr=0.1)
    x = np.random.default_rng(0).standard_normal((5, 6))
    reference(torch.tensor(x)).square().sum().backward()
    optimizer.step()
    twin = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 3)).to(like=backend.like(), dtype="float64")
    for index, names in ((0, ("weight", "bias")), (2, ("weight",))):
        for name in names:
            nn.utils.prune.identity(twin[index], name)
    twin.load_state_dict(reference.state_dict())
    np.testing.assert_allclose(backend.to_numpy(twin(backend.asarray(x, "float64"))),
                               reference(torch.tensor(x)).detach().numpy(), rtol=1e-12)
    fresh = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3)).double()
    for index, name in ((0, "weight"), (0, "bias"), (2, "weight")):
        torch_prune.identity(fresh[index], name)
    fresh.load_state_dict({k: torch.tensor(backend.to_numpy(v)) for k, v in twin.state_dict().items()})
    np.testing.assert_allclose(fresh(torch.tensor(x)).detach().numpy(), reference(torch.tensor(x)).detach().numpy(),
                               rtol=1e-12)


@pytest.mark.parametrize("chain", ["l1-then-ln", "custom-then-l1"])
def test_gradients_reach_the_original_weights_as_torchs(chain):
    reference = _pruned(torch.nn, _CHAINS[chain])
    layer = _pruned(nn, _CHAINS[chain], like=torch)
    x = torch.tensor(np.random.default_rng(0).standard_normal((2, 3, 7, 7)))
    for module in (reference, layer):
        module(x).square().sum().backward()
    assert layer.weight_orig.is_leaf and layer.weight_orig.requires_grad and not layer.weight_mask.requires_grad
    np.testing.assert_allclose(layer.weight_orig.grad.numpy(), reference.weight_orig.grad.numpy(), rtol=1e-12)
    np.testing.assert_allclose(layer.bias.grad.numpy(), reference.bias.grad.numpy(), rtol=1e-12)


@pytest.mark.parametrize("chain", ["l1", "ln-then-l1-then-ln"])
def test_remove_makes_the_pruning_permanent_in_the_same_array(backend, chain):
    reference = _pruned(torch.nn, _CHAINS[chain])
    layer = _pruned(nn, _CHAINS[chain], like=backend.like())
    held = layer.weight_orig
    assert prune.is_pruned(nn.Sequential(layer)) and not prune.is_pruned(nn.Linear(2, 2))
    prune.remove(layer, "weight")
    torch_prune.remove(reference, "weight")
    assert list(layer.state_dict()) == list(reference.state_dict()) and not prune.is_pruned(layer)
    np.testing.assert_array_equal(backend.to_numpy(layer.weight), reference.weight.detach().numpy())
    if backend.name in ("numpy", "torch"):  # mutable arrays: written in place, as torch's orig.data = weight
        assert layer.weight is held
    x = np.random.default_rng(0).standard_normal((1, 3, 5, 5))
    np.testing.assert_allclose(backend.to_numpy(layer(backend.asarray(x, "float64"))),
                               reference(torch.tensor(x)).detach().numpy(), rtol=1e-12, atol=1e-12)


def test_a_torch_optimizer_made_before_pruning_trains_the_parameter_throughout():
    """As torch's: ``<name>_orig`` is the parameter the optimizer holds, and ``remove`` writes
    the pruned values into it."""
    layer = nn.Linear(4, 3, like=torch)
    weight = layer.weight
    optimizer = torch.optim.SGD(layer.parameters(), lr=1.0)
    prune.l1_unstructured(layer, "weight", amount=0.5)
    assert layer.weight_orig is weight
    layer(torch.ones(1, 4)).sum().backward()
    optimizer.step()
    assert weight.grad is not None and (weight.grad != 0).sum() == 6
    prune.remove(layer, "weight")
    assert layer.weight is weight and (weight == 0).sum() == 6
    optimizer.zero_grad()
    layer(torch.ones(1, 4)).sum().backward()
    before = weight.detach().clone()
    optimizer.step()
    assert not torch.equal(weight, before) and weight.is_leaf


@pytest.mark.parametrize(("function", "kwargs", "pruned"), [
    ("random_unstructured", {"amount": 0.3}, ("entries", round(0.3 * 216))),
    ("random_unstructured", {"amount": 50}, ("entries", 50)),
    ("random_structured", {"amount": 3, "dim": 0}, ("channels", 3)),
    ("random_structured", {"amount": 0.5, "dim": 1}, ("channels", round(0.5 * 3))),
])
def test_random_methods_prune_the_amount_drawn_from_the_seeded_generator(backend, function, kwargs, pruned):
    """As torch's (whose draws come from torch's generator): exactly ``amount`` entries or
    channels pruned; the same seed gives the same mask on every backend; a second pruning acts
    on what is left."""
    masks = []
    for like in (None, backend.like()):
        nn.manual_seed(3)
        layer = nn.Conv2d(3, 8, 3, like=like)
        getattr(prune, function)(layer, "weight", **kwargs)
        masks.append(backend.to_numpy(layer.weight_mask) if like is not None else np.asarray(layer.weight_mask))
    np.testing.assert_array_equal(masks[0], masks[1])
    mask = masks[1]
    assert set(np.unique(mask)) <= {0.0, 1.0}
    if pruned[0] == "entries":
        assert (mask == 0).sum() == pruned[1]
    else:
        dim = kwargs["dim"]
        per_channel = mask.sum(axis=tuple(a for a in range(4) if a != dim))
        assert (per_channel == 0).sum() == pruned[1] and set(per_channel) <= {0.0, mask.size / mask.shape[dim]}
    getattr(prune, function)(layer, "weight", **kwargs)
    again = backend.to_numpy(layer.weight_mask)
    assert (again[mask == 0] == 0).all()
    if pruned[0] == "entries":
        assert (again == 0).sum() == pruned[1] + (kwargs["amount"] if isinstance(kwargs["amount"], int) else
                                                  round(kwargs["amount"] * (216 - pruned[1])))


def test_global_unstructured_with_importance_scores_as_torchs(backend):
    torch.manual_seed(2)
    reference = torch.nn.Sequential(torch.nn.Linear(5, 6), torch.nn.Linear(6, 4)).double()
    twin = nn.Sequential(nn.Linear(5, 6), nn.Linear(6, 4)).to(like=backend.like(), dtype="float64")
    twin.load_state_dict(reference.state_dict())
    scores = np.random.default_rng(0).standard_normal((6, 5))
    torch_prune.l1_unstructured(reference[1], "weight", amount=4)
    nn.utils.prune.l1_unstructured(twin[1], "weight", amount=4)
    torch_prune.global_unstructured([(reference[0], "weight"), (reference[1], "weight")], torch_prune.L1Unstructured,
                                    importance_scores={(reference[0], "weight"): torch.tensor(scores)}, amount=0.4)
    prune.global_unstructured([(twin[0], "weight"), (twin[1], "weight")], prune.L1Unstructured,
                              importance_scores={(twin[0], "weight"): backend.asarray(scores, "float64")}, amount=0.4)
    for index in (0, 1):
        np.testing.assert_array_equal(backend.to_numpy(twin[index].weight_mask), reference[index].weight_mask.numpy())


@settings(max_examples=25, deadline=None)
@given(shape=st.lists(st.integers(1, 5), min_size=2, max_size=4), data=st.data())
def test_l1_and_ln_masks_equal_torchs_for_any_shape_amount_and_dim(shape, data):
    """Distinct magnitudes (a shuffled arange), so that torch's order of ties does not matter."""
    size = math.prod(shape)
    values = np.random.default_rng(size).permutation(size).reshape(shape) - size / 2 + 0.25
    dim = data.draw(st.integers(-len(shape), len(shape) - 1))
    channels = shape[dim]
    amount = data.draw(st.one_of(st.floats(0, 1), st.integers(0, size)))
    channel_amount = data.draw(st.one_of(st.floats(0, 1), st.integers(0, channels)))
    n = data.draw(st.sampled_from([1, 2, 3, float("inf")] + ["fro"] * (len(shape) <= 3)))  # torch: 'fro' on 2 dims
    for method, kwargs in ((torch_prune.L1Unstructured, {"amount": amount}),
                           (torch_prune.LnStructured, {"amount": channel_amount, "n": n, "dim": dim})):
        ours = getattr(prune, method.__name__)(**kwargs)
        want = method(**kwargs).compute_mask(torch.tensor(values), torch.ones(shape, dtype=torch.float64))
        np.testing.assert_array_equal(ours.compute_mask(values, np.ones(shape)), want.numpy())
        np.testing.assert_array_equal(ours.prune(values), method(**kwargs).prune(torch.tensor(values)).numpy())


def test_bad_arguments_are_clear_errors():
    layer = nn.Conv2d(3, 8, 3)
    with pytest.raises(ValueError, match=r"prune\.L1Unstructured: amount=1\.5 should either be a float in the range "
                                         r"\[0, 1\] or a non-negative integer"):
        prune.l1_unstructured(layer, "weight", amount=1.5)
    with pytest.raises(ValueError, match=r"L1Unstructured: amount=-1 should"):
        prune.l1_unstructured(layer, "weight", amount=-1)
    with pytest.raises(TypeError, match=r"L1Unstructured: Invalid type for amount: '0\.5'"):
        prune.l1_unstructured(layer, "weight", amount="0.5")
    with pytest.raises(ValueError, match=r"amount=300 should be smaller than the number of parameters to prune=216"):
        prune.l1_unstructured(layer, "weight", amount=300)
    assert "weight" in layer._parameters and "weight_orig" not in layer._parameters  # untouched by the failures
    with pytest.raises(ValueError, match=r"LnStructured: Structured pruning can only be applied to multidimensional "
                                         r"tensors\. Found tensor of shape \(8,\)"):
        prune.ln_structured(layer, "bias", amount=1, n=2, dim=0)
    with pytest.raises(IndexError, match=r"LnStructured: Invalid index 4 for tensor of size \(8, 3, 3, 3\)"):
        prune.ln_structured(layer, "weight", amount=1, n=2, dim=4)
    with pytest.raises(ValueError, match=r"LnStructured: n must be a number, inf, -inf or 'fro', got 'nuc'"):
        prune.ln_structured(layer, "weight", amount=1, n="nuc", dim=0)
    with pytest.raises(ValueError, match=r"L1Unstructured\.apply: importance_scores should have the same shape as "
                                         r"parameter weight of Conv2d, got \(8, 3\) vs \(8, 3, 3, 3\)"):
        prune.l1_unstructured(layer, "weight", amount=1, importance_scores=np.ones((8, 3)))
    with pytest.raises(AttributeError, match=r"Identity\.apply: Conv2d has no parameter 'kernel' to prune"):
        prune.identity(layer, "kernel")
    with pytest.raises(ValueError, match=r"prune\.remove: Parameter 'weight' of module Conv2d has to be pruned"):
        prune.remove(layer, "weight")
    with pytest.raises(TypeError, match=r"global_unstructured: Only \"unstructured\" PRUNING_TYPE supported for the "
                                        r"`pruning_method`\. Found method LnStructured of type structured"):
        prune.global_unstructured([(layer, "weight")], prune.LnStructured, amount=1, n=2, dim=0)
    with pytest.raises(ValueError, match=r"CustomFromMask: mask of shape \(3,\) for a parameter of shape \(8,\)"):
        prune.custom_from_mask(layer, "bias", np.ones(3))
    assert not prune.is_pruned(layer)
