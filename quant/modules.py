"""Quantized layers with separate weight and input quantizer slots (Brevitas style).

``QuantConv1d`` / ``QuantConv2d`` / ``QuantConvTranspose1d`` / ``QuantConvTranspose2d`` /
``QuantLinear`` subclass the torch layer of the same name and implement the bits protocol of
docs/CONTRACTS.md: ``weight_bits`` is the bit width of the weights and ``act_bits`` the bit width of
the layer's INPUT activations (``None`` = not quantized by this layer; a graph extractor then uses
its default or the bits of the upstream ``QuantAct``). ``QuantAct`` replaces an activation function
(ReLU, ReLU6) by an activation quantizer and quantizes its OUTPUT to ``act_bits``. Graph tracers
treat all of them as leaves.
"""

from __future__ import annotations

from typing import Any, ClassVar, Self

import torch
from torch import Tensor, nn

from quant.methods.base import Quantizer

__all__ = ["QuantAct", "QuantConv1d", "QuantConv2d", "QuantConvTranspose1d", "QuantConvTranspose2d",
           "QuantLinear", "QuantModule", "is_quant_module"]


def _check_slot(name: str, q: object) -> Quantizer | None:
    if q is not None and not isinstance(q, Quantizer):
        raise ValueError(f"{name} must be a quant.methods.base.Quantizer or None, got {type(q)!r}")
    return q


class QuantModule:
    """Marker base of every layer this package builds (:func:`is_quant_module`)."""


class _QuantWeightLayer(QuantModule):
    """Shared slot handling for QuantConv1d/2d and QuantLinear (mixed in before the torch class)."""

    weight_quantizer: Quantizer | None
    input_quantizer: Quantizer | None

    @property
    def weight_bits(self) -> int | None:
        """Bits of the weights, or None if the weights are not quantized."""
        q = self.weight_quantizer
        return None if q is None else int(q.bits)

    @property
    def act_bits(self) -> int | None:
        """Bits of the INPUT activations quantized by this layer, or None."""
        q = self.input_quantizer
        return None if q is None else int(q.bits)

    def _set_quantizers(self, wq: Quantizer | None, iq: Quantizer | None, weight: Tensor) -> None:
        self.weight_quantizer = _check_slot("weight_quantizer", wq)
        self.input_quantizer = _check_slot("input_quantizer", iq)
        if weight.device.type != "meta":  # quantizer parameters live where the layer lives
            for q in (wq, iq):
                if q is not None:
                    q.to(weight.device)
        if wq is not None:
            # Weight quantizers see their tensor once at build time (LSQ init 2<|w|>/sqrt(Qp),
            # QN k-means); activation quantizers wait for quant.hooks.calibrate.
            wq.calibrate(weight.detach())

    def quantized_weight(self) -> Tensor:
        """The fake-quantized weight used in the forward pass."""
        w: Tensor = self.weight  # type: ignore[attr-defined]
        q = self.weight_quantizer
        return w if q is None or not q.enabled else q(w)


