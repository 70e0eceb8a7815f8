"""flax.linen-style layers, one module per family: subclasses of ``xpnn.Module``.

Families: ``linear`` (Dense, DenseGeneral, Einsum, Embed), ``conv`` (Conv, ConvTranspose,
ConvLocal), ``normalization`` (BatchNorm, LayerNorm, RMSNorm, GroupNorm, InstanceNorm),
``stochastic``
(Dropout), ``activations`` (PReLU), ``combinators`` (Sequential,
BatchApply).  A layer's math that a function or a torch-style module also
needs lives once in ``xpnn.functions``.  Every name in a family's ``__all__``
is exported as ``xpnn.<name>``.
"""
from xpnn.layers import activations, combinators, conv, linear, normalization, stochastic
from xpnn.layers.activations import *  # noqa: F403 - each family's __all__
from xpnn.layers.combinators import *  # noqa: F403
from xpnn.layers.conv import *  # noqa: F403
from xpnn.layers.linear import *  # noqa: F403
from xpnn.layers.normalization import *  # noqa: F403
from xpnn.layers.stochastic import *  # noqa: F403

__all__ = [*linear.__all__, *conv.__all__, *normalization.__all__, *stochastic.__all__, *activations.__all__,
           *combinators.__all__]
