"""torch.nn's ``MultiheadAttention``, ``TransformerEncoderLayer``, ``TransformerEncoder``,
``TransformerDecoderLayer``, ``TransformerDecoder`` and ``Transformer`` (../shared/REFERENCE.md F),
on ``multi_head_attention_forward`` and the linear, norm and dropout shells; torch.nn 2.13's
arguments, defaults, parameter names and initialisation."""
from __future__ import annotations

import copy
import math
from collections.abc import Callable
from typing import Any

from xpnn._types import Array
from xpnn.torch_nn import functional as F
from xpnn.torch_nn import init
from xpnn.torch_nn.init import Factory
from xpnn.torch_nn.layers import Dropout, LayerNorm, Linear
from xpnn.torch_nn.module import Module, ModuleList, Parameter

__all__ = ["MultiheadAttention", "TransformerEncoderLayer", "TransformerEncoder", "TransformerDecoderLayer",
           "TransformerDecoder", "Transformer"]


class NonDynamicallyQuantizableLinear(Linear):
    """torch's name for MultiheadAttention's ``out_proj`` (a Linear), kept so reprs match."""


class MultiheadAttention(Module):
    """softmax(q k^T / sqrt(E / H) + mask) v per head, between an in-projection and
    ``out_proj``.  Parameters: ``in_proj_weight`` ``(3E, E)`` ~ xavier_uniform (or
    ``q/k/v_proj_weight`` when ``kdim``/``vdim`` differ from ``embed_dim``), ``in_proj_bias``
    zeros, ``out_proj`` a Linear with zero bias, ``bias_k``/``bias_v`` ``(1, 1, E)`` ~
    xavier_normal (``add_bias_kv``).  Inputs ``(L, N, E)``, ``(N, L, E)`` with ``batch_first``,
    or unbatched ``(L, E)``; a boolean ``attn_mask``/``key_padding_mask`` is True where
    attention is *not* allowed, a float one is added.  Returns ``(output, weights)``
    (``weights`` averaged over heads unless ``average_attn_weights=False``; None unless
    ``need_weights``)."""

    def __init__(self, embed_dim: int, num_heads: int, dropout: float = 0.0, bias: bool = True,
                 add_bias_kv: bool = False, add_zero_attn: bool = False, kdim: int | None = None,
                 vdim: int | None = None, batch_first: bool = False, *, like: Any = None, dtype: Any = None,
                 key: Array | None = None) -> None:
        super().__init__()
        if embed_dim <= 0 or num_heads <= 0 or embed_dim % num_heads:
            raise ValueError(f"xpnn.torch_nn.MultiheadAttention: embed_dim ({embed_dim}) must be a positive multiple "
                             f"of num_heads ({num_heads})")
        self.embed_dim, self.num_heads, self.dropout, self.batch_first = embed_dim, num_heads, dropout, batch_first
        self.kdim = kdim if kdim is not None else embed_dim
        self.vdim = vdim if vdim is not None else embed_dim
        self._qkv_same_embed_dim = self.kdim == embed_dim and self.vdim == embed_dim
        self.head_dim = embed_dim // num_heads
        self.add_zero_attn = add_zero_attn
        make = Factory(like, dtype, key)
        if self._qkv_same_embed_dim:
            self.in_proj_weight = Parameter(make.xavier_uniform((3 * embed_dim, embed_dim)))
            for name in ("q_proj_weight", "k_proj_weight", "v_proj_weight"):
                self.register_parameter(name, None)
        else:
            self.register_parameter("in_proj_weight", None)
            self.q_proj_weight = Parameter(make.xavier_uniform((embed_dim, embed_dim)))
            self.k_proj_weight = Parameter(make.xavier_uniform((embed_dim, self.kdim)))
            self.v_proj_weight = Parameter(make.xavier_uniform((embed_dim, self.vdim)))
        if bias:
            self.in_proj_bias = Parameter(make.full((3 * embed_dim,), 0.0))
        else:
            self.register_parameter("in_proj_bias", None)
        self.out_proj = NonDynamicallyQuantizableLinear(embed_dim, embed_dim, bias=bias, like=like, dtype=dtype, key=make.key())
        if bias:
            self.out_proj.bias = make.full((embed_dim,), 0.0)
        if add_bias_kv:
            std = math.sqrt(1.0 / embed_dim)  # xavier_normal_ of a (1, 1, E) tensor
            self.bias_k = Parameter(make.normal((1, 1, embed_dim)) * std)
            self.bias_v = Parameter(make.normal((1, 1, embed_dim)) * std)
        else:
            self.bias_k = self.bias_v = None

    def _reset_parameters(self) -> None:
        """torch's: the in-projections drawn again from xavier_uniform, the biases zero and
        ``bias_k``/``bias_v`` from xavier_normal, in place (``out_proj.weight`` is kept)."""
        for name in ("in_proj_weight", "q_proj_weight", "k_proj_weight", "v_proj_weight"):
            if getattr(self, name) is not None:
                init.xavier_uniform_(getattr(self, name))
        if self.in_proj_bias is not None:
            init.zeros_(self.in_proj_bias)
            init.zeros_(self.out_proj.bias)
        for name in ("bias_k", "bias_v"):
            if getattr(self, name) is not None:
                init.xavier_normal_(getattr(self, name))

    def forward(self, query: Array, key: Array, value: Array, key_padding_mask: Array | None = None,
                need_weights: bool = True, attn_mask: Array | None = None, average_attn_weights: bool = True,
                is_causal: bool = False) -> tuple[Array, Array | None]:
        return F.multi_head_attention_forward(
            query, key, value, self.embed_dim, self.num_heads, self.in_proj_weight, self.in_proj_bias,
            self.bias_k, self.bias_v, self.add_zero_attn, self.dropout, self.out_proj.weight, self.out_proj.bias,
            training=self.training, key_padding_mask=key_padding_mask, need_weights=need_weights,
            attn_mask=attn_mask, use_separate_proj_weight=not self._qkv_same_embed_dim,
            q_proj_weight=self.q_proj_weight, k_proj_weight=self.k_proj_weight, v_proj_weight=self.v_proj_weight,
            average_attn_weights=average_attn_weights, is_causal=is_causal, batch_first=self.batch_first)


