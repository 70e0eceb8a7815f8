"""``torch.nn``'s names, defaults and ``state_dict`` layouts for the arrays of every library.

``import xpnn.torch_nn as nn`` and a torch.nn model definition runs on NumPy, CuPy, JAX or
torch arrays (``like=`` picks the library and device; NumPy by default), and loads a real
torch ``state_dict``::

    import torch, numpy as np
    import xpnn.torch_nn as nn

    twin = nn.Sequential(nn.Linear(4, 8), nn.GELU(), nn.Linear(8, 2))
    twin.load_state_dict(torch_model.state_dict())   # torch tensors, converted to NumPy
    y = twin(np.ones((3, 4), np.float32))

Every module is a thin shell over ``xpnn.torch_nn.functional``, which reuses xpnn's
written-once activations, attention, convolution, pooling, norms and recurrent cells;
``xpnn.torch_nn.init`` holds torch.nn.init's initialisers and ``xpnn.torch_nn.utils``
torch.nn.utils' helpers (``utils.rnn``'s packed sequences, which the recurrent layers take).
"""
from xpnn.torch_nn import attention, functional, init, utils
from xpnn.torch_nn._generator import initial_seed, manual_seed
from xpnn.torch_nn.activation import *  # noqa: F403
from xpnn.torch_nn.activation import __all__ as _activation_names
from xpnn.torch_nn.layers import *  # noqa: F403
from xpnn.torch_nn.layers import __all__ as _layer_names
from xpnn.torch_nn.lazy import *  # noqa: F403
from xpnn.torch_nn.lazy import __all__ as _lazy_names
from xpnn.torch_nn.loss import *  # noqa: F403
from xpnn.torch_nn.loss import __all__ as _loss_names
from xpnn.torch_nn.module import (
    Buffer, Container, Module, ModuleDict, ModuleList, Parameter, ParameterDict, ParameterList, Sequential,
    functional_call,
)
from xpnn.torch_nn.recurrent import GRU, LSTM, RNN, GRUCell, LSTMCell, RNNBase, RNNCell, RNNCellBase
from xpnn.torch_nn.transformer import (
    MultiheadAttention, Transformer, TransformerDecoder, TransformerDecoderLayer, TransformerEncoder,
    TransformerEncoderLayer,
)

#: Every module class of the namespace, by name.
MODULES = (*_activation_names, *_layer_names, *_lazy_names, *_loss_names, "Sequential", "ModuleList", "ModuleDict",
           "ParameterList", "ParameterDict", "LSTM", "GRU", "RNN", "LSTMCell", "GRUCell", "RNNCell",
           "MultiheadAttention", "TransformerEncoderLayer", "TransformerEncoder", "TransformerDecoderLayer",
           "TransformerDecoder", "Transformer")

__all__ = ["attention", "functional", "init", "utils", "manual_seed", "initial_seed", "Module", "Parameter", "Buffer",
           "functional_call", "Container", "Sequential", "ModuleList", "ModuleDict", "ParameterList", "ParameterDict",
           "RNNBase", "LSTM", "GRU", "RNN", "RNNCellBase", "LSTMCell", "GRUCell", "RNNCell", "MultiheadAttention",
           "TransformerEncoderLayer", "TransformerEncoder", "TransformerDecoderLayer", "TransformerDecoder",
           "Transformer"]
__all__ += _activation_names
__all__ += _layer_names
__all__ += _lazy_names
__all__ += _loss_names
