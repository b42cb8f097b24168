"""torch's Transformer modules traced through their reference path (the "slow path").

``nn.TransformerEncoderLayer.forward`` and ``nn.TransformerEncoder.forward`` first decide
whether a fused kernel may run instead (``torch._transformer_encoder_layer_fwd``, nested
tensors for padded batches): they test ``F._none_or_dtype(mask)``, ``src.dim()``, the padding
mask's alignment, ``self.training``. ``nn.TransformerDecoder`` and ``nn.Transformer`` test the
input's ``is_nested``, sizes and the mask's causality. torch.fx cannot evaluate those tests on a
Proxy, so tracing stopped with ``input to _none_or_dtype() must be None or torch.Tensor``.

The fused kernels compute the same layer: the same projections, attention and feed-forward
GEMMs (torch's docs: the fast path is an inference optimisation of the same maths). So
`QdseTracer` runs, for a module whose ``forward`` is torch's own (a subclass that does not
override it included), the reference path that follows those checks in torch's source, written
out below: the self-attention ``nn.MultiheadAttention`` stays a leaf and is expanded to its
GEMMs (`workloads.composite`), ``linear1``/``linear2`` are Linear leaves, the norms and residual
adds the ops they are. What the checks decided about masks is left to the attention module,
which canonicalises its masks itself; a causal hint is passed on as given (``None``: False, the
mask then applied as it is - the same arithmetic).

Per encoder layer (E = d_model, F = dim_feedforward, H heads, N sequences of L tokens)::

    self_attn   q/k/v/out projections 4*N*L*E*E, scores and context 2*N*H*L*L*(E/H)
    linear1     N*L*E*F
    linear2     N*L*F*E
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from torch import Tensor, nn

__all__ = ["ROOT_DEFAULTS", "TORCH_TRANSFORMERS", "reference_forward", "traceable_root"]


def _encoder_layer(self: nn.TransformerEncoderLayer, src: Tensor, src_mask: Any = None,
                   src_key_padding_mask: Any = None, is_causal: bool = False) -> Tensor:
    """``nn.TransformerEncoderLayer.forward`` past its fast-path checks (Xiong et al. 2020,
    Fig. 1: post-norm, or pre-norm with ``norm_first``)."""
    x = src
    if self.norm_first:
        x = x + self._sa_block(self.norm1(x), src_mask, src_key_padding_mask,
                               is_causal=is_causal)
        return x + self._ff_block(self.norm2(x))
    x = self.norm1(x + self._sa_block(x, src_mask, src_key_padding_mask, is_causal=is_causal))
    return self.norm2(x + self._ff_block(x))


def _encoder(self: nn.TransformerEncoder, src: Tensor, mask: Any = None,
             src_key_padding_mask: Any = None, is_causal: bool | None = None) -> Tensor:
    """``nn.TransformerEncoder.forward`` past its fast-path checks: every layer in turn, then
    the optional final norm (the padding mask goes to every layer, not into a nested tensor)."""
    output = src
    for mod in self.layers:
        output = mod(output, src_mask=mask, is_causal=bool(is_causal),
                     src_key_padding_mask=src_key_padding_mask)
    if self.norm is not None:
        output = self.norm(output)
    return output


def _decoder(self: nn.TransformerDecoder, tgt: Tensor, memory: Tensor, tgt_mask: Any = None,
             memory_mask: Any = None, tgt_key_padding_mask: Any = None,
             memory_key_padding_mask: Any = None, tgt_is_causal: bool | None = None,
             memory_is_causal: bool = False) -> Tensor:
    """``nn.TransformerDecoder.forward`` without its causal-mask detection on ``tgt``."""
    output = tgt
    for mod in self.layers:
        output = mod(output, memory, tgt_mask=tgt_mask, memory_mask=memory_mask,
                     tgt_key_padding_mask=tgt_key_padding_mask,
                     memory_key_padding_mask=memory_key_padding_mask,
                     tgt_is_causal=bool(tgt_is_causal), memory_is_causal=memory_is_causal)
    if self.norm is not None:
        output = self.norm(output)
    return output


def _transformer(self: nn.Transformer, src: Tensor, tgt: Tensor, src_mask: Any = None,
                 tgt_mask: Any = None, memory_mask: Any = None,
                 src_key_padding_mask: Any = None, tgt_key_padding_mask: Any = None,
                 memory_key_padding_mask: Any = None, src_is_causal: bool | None = None,
                 tgt_is_causal: bool | None = None, memory_is_causal: bool = False) -> Tensor:
    """``nn.Transformer.forward`` without its size checks (shape propagation runs the layers on
    the real sizes, so a mismatch still fails there)."""
    memory = self.encoder(src, mask=src_mask, src_key_padding_mask=src_key_padding_mask,
                          is_causal=src_is_causal)
    return self.decoder(tgt, memory, tgt_mask=tgt_mask, memory_mask=memory_mask,
                        tgt_key_padding_mask=tgt_key_padding_mask,
                        memory_key_padding_mask=memory_key_padding_mask,
                        tgt_is_causal=tgt_is_causal, memory_is_causal=memory_is_causal)


_REFERENCE: dict[Callable[..., Any], Callable[..., Any]] = {
    nn.TransformerEncoderLayer.forward: _encoder_layer,
    nn.TransformerEncoder.forward: _encoder,
    nn.TransformerDecoder.forward: _decoder,
    nn.Transformer.forward: _transformer,
}

ROOT_DEFAULTS: dict[type[nn.Module], dict[str, Any]] = {
    nn.TransformerEncoderLayer: {"src_mask": None, "src_key_padding_mask": None,
                                 "is_causal": False},
    nn.TransformerEncoder: {"mask": None, "src_key_padding_mask": None, "is_causal": None},
}
"""Concrete arguments of a traced root whose forward takes masks beside the one input
`workloads.extract` feeds: the defaults torch's signature gives them (so they are Python values,
not Proxies, in the reference path); the caller's ``concrete_args`` take precedence."""

TORCH_TRANSFORMERS = (nn.TransformerEncoderLayer, nn.TransformerEncoder,
                      nn.TransformerDecoderLayer, nn.TransformerDecoder, nn.Transformer)
"""torch.nn's Transformer modules, named in the error when one of them still fails to trace."""


def reference_forward(m: nn.Module) -> Callable[..., Any] | None:
    """``m``'s reference-path forward, bound to ``m``, when ``m``'s forward is one of torch's
    Transformer forwards with fast-path checks; else None (trace ``m``'s own forward)."""
    ref = _REFERENCE.get(type(m).forward)
    return None if ref is None else ref.__get__(m)


def traceable_root(model: nn.Module) -> tuple[nn.Module, dict[str, Any]]:
    """``model`` as a root torch.fx can trace, and the concrete arguments it needs.

    A root whose forward has fast-path checks is traced as a shallow copy (the same submodules,
    parameters and attributes) of a subclass whose ``forward`` is the reference path; fx reads
    the root's forward from its class, so the copy is what fx sees. ``model`` is not changed.
    """
    ref = _REFERENCE.get(type(model).forward)
    if ref is None:
        return model, {}
    cls = type(model)
    traced = type(cls.__name__, (cls,), {"forward": ref, "__module__": cls.__module__})
    clone = copy.copy(model)
    clone.__class__ = traced
    defaults = next((d for t, d in ROOT_DEFAULTS.items() if isinstance(model, t)), {})
    return clone, dict(defaults)