class _QuantConvNd(_QuantWeightLayer):
    """Shared build and forward of QuantConv1d / QuantConv2d (mixed in before the torch class).

    Every weight quantizer acts on the whole weight tensor (per tensor) or per slice of dim 0
    (CReLU's per-filter alpha, XNOR-Net's alpha of one output channel): the papers' formulas
    (PACT-SAWB Eq. 6-7, LSQ Eq. 1-5, LLSQ Eq. 1-2, DoReFa, WRPN, QN) never read the kernel's
    spatial rank, so a Conv1d weight (out, in/groups, k) is quantized exactly as a Conv2d
    weight (out, in/groups, 1, k) holding the same values. Transposed convs store their weight
    as (in, out/groups, k...): :class:`_QuantConvTransposeNd` hands their quantizers another
    view (``_quantizer_view``) and adds ``output_padding`` (``_geometry``).
    """

    _float_cls: ClassVar[type[nn.modules.conv._ConvNd]]

    def __init__(
        self,
        *args: Any,
        weight_quantizer: Quantizer | None = None,
        input_quantizer: Quantizer | None = None,
        **kwargs: Any,
    ) -> None:
        self._float_cls.__init__(self, *args, **kwargs)  # type: ignore[arg-type]
        self._set_quantizers(weight_quantizer, input_quantizer, self._quantizer_view())

    def _quantizer_view(self) -> Tensor:
        """The weight as its quantizer sees it (output channels on dim 0)."""
        return self.weight  # type: ignore[attr-defined, no-any-return]

    @classmethod
    def _geometry(cls, conv: nn.Module) -> dict[str, Any]:
        """Constructor arguments of the layer type beyond those every conv takes."""
        return {}

    @classmethod
    def from_float(
        cls,
        conv: nn.Module,
        weight_quantizer: Quantizer | None = None,
        input_quantizer: Quantizer | None = None,
    ) -> Self:
        """Build from a float conv of the matching rank. Parameters are SHARED with ``conv``
        (as torch.ao does); :func:`quant.quantize` deep-copies the model first, so its input is
        never mutated."""
        base = cls._float_cls
        if not isinstance(conv, base):
            raise ValueError(f"conv must be an nn.{base.__name__}, got {type(conv)!r}")
        q = cls(
            conv.in_channels,
            conv.out_channels,
            conv.kernel_size,
            stride=conv.stride,
            padding=conv.padding,
            dilation=conv.dilation,
            groups=conv.groups,
            bias=conv.bias is not None,
            padding_mode=conv.padding_mode,
            device="meta",
            **cls._geometry(conv),
        )
        q.weight = conv.weight
        q.bias = conv.bias
        q._set_quantizers(weight_quantizer, input_quantizer, q._quantizer_view())
        q.train(conv.training)
        return q

    def forward(self, x: Tensor) -> Tensor:
        if self.input_quantizer is not None and self.input_quantizer.enabled:
            x = self.input_quantizer(x)
        out: Tensor = self._conv_forward(  # type: ignore[attr-defined]
            x, self.quantized_weight(), self.bias)  # type: ignore[attr-defined]
        return out


class QuantConv1d(_QuantConvNd, nn.Conv1d):
    """``nn.Conv1d`` whose weights and inputs pass through optional quantizers (temporal and
    audio nets); same quantizers and formulas as :class:`QuantConv2d`."""

    _float_cls = nn.Conv1d


class QuantConv2d(_QuantConvNd, nn.Conv2d):
    """``nn.Conv2d`` whose weights and inputs pass through optional quantizers."""

    _float_cls = nn.Conv2d


