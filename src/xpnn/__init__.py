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
# Every family's public functions and layers, star-imported from the family modules, whose
# literal __all__ type checkers read (they cannot follow the packages' composed ones).
from xpnn.functions.activations import *  # noqa: F403
from xpnn.functions.arrays import *  # noqa: F403
from xpnn.functions.attention import *  # noqa: F403
from xpnn.functions.pooling import *  # noqa: F403
from xpnn.functions.reductions import *  # noqa: F403
from xpnn.functions.torch_activations import *  # noqa: F403
from xpnn.functions.arrays import BlockScaleConfig, get_scaled_dot_general_config
from xpnn.trees import to_backend, tree_leaves, tree_map
from xpnn.module import DenyList, Module, ModuleError, Variable, compact, merge_param, nowrap
from xpnn.layers.activations import *  # noqa: F403
from xpnn.layers.attention import *  # noqa: F403
from xpnn.layers.combinators import *  # noqa: F403
from xpnn.layers.conv import *  # noqa: F403
from xpnn.layers.linear import *  # noqa: F403
from xpnn.layers.normalization import *  # noqa: F403
from xpnn.layers.recurrent import *  # noqa: F403
from xpnn.layers.stochastic import *  # noqa: F403
from xpnn import functions, layers
from xpnn.transforms import checkpoint, remat, scan
from xpnn.checkpoints import load, save
from xpnn.partitioning import *  # noqa: F403
from xpnn import partitioning

#: flax.linen's names for four initializers (``bias_init=xpnn.zeros_init()``, as ``nn.zeros_init()``).
zeros, ones = initializers.zeros, initializers.ones
zeros_init, ones_init = initializers.zeros_init, initializers.ones_init

__version__ = "0.1.0"

#: Every public array function, by name (the conformance suite checks each): the registry's
#: functions (``xpnn._dispatch.REGISTRY``) and jax.nn's aliases of two of them (``swish`` is ``silu``).
FUNCTIONS = tuple(functions.__all__)

#: Every layer, by name.
LAYERS = tuple(layers.__all__)

__all__ = [
    "random", "initializers", "set_fast_paths", "fast_paths", "fast_paths_enabled",
    "fast_path_report", "check_fast_paths", "SwitchedOff", "BlockScaleConfig", "get_scaled_dot_general_config",
    "Module", "compact", "nowrap", "Variable", "merge_param", "DenyList", "ModuleError",
    "tree_map", "tree_leaves", "to_backend", "scan", "checkpoint", "remat", "save", "load", "zeros", "ones",
    "zeros_init", "ones_init", "partitioning",
]
__all__ += partitioning.__all__
__all__ += functions.__all__
__all__ += layers.__all__
