"""flax.linen-style layers, one module per family: subclasses of ``xpnn.Module``.

Families: ``linear`` (Dense, DenseGeneral, Einsum, Embed), ``conv`` (Conv, ConvTranspose,
ConvLocal), ``normalization`` (BatchNorm, LayerNorm, RMSNorm, GroupNorm, InstanceNorm, SpectralNorm, WeightNorm),
``attention`` (MultiHeadDotProductAttention, MultiHeadAttention, SelfAttention, and flax.linen's
``dot_product_attention`` and ``combine_masks`` as ``xpnn.layers.<name>``),
``recurrent`` (LSTMCell, OptimizedLSTMCell, GRUCell, MGUCell, SimpleCell, ConvLSTMCell, RNNCellBase,
RNN, Bidirectional; ``torch_rnn`` converts torch.nn.LSTM/GRU/RNN state_dicts), ``stochastic``
(Dropout), ``activations`` (PReLU), ``combinators`` (Sequential,
BatchApply).  A layer's math that a function or a torch-style module also
needs lives once in ``xpnn.functions``.  Every name in a family's ``__all__``
is exported as ``xpnn.<name>``.
"""
from xpnn.layers import activations, attention, combinators, conv, linear, normalization, recurrent, stochastic
from xpnn.layers import torch_rnn  # noqa: F401 - xpnn.layers.torch_rnn, the state_dict converters
from xpnn.layers.activations import *  # noqa: F403 - each family's __all__
from xpnn.layers.attention import *  # noqa: F403
from xpnn.layers.attention import combine_masks, dot_product_attention  # noqa: F401 - flax.linen's; xpnn.dot_product_attention is jax.nn's
from xpnn.layers.combinators import *  # noqa: F403
from xpnn.layers.conv import *  # noqa: F403
from xpnn.layers.linear import *  # noqa: F403
from xpnn.layers.normalization import *  # noqa: F403
from xpnn.layers.recurrent import *  # noqa: F403
from xpnn.layers.stochastic import *  # noqa: F403

# Extended family by family (a form type checkers read, so `xpnn.Dense` is known to them).
__all__: list[str] = []
__all__ += linear.__all__
__all__ += conv.__all__
__all__ += normalization.__all__
__all__ += attention.__all__
__all__ += recurrent.__all__
__all__ += stochastic.__all__
__all__ += activations.__all__
__all__ += combinators.__all__