_ACTIVATIONS: dict[str, Callable[[Array], Array]] = {"relu": F.relu, "gelu": F.gelu}


class _TransformerLayer(Module):
    """What torch's encoder and decoder layers share: ``self_attn``, and the feed-forward block
    ``linear1``, ``dropout``, ``linear2`` (``activation`` 'relu', 'gelu' or a function) with
    LayerNorms ``norm1``, ``norm2``... and dropouts ``dropout1``, ``dropout2``... in torch's
    order of registration (the decoder's ``multihead_attn`` after ``self_attn``)."""

    _attentions = 1

    def __init__(self, d_model: int, nhead: int, dim_feedforward: int = 2048, dropout: float = 0.1,
                 activation: str | Callable[[Array], Array] = "relu", layer_norm_eps: float = 1e-5,
                 batch_first: bool = False, norm_first: bool = False, bias: bool = True, *, like: Any = None,
                 dtype: Any = None, key: Array | None = None) -> None:
        super().__init__()
        if isinstance(activation, str) and activation not in _ACTIVATIONS:
            raise ValueError(f"xpnn.torch_nn.{type(self).__name__}: activation should be relu/gelu, not {activation}")
        make = Factory(like, dtype, key)
        factory = {"like": like, "dtype": dtype}
        attention = {"dropout": dropout, "bias": bias, "batch_first": batch_first, **factory}
        self.self_attn = MultiheadAttention(d_model, nhead, key=make.key(), **attention)
        if self._attentions == 2:
            self.multihead_attn = MultiheadAttention(d_model, nhead, key=make.key(), **attention)
        self.linear1 = Linear(d_model, dim_feedforward, bias=bias, key=make.key(), **factory)
        self.dropout = Dropout(dropout)
        self.linear2 = Linear(dim_feedforward, d_model, bias=bias, key=make.key(), **factory)
        self.norm_first = norm_first
        for index in range(1, self._attentions + 2):
            setattr(self, f"norm{index}", LayerNorm(d_model, eps=layer_norm_eps, bias=bias, **factory))
        for index in range(1, self._attentions + 2):
            setattr(self, f"dropout{index}", Dropout(dropout))
        self.activation = _ACTIVATIONS[activation] if isinstance(activation, str) else activation

    def _sa_block(self, x: Array, attn_mask: Array | None, key_padding_mask: Array | None, is_causal: bool) -> Array:
        out = self.self_attn(x, x, x, attn_mask=attn_mask, key_padding_mask=key_padding_mask, need_weights=False,
                             is_causal=is_causal)[0]
        return self.dropout1(out)

    def _ff_block(self, x: Array) -> Array:
        last = getattr(self, f"dropout{self._attentions + 1}")
        return last(self.linear2(self.dropout(self.activation(self.linear1(x)))))


