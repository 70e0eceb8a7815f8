"""``torch.nn.utils`` for the arrays of any library: ``rnn`` (padding and packing sequences)."""
from xpnn.torch_nn.utils import rnn

__all__ = ["rnn"]