def forward_layout(w: Tensor, groups: int) -> Tensor:
    """A transposed conv's weight (in, out/groups, k...) as the weight of the forward conv that
    computes the same map (on the stride-dilated, padded input, kernel flipped), (out,
    in/groups, k...): the layer's output channels on dim 0, where every per-channel quantizer
    (CReLU's per-filter alpha) looks for them. The spatial flip is left out: no quantizer reads
    positions within a kernel."""
    cin, cout_g, *k = w.shape
    return (w.reshape(groups, cin // groups, cout_g, *k).transpose(1, 2)
            .reshape(groups * cout_g, cin // groups, *k))


def transposed_layout(w: Tensor, groups: int) -> Tensor:
    """The inverse of :func:`forward_layout`: (out, in/groups, k...) -> (in, out/groups, k...)."""
    cout, cin_g, *k = w.shape
    return (w.reshape(groups, cout // groups, cin_g, *k).transpose(1, 2)
            .reshape(groups * cin_g, cout // groups, *k))


class _QuantConvTransposeNd(_QuantConvNd):
    """Shared build and forward of QuantConvTranspose1d / 2d (decoders, U-Nets, GAN generators).

    The weight quantizer sees the weight in the layout of the forward conv that computes the same
    map (:func:`forward_layout`): per-tensor formulas give the values they give on any layout, and
    a per-output-channel one (CReLU) scales each of the layer's output channels, not its inputs
    (the stored dim 0).
    """

    def _quantizer_view(self) -> Tensor:
        return forward_layout(self.weight, self.groups)  # type: ignore[attr-defined]

    @classmethod
    def _geometry(cls, conv: nn.Module) -> dict[str, Any]:
        return {"output_padding": conv.output_padding}

    def quantized_weight(self) -> Tensor:
        q = self.weight_quantizer
        if q is None or not q.enabled:
            return self.weight  # type: ignore[attr-defined, no-any-return]
        return transposed_layout(q(self._quantizer_view()), self.groups)  # type: ignore[attr-defined]

    def forward(self, x: Tensor, output_size: list[int] | None = None) -> Tensor:
        if self.input_quantizer is not None and self.input_quantizer.enabled:
            x = self.input_quantizer(x)
        dims = len(self.kernel_size)  # type: ignore[attr-defined]
        output_padding = self._output_padding(  # type: ignore[attr-defined]
            x, output_size, self.stride, self.padding, self.kernel_size,  # type: ignore[attr-defined]
            dims, self.dilation)  # type: ignore[attr-defined]
        fn = nn.functional.conv_transpose1d if dims == 1 else nn.functional.conv_transpose2d
        out: Tensor = fn(x, self.quantized_weight(), self.bias,  # type: ignore[attr-defined]
                         self.stride, self.padding, output_padding,  # type: ignore[attr-defined]
                         self.groups, self.dilation)  # type: ignore[attr-defined]
        return out


class QuantConvTranspose1d(_QuantConvTransposeNd, nn.ConvTranspose1d):
    """``nn.ConvTranspose1d`` whose weights and inputs pass through optional quantizers."""

    _float_cls = nn.ConvTranspose1d


class QuantConvTranspose2d(_QuantConvTransposeNd, nn.ConvTranspose2d):
    """``nn.ConvTranspose2d`` whose weights and inputs pass through optional quantizers."""

    _float_cls = nn.ConvTranspose2d


class QuantLinear(_QuantWeightLayer, nn.Linear):
    """``nn.Linear`` whose weights and inputs pass through optional quantizers."""

    def __init__(
        self,
        *args: Any,
        weight_quantizer: Quantizer | None = None,
        input_quantizer: Quantizer | None = None,
        **kwargs: Any,
    ) -> None:
        nn.Linear.__init__(self, *args, **kwargs)
        self._set_quantizers(weight_quantizer, input_quantizer, self.weight)

    @classmethod
    def from_float(
        cls,
        linear: nn.Linear,
        weight_quantizer: Quantizer | None = None,
        input_quantizer: Quantizer | None = None,
    ) -> QuantLinear:
        """Build from a float linear layer; parameters are shared (see QuantConv2d.from_float)."""
        if not isinstance(linear, nn.Linear):
            raise ValueError(f"linear must be an nn.Linear, got {type(linear)!r}")
        q = cls(
            linear.in_features,
            linear.out_features,
            bias=linear.bias is not None,
            device="meta",
        )
        q.weight = linear.weight
        q.bias = linear.bias
        q._set_quantizers(weight_quantizer, input_quantizer, q.weight)
        q.train(linear.training)
        return q

    def forward(self, x: Tensor) -> Tensor:
        if self.input_quantizer is not None and self.input_quantizer.enabled:
            x = self.input_quantizer(x)
        return nn.functional.linear(x, self.quantized_weight(), self.bias)


class QuantAct(QuantModule, nn.Module):
    """An activation quantizer standing in for an activation function.

    Args:
        quantizer: the activation quantizer; its output bits are this module's ``act_bits``.
        pre: an activation applied before the quantizer (kept when the quantizer does not
            itself clip at zero, e.g. LLSQ or QN activations); None when the quantizer replaces
            the activation (PACT, DoReFa, WRPN, CReLU clip the ReLU range themselves).
    """

    def __init__(self, quantizer: Quantizer, pre: nn.Module | None = None) -> None:
        super().__init__()
        if not isinstance(quantizer, Quantizer):
            raise ValueError(f"quantizer must be a Quantizer, got {type(quantizer)!r}")
        self.quantizer = quantizer
        self.pre = pre
        if pre is not None:
            p = next(pre.parameters(), None)
            if p is not None:
                quantizer.to(p.device)

    @property
    def act_bits(self) -> int:
        """Bits of this module's OUTPUT activations."""
        return int(self.quantizer.bits)

    def forward(self, x: Tensor) -> Tensor:
        if self.pre is not None:
            x = self.pre(x)
        if not self.quantizer.enabled:  # a phase before activation quantization starts
            return x if self.pre is not None else torch.relu(x)
        return self.quantizer(x)


def is_quant_module(m: nn.Module) -> bool:
    """True for the layer types this package builds (graph tracers keep them as leaves)."""
    return isinstance(m, QuantModule)