class TransformerEncoderLayer(_TransformerLayer):
    """Self-attention and a feed-forward block, each with a residual connection and LayerNorm
    (after, or before with ``norm_first``): torch.nn's layer of "Attention Is All You Need".
    Submodules ``self_attn``, ``linear1``, ``dropout``, ``linear2``, ``norm1``, ``norm2``,
    ``dropout1``, ``dropout2``; ``activation`` 'relu', 'gelu' or a function."""

    def forward(self, src: Array, src_mask: Array | None = None, src_key_padding_mask: Array | None = None,
                is_causal: bool = False) -> Array:
        x = src
        if self.norm_first:
            x = x + self._sa_block(self.norm1(x), src_mask, src_key_padding_mask, is_causal)
            return x + self._ff_block(self.norm2(x))
        x = self.norm1(x + self._sa_block(x, src_mask, src_key_padding_mask, is_causal))
        return self.norm2(x + self._ff_block(x))


class TransformerEncoder(Module):
    """``num_layers`` copies of ``encoder_layer`` (``layers.0``, ``layers.1``, ...) and an
    optional final ``norm``.

    Every position is computed, padded ones included: torch's nested-tensor path
    (``enable_nested_tensor``, taken in eval mode without autograd when a left-aligned
    ``src_key_padding_mask`` comes alone) returns zeros there instead (the final norm of zeros
    with ``norm``); the positions that are not padding agree.  ``enable_nested_tensor`` and
    ``mask_check`` are taken for torch's signature and change nothing."""

    def __init__(self, encoder_layer: TransformerEncoderLayer, num_layers: int, norm: Module | None = None,
                 enable_nested_tensor: bool = True, mask_check: bool = True) -> None:
        super().__init__()
        self.layers = ModuleList([copy.deepcopy(encoder_layer) for _ in range(num_layers)])
        self.num_layers = num_layers
        self.norm = norm

    def forward(self, src: Array, mask: Array | None = None, src_key_padding_mask: Array | None = None,
                is_causal: bool | None = None) -> Array:
        output = src
        for layer in self.layers:
            output = layer(output, src_mask=mask, src_key_padding_mask=src_key_padding_mask,
                           is_causal=bool(is_causal))
        return output if self.norm is None else self.norm(output)


class TransformerDecoderLayer(_TransformerLayer):
    """Self-attention over the target, attention to the encoder's ``memory`` and a feed-forward
    block, each with a residual connection and LayerNorm (after, or before with ``norm_first``).
    Submodules ``self_attn``, ``multihead_attn``, ``linear1``, ``dropout``, ``linear2``,
    ``norm1``..``norm3``, ``dropout1``..``dropout3``."""

    _attentions = 2

    def forward(self, tgt: Array, memory: Array, tgt_mask: Array | None = None, memory_mask: Array | None = None,
                tgt_key_padding_mask: Array | None = None, memory_key_padding_mask: Array | None = None,
                tgt_is_causal: bool = False, memory_is_causal: bool = False) -> Array:
        x = tgt
        if self.norm_first:
            x = x + self._sa_block(self.norm1(x), tgt_mask, tgt_key_padding_mask, tgt_is_causal)
            x = x + self._mha_block(self.norm2(x), memory, memory_mask, memory_key_padding_mask, memory_is_causal)
            return x + self._ff_block(self.norm3(x))
        x = self.norm1(x + self._sa_block(x, tgt_mask, tgt_key_padding_mask, tgt_is_causal))
        x = self.norm2(x + self._mha_block(x, memory, memory_mask, memory_key_padding_mask, memory_is_causal))
        return self.norm3(x + self._ff_block(x))

    def _mha_block(self, x: Array, memory: Array, attn_mask: Array | None, key_padding_mask: Array | None,
                   is_causal: bool) -> Array:
        out = self.multihead_attn(x, memory, memory, attn_mask=attn_mask, key_padding_mask=key_padding_mask,
                                  need_weights=False, is_causal=is_causal)[0]
        return self.dropout2(out)


class TransformerDecoder(Module):
    """``num_layers`` copies of ``decoder_layer`` (``layers.0``, ...) and an optional final ``norm``."""

    def __init__(self, decoder_layer: TransformerDecoderLayer, num_layers: int, norm: Module | None = None) -> None:
        super().__init__()
        self.layers = ModuleList([copy.deepcopy(decoder_layer) for _ in range(num_layers)])
        self.num_layers = num_layers
        self.norm = norm

    def forward(self, tgt: Array, memory: Array, tgt_mask: Array | None = None, memory_mask: Array | None = None,
                tgt_key_padding_mask: Array | None = None, memory_key_padding_mask: Array | None = None,
                tgt_is_causal: bool | None = None, memory_is_causal: bool = False) -> Array:
        output = tgt
        for layer in self.layers:
            output = layer(output, memory, tgt_mask=tgt_mask, memory_mask=memory_mask,
                           tgt_key_padding_mask=tgt_key_padding_mask, memory_key_padding_mask=memory_key_padding_mask,
                           tgt_is_causal=bool(tgt_is_causal), memory_is_causal=memory_is_causal)
        return output if self.norm is None else self.norm(output)


