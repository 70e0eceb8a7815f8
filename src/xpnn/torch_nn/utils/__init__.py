"""``torch.nn.utils`` for the arrays of any library: ``rnn`` (padding and packing sequences, which
the recurrent layers take), gradient clipping, parameters as one vector, batch-norm fusion and
``skip_init``, weight and spectral normalization (as parametrizations, and torch's older hooks), orthogonal
matrices, pruning, and ``stateless.functional_call``."""
from xpnn.torch_nn.utils import parametrizations, parametrize, prune, rnn, stateless
from xpnn.torch_nn.utils.clip_grad import (
    clip_grad_norm, clip_grad_norm_, clip_grad_value_, clip_grads_with_norm_, get_total_norm,
)
from xpnn.torch_nn.utils.convert_parameters import parameters_to_vector, vector_to_parameters
from xpnn.torch_nn.utils.fusion import (
    fuse_conv_bn_eval, fuse_conv_bn_weights, fuse_linear_bn_eval, fuse_linear_bn_weights,
)
from xpnn.torch_nn.utils.init import skip_init
from xpnn.torch_nn.utils.spectral_norm import remove_spectral_norm, spectral_norm
from xpnn.torch_nn.utils.weight_norm import remove_weight_norm, weight_norm

__all__ = ["rnn", "prune", "parametrize", "parametrizations", "stateless", "weight_norm", "remove_weight_norm",
           "spectral_norm", "remove_spectral_norm", "clip_grad_norm", "clip_grad_norm_", "clip_grad_value_",
           "clip_grads_with_norm_", "get_total_norm", "parameters_to_vector", "vector_to_parameters",
           "fuse_conv_bn_eval", "fuse_conv_bn_weights", "fuse_linear_bn_eval", "fuse_linear_bn_weights", "skip_init"]
