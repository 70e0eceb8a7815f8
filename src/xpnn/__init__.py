"""xpnn: neural-network building blocks written once against the Python Array API standard.

Every function takes arrays of any Array API library (NumPy, CuPy, JAX,
PyTorch, Dask, array-api-strict, ...) and returns arrays of the same library
on the same device.  Names and semantics follow ``jax.nn``; the activations
that only ``torch.nn`` has use torch's names and defaults.  Layers follow
``flax.linen``: ``xpnn.Module`` with ``init``/``apply``, and the layers below.
"""
from xpnn.backends import _numpy_slices  # noqa: F401 - reads XPNN_NUM_THREADS now: a bad value fails at import
from xpnn import initializers, random
from xpnn._dispatch import check_fast_paths, fast_paths, fast_paths_enabled, set_fast_paths
from xpnn._kernel_check import SwitchedOff, fast_path_report
from xpnn.activations import (
    celu, elu, gelu, glu, hard_sigmoid, hard_silu, hard_swish, hard_tanh, leaky_relu,
    log1mexp, log_sigmoid, mish, relu, relu6, selu, sigmoid, silu, soft_sign, softplus,
    sparse_plus, sparse_sigmoid, squareplus, swish, tanh,
)
from xpnn.array_functions import identity, one_hot, scaled_matmul
from xpnn.reductions import log_softmax, logmeanexp, logsumexp, softmax, standardize
from xpnn.torch_activations import (
    hard_shrink, prelu, rrelu, soft_shrink, softmin, tanh_shrink, threshold,
)
from xpnn.trees import to_backend, tree_leaves, tree_map
from xpnn.module import DenyList, Module, ModuleError, Variable, compact, merge_param, nowrap
from xpnn.linear import Dense, DenseGeneral, Einsum, Embed
from xpnn.stochastic import Dropout
from xpnn.activation_layers import PReLU
from xpnn.combinators import BatchApply, Sequential

__version__ = "0.1.0"

#: Every public array function, by name (the conformance suite checks each).
FUNCTIONS = (
    "relu", "relu6", "leaky_relu", "elu", "selu", "celu", "gelu", "silu", "swish", "mish",
    "hard_silu", "hard_swish", "squareplus", "sigmoid", "hard_sigmoid", "log_sigmoid",
    "soft_sign", "tanh", "hard_tanh", "softmax", "log_softmax", "softplus", "standardize",
    "glu", "one_hot", "logsumexp", "logmeanexp", "log1mexp", "sparse_plus", "sparse_sigmoid",
    "identity", "scaled_matmul",
    "hard_shrink", "soft_shrink", "tanh_shrink", "threshold", "rrelu", "prelu", "softmin",
)

#: Every layer, by name.
LAYERS = ("Dense", "DenseGeneral", "Einsum", "Embed", "Dropout", "PReLU", "Sequential", "BatchApply")

__all__ = [
    *FUNCTIONS, *LAYERS, "random", "initializers", "set_fast_paths", "fast_paths", "fast_paths_enabled",
    "fast_path_report", "check_fast_paths", "SwitchedOff",
    "Module", "compact", "nowrap", "Variable", "merge_param", "DenyList", "ModuleError",
    "tree_map", "tree_leaves", "to_backend",
]