class Transformer(Module):
    """An encoder of ``num_encoder_layers`` and a decoder of ``num_decoder_layers`` layers, each
    with a final LayerNorm (``encoder``, ``decoder``): torch.nn's "Attention Is All You Need".
    Every parameter of more than one dim starts xavier_uniform, as torch resets them.
    ``forward(src, tgt, ...)`` encodes ``src`` and decodes ``tgt`` against it."""

    def __init__(self, d_model: int = 512, nhead: int = 8, num_encoder_layers: int = 6, num_decoder_layers: int = 6,
                 dim_feedforward: int = 2048, dropout: float = 0.1, activation: str | Callable[[Array], Array] = "relu",
                 custom_encoder: Module | None = None, custom_decoder: Module | None = None,
                 layer_norm_eps: float = 1e-5, batch_first: bool = False, norm_first: bool = False,
                 bias: bool = True, *, like: Any = None, dtype: Any = None, key: Array | None = None) -> None:
        super().__init__()
        make = Factory(like, dtype, key)
        factory = {"like": like, "dtype": dtype}
        layer = {"dim_feedforward": dim_feedforward, "dropout": dropout, "activation": activation,
                 "layer_norm_eps": layer_norm_eps, "batch_first": batch_first, "norm_first": norm_first, "bias": bias,
                 **factory}
        if custom_encoder is not None:
            self.encoder = custom_encoder
        else:
            self.encoder = TransformerEncoder(
                TransformerEncoderLayer(d_model, nhead, key=make.key(), **layer), num_encoder_layers,
                LayerNorm(d_model, eps=layer_norm_eps, bias=bias, **factory))
        if custom_decoder is not None:
            self.decoder = custom_decoder
        else:
            self.decoder = TransformerDecoder(
                TransformerDecoderLayer(d_model, nhead, key=make.key(), **layer), num_decoder_layers,
                LayerNorm(d_model, eps=layer_norm_eps, bias=bias, **factory))
        self.d_model, self.nhead, self.batch_first = d_model, nhead, batch_first
        self._reset_parameters(make)

    def _reset_parameters(self, keys: Factory | None = None) -> None:
        """torch's: every parameter of more than one dim drawn again from xavier_uniform, in
        place (from ``keys``' keys, else the generator)."""
        for parameter in self.parameters():
            if parameter.ndim > 1:
                init.xavier_uniform_(parameter, key=None if keys is None else keys.key())

    def forward(self, src: Array, tgt: Array, src_mask: Array | None = None, tgt_mask: Array | None = None,
                memory_mask: Array | None = None, src_key_padding_mask: Array | None = None,
                tgt_key_padding_mask: Array | None = None, memory_key_padding_mask: Array | None = None,
                src_is_causal: bool | None = None, tgt_is_causal: bool | None = None,
                memory_is_causal: bool = False) -> Array:
        batch_axis = 0 if self.batch_first else 1
        if src.ndim == 3 and tgt.ndim == 3 and src.shape[batch_axis] != tgt.shape[batch_axis]:
            raise ValueError("xpnn.torch_nn.Transformer: the batch number of src and tgt must be equal, got "
                             f"{src.shape[batch_axis]} and {tgt.shape[batch_axis]}")
        if src.shape[-1] != self.d_model or tgt.shape[-1] != self.d_model:
            raise ValueError(f"xpnn.torch_nn.Transformer: the feature number of src and tgt must be equal to d_model "
                             f"({self.d_model}), got {src.shape[-1]} and {tgt.shape[-1]}")
        memory = self.encoder(src, mask=src_mask, src_key_padding_mask=src_key_padding_mask, is_causal=src_is_causal)
        return self.decoder(tgt, memory, tgt_mask=tgt_mask, memory_mask=memory_mask,
                            tgt_key_padding_mask=tgt_key_padding_mask, memory_key_padding_mask=memory_key_padding_mask,
                            tgt_is_causal=tgt_is_causal, memory_is_causal=memory_is_causal)

    @staticmethod
    def generate_square_subsequent_mask(sz: int, like: Any = None, dtype: Any = None) -> Array:
        """The causal mask ``(sz, sz)``: -inf above the diagonal, 0 elsewhere (torch's)."""
        make = Factory(like, dtype)
        xp = make.adapter.xp
        rows = xp.arange(sz, device=make.device)
        return xp.where(rows[None, :] > rows[:, None], -math.inf, xp.zeros((sz, sz), dtype=make.dtype,
                                                                           device=make.device))
