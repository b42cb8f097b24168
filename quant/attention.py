"""Quantized multi-head attention: ``nn.MultiheadAttention`` with a weight and an input quantizer
slot on each of its four projections.

Attention runs four GEMMs with weights (Vaswani et al. 2017, Sec. 3.2.2): the query, key and value
projections and the output projection. ``nn.MultiheadAttention`` keeps the first three in one bare
``in_proj_weight`` (or three ``*_proj_weight`` when ``kdim``/``vdim`` differ) and reads
``out_proj.weight`` directly, so swapping Linear layers quantizes none of them. Here each
projection is a layer of its own, as in the workload graph (`workloads.composite`: ``q_proj``,
``k_proj``, ``v_proj``, ``out_proj``): its weight quantizer sees that projection's (E, in) block,
and an input quantizer, for input-site recipes, that projection's input - the query, key and
value tensors, and the attention context the output projection reads. The two activation
products (Q K^T and P V) read the projections' outputs, for which none of the five papers defines
a quantizer: they stay full precision.

The forward pass is torch's own (``F.multi_head_attention_forward``: masks, dropout,
``add_bias_kv``, ``add_zero_attn``, ``need_weights``, ``is_causal``) with the quantized q/k/v
weights passed as separate projection weights and an identity output projection, after which
the context passes the output projection's input quantizer and the quantized output projection.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from quant.methods.base import Quantizer
from quant.modules import QuantModule, _check_slot

__all__ = ["PROJECTIONS", "QuantMultiheadAttention", "projection_weight"]

PROJECTIONS = ("q_proj", "k_proj", "v_proj", "out_proj")
"""The four projections, named as the workload graph names their ops (``<module>.q_proj``...)."""

_SHARED = ("in_proj_weight", "q_proj_weight", "k_proj_weight", "v_proj_weight", "in_proj_bias",
           "bias_k", "bias_v")


def projection_weight(mha: nn.MultiheadAttention, part: str) -> Tensor:
    """A view of the float (E, in) weight of projection ``part`` of ``mha``: a block of its
    ``in_proj_weight`` (or its ``*_proj_weight``), or ``out_proj.weight``."""
    if part not in PROJECTIONS:
        raise ValueError(f"part={part!r}; allowed: {list(PROJECTIONS)}")
    if part == "out_proj":
        return mha.out_proj.weight
    if mha._qkv_same_embed_dim:
        e, i = mha.embed_dim, PROJECTIONS.index(part)
        return mha.in_proj_weight[i * e:(i + 1) * e]
    weight: Tensor = getattr(mha, f"{part}_weight")
    return weight


def _slots(field: str, given: Mapping[str, Quantizer | None] | None) -> nn.ModuleDict:
    given = dict(given or {})
    bad = sorted(set(given) - set(PROJECTIONS))
    if bad:
        raise ValueError(f"{field} has keys {bad}; allowed: {list(PROJECTIONS)}")
    checked = {p: _check_slot(f"{field}[{p!r}]", q) for p, q in given.items()}
    return nn.ModuleDict({p: q for p, q in checked.items() if q is not None})


def _slot(slots: nn.ModuleDict, part: str) -> Quantizer | None:
    """The quantizer of projection ``part`` (ModuleDict has no ``get``)."""
    q = getattr(slots, part, None)
    return q if isinstance(q, Quantizer) else None


class QuantMultiheadAttention(QuantModule, nn.MultiheadAttention):
    """``nn.MultiheadAttention`` with ``weight_quantizers`` and ``input_quantizers``, each an
    ``nn.ModuleDict`` keyed by projection (`PROJECTIONS`; a missing key = not quantized).

    Bits protocol: ``projection_bits`` gives ``{projection: (weight_bits, act_bits)}``, which
    ``workloads.extract`` puts on the four projection ops; ``weight_bits``/``act_bits`` are the
    widest of them (None when no projection quantizes that tensor).
    """

    weight_quantizers: nn.ModuleDict
    input_quantizers: nn.ModuleDict

    @classmethod
    def from_float(cls, mha: nn.Module,
                   weight_quantizers: Mapping[str, Quantizer | None] | None = None,
                   input_quantizers: Mapping[str, Quantizer | None] | None = None,
                   ) -> QuantMultiheadAttention:
        """Build from a float ``nn.MultiheadAttention``; parameters (and the ``out_proj``
        module) are SHARED with it, as ``QuantConv2d.from_float`` shares them."""
        if not isinstance(mha, nn.MultiheadAttention):
            raise ValueError(f"mha must be an nn.MultiheadAttention, got {type(mha)!r}")
        q = cls(mha.embed_dim, mha.num_heads, dropout=mha.dropout,
                bias=mha.in_proj_bias is not None, add_bias_kv=mha.bias_k is not None,
                add_zero_attn=mha.add_zero_attn, kdim=mha.kdim, vdim=mha.vdim,
                batch_first=mha.batch_first, device="meta")
        for name in _SHARED:
            setattr(q, name, getattr(mha, name))
        q.out_proj = mha.out_proj
        q.weight_quantizers = _slots("weight_quantizers", weight_quantizers)
        q.input_quantizers = _slots("input_quantizers", input_quantizers)
        device = mha.out_proj.weight.device
        if device.type != "meta":
            q.weight_quantizers.to(device)
            q.input_quantizers.to(device)
        for part, wq in q.weight_quantizers.items():
            wq.calibrate(q.projection_weight(part).detach())  # as QuantConv2d: once, at build
        q.train(mha.training)
        return q

    # -- bits protocol ----------------------------------------------------------------------------
    @property
    def projection_bits(self) -> dict[str, tuple[int | None, int | None]]:
        """``{projection: (weight bits, input bits)}``; None where that tensor is not quantized."""
        def bits(slots: nn.ModuleDict, part: str) -> int | None:
            q = _slot(slots, part)
            return None if q is None else int(q.bits)
        return {p: (bits(self.weight_quantizers, p), bits(self.input_quantizers, p))
                for p in PROJECTIONS}

    @property
    def weight_bits(self) -> int | None:
        """The widest projection weight bits, or None if no weight is quantized."""
        found = [w for w, _ in self.projection_bits.values() if w is not None]
        return max(found) if found else None

    @property
    def act_bits(self) -> int | None:
        """The widest projection input bits, or None if no input is quantized."""
        found = [a for _, a in self.projection_bits.values() if a is not None]
        return max(found) if found else None

    # -- weights --------------------------------------------------------------------------------
    def projection_weight(self, part: str) -> Tensor:
        """The float (E, in) weight of projection ``part`` (a view: :func:`projection_weight`)."""
        return projection_weight(self, part)

    def quantized_weight(self, part: str) -> Tensor:
        """Projection ``part``'s weight as the forward pass uses it."""
        w = self.projection_weight(part)
        q = _slot(self.weight_quantizers, part)
        return w if q is None or not q.enabled else q(w)

    def _quantized_input(self, part: str, x: Tensor) -> Tensor:
        q = _slot(self.input_quantizers, part)
        return x if q is None or not q.enabled else q(x)

    # -- forward --------------------------------------------------------------------------------
    def forward(self, query: Tensor, key: Tensor, value: Tensor,  # type: ignore[override]
                key_padding_mask: Tensor | None = None, need_weights: bool = True,
                attn_mask: Tensor | None = None, average_attn_weights: bool = True,
                is_causal: bool = False) -> tuple[Tensor, Tensor | None]:
        """``nn.MultiheadAttention.forward`` with quantized projections (never torch's fused
        inference kernel, which would read the float weights)."""
        query = self._quantized_input("q_proj", query)
        key = self._quantized_input("k_proj", key)
        value = self._quantized_input("v_proj", value)
        batched = query.dim() == 3
        if self.batch_first and batched:
            query, key, value = (x.transpose(1, 0) for x in (query, key, value))
        key_padding_mask = F._canonical_mask(
            mask=key_padding_mask, mask_name="key_padding_mask",
            other_type=F._none_or_dtype(attn_mask), other_name="attn_mask",
            target_type=query.dtype)
        attn_mask = F._canonical_mask(mask=attn_mask, mask_name="attn_mask", other_type=None,
                                      other_name="", target_type=query.dtype, check_other=False)
        eye = torch.eye(self.embed_dim, dtype=query.dtype, device=query.device)
        context, weights = F.multi_head_attention_forward(
            query, key, value, self.embed_dim, self.num_heads, None, self.in_proj_bias,
            self.bias_k, self.bias_v, self.add_zero_attn, self.dropout, eye, None,
            training=self.training, key_padding_mask=key_padding_mask,
            need_weights=need_weights, attn_mask=attn_mask, use_separate_proj_weight=True,
            q_proj_weight=self.quantized_weight("q_proj"),
            k_proj_weight=self.quantized_weight("k_proj"),
            v_proj_weight=self.quantized_weight("v_proj"),
            average_attn_weights=average_attn_weights, is_causal=is_causal)
        out = F.linear(self._quantized_input("out_proj", context),
                       self.quantized_weight("out_proj"), self.out_proj.bias)
        if self.batch_first and batched:
            out = out.transpose(1, 0)
        return out, weights

    def extra_repr(self) -> str:
        return (f"embed_dim={self.embed_dim}, num_heads={self.num_heads}, "
                f"batch_first={self.batch_first}")

