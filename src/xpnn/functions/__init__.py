"""The public functions, written once, one module per family.

A function is a written-once definition ``f(ops, x, ...)`` decorated with
``@public(...)`` (``xpnn._dispatch``): the decorator enters it in the
registry and makes the public ``f(x, ...)``.  Families: ``activations`` and
``reductions`` (jax.nn's), ``arrays`` (one_hot, identity, scaled_matmul), ``attention``
(jax.nn's dot_product_attention, flax.linen's attention weights and masks), ``pooling``
(flax.linen's pool, max_pool, avg_pool, min_pool),
``torch_activations`` (the activations only torch.nn has).  Every name in a
family's ``__all__`` is exported as ``xpnn.<name>``.
"""
from xpnn.functions import activations, arrays, attention, pooling, reductions, torch_activations
from xpnn.functions.activations import *  # noqa: F403 - each family's __all__
from xpnn.functions.arrays import *  # noqa: F403
from xpnn.functions.attention import *  # noqa: F403
from xpnn.functions.pooling import *  # noqa: F403
from xpnn.functions.reductions import *  # noqa: F403
from xpnn.functions.torch_activations import *  # noqa: F403

# Extended family by family (a form type checkers read, so `xpnn.relu` is known to them).
__all__: list[str] = []
__all__ += activations.__all__
__all__ += arrays.__all__
__all__ += reductions.__all__
__all__ += torch_activations.__all__
__all__ += pooling.__all__
__all__ += attention.__all__
