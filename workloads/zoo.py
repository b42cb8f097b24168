"""Model zoo: plain PyTorch definitions of the networks the papers evaluate.

torchvision is not available here, so every network is written out. Each builder takes
``num_classes`` and a ``width`` multiplier. ``width`` is WRPN's widening (Mishra et al., ICLR 2018):
every layer's channel count is multiplied by ``width`` except the first layer's input (the image)
and the last layer's output (the classes), so the middle layers cost ``width**2`` times the MACs.

Conventions the rest of qdse relies on (docs/CONTRACTS.md):

* every ReLU is its own ``nn.ReLU`` module, so a quantizer can replace each one by name
  (PACT's clipping parameter is per layer);
* ResNet projection shortcuts live at ``<block>.shortcut = nn.Sequential(conv, bn)``, so the conv
  is addressable as ``<block>.shortcut.0``;
* the first Conv2d/Linear in ``model.modules()`` order is the first layer, the last one is the
  classifier.

MACs at the default input (batch 1, checked in tests/workloads/test_zoo.py against hooks and the
published numbers):

============  ===========  =========================================================
model         MACs         source of the published number
============  ===========  =========================================================
alexnet       0.724 G      Krizhevsky et al. 2012 (two-tower grouping), ~0.72 G;
                           grouped=False 1.14 G (= SCALE-Sim), variant="tensorpack" 0.794 G
resnet18      1.82 G       He et al. 2016b Table 1 (1.8e9 FLOPs, i.e. multiply-adds)
resnet34      3.66 G       He et al. 2016b Table 1 (3.6e9)
resnet50      4.09 G       stride in the 3x3 (see `resnet50`); 3.86 G with stride_in_1x1
resnet20..56  41-126 M     He et al. 2016b Sec. 4.2 (0.27M-0.85M params); 6n+2 layers
vgg_small     0.608 G      computed (LQ-Nets/LLSQ VGG-Small, see `vgg_small`)
mobilenet_v2  0.301 G      Sandler et al. 2018 Table 4 (300 M multiply-adds)
digits_cnn    0.60 M       computed (small CNN for 8x8 scikit-learn digits)
============  ===========  =========================================================
"""

from __future__ import annotations

from collections.abc import Callable

from torch import Tensor, nn

__all__ = [
    "alexnet",
    "digits_cnn",
    "get",
    "input_shape",
    "mobilenet_v2",
    "names",
    "resnet18",
    "resnet20",
    "resnet32",
    "resnet34",
    "resnet44",
    "resnet50",
    "resnet56",
    "vgg_small",
]


def _ch(channels: int, width: float, multiple: int = 1) -> int:
    """Channels after WRPN widening, rounded to a positive multiple of ``multiple``."""
    return max(multiple, round(channels * width / multiple) * multiple)


def _check(num_classes: int, width: float) -> None:
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes={num_classes!r} is invalid; expected an integer >= 1")
    if isinstance(width, bool) or not isinstance(width, int | float) or not width > 0:
        raise ValueError(f"width={width!r} is invalid; expected a number > 0 (WRPN uses 2 or 3)")


def _conv_bn_relu(c_in: int, c_out: int, kernel: int, stride: int = 1, padding: int = 0,
                  groups: int = 1) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, kernel, stride, padding, groups=groups, bias=False),
            nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]


# -- AlexNet -------------------------------------------------------------------------------------
class AlexNet(nn.Module):
    """AlexNet (Krizhevsky et al. 2012) as used by PACT-SAWB (Appendix A): LRN replaced by BN.

    PACT-SAWB Appendix A: "AlexNet network ... in which local contrast renormalization (R-Norm)
    layer is replaced with BatchNorm layer", and Sec. 4: "ReLU following BatchNorm is used for
    activation function of the CONV and FC layers except the last FC". We keep the original
    96-256-384-384-256 channels and the two-tower grouping (groups=2 in conv2, conv4, conv5), which
    Tensorpack's AlexNet (the framework PACT-SAWB was built on) keeps too; 224x224 input with
    padding 2 in conv1 gives the original 55x55 maps. MACs: 0.724 G (published ~0.72 G).
    ``grouped=False`` drops the two-tower split (1.14 G), the single-tower variant SCALE-Sim's
    AlexNet topology uses (tests compare it layer by layer with shared/reference/scalesim).

    ``variant="tensorpack"`` is the geometry of Tensorpack's DoReFa-Net AlexNet
    (examples/DoReFa-Net/alexnet-dorefa.py): conv0 12x12/4 VALID (54x54), SAME max-pools, so
    conv3-5 run at 14x14; 0.794 GMACs. PACT-SAWB's Appendix A training recipe (Adam, lr 1e-4,
    eps 1e-5, x0.2 at epochs 56 and 64, weight decay 5e-6, batch 128, 100 epochs) is exactly that
    script's, which suggests it is the network PACT-SAWB trained; the paper itself only cites
    Krizhevsky et al., so the default stays the original geometry.
    """

    def __init__(self, num_classes: int = 1000, width: float = 1, grouped: bool = True,
                 variant: str = "krizhevsky") -> None:
        super().__init__()
        if variant not in ("krizhevsky", "tensorpack"):
            raise ValueError(f"variant={variant!r} is invalid; expected 'krizhevsky' or "
                             "'tensorpack'")
        g = 2 if grouped else 1
        c1, c2, c3, c4, c5 = (_ch(c, width, g) for c in (96, 256, 384, 384, 256))
        fc = _ch(4096, width)
        if variant == "krizhevsky":     # 11x11/4 pad 2: 224 -> 55 -> 27 -> 13 -> 6
            stem, pool_a, pool_b = _conv_bn_relu(3, c1, 11, 4, 2), nn.MaxPool2d(3, 2), \
                nn.MaxPool2d(3, 2)
        else:                           # 12x12/4 VALID: 224 -> 54, SAME pools -> 27 -> 14 -> 6
            stem, pool_a, pool_b = _conv_bn_relu(3, c1, 12, 4, 0), nn.MaxPool2d(3, 2, 1), \
                nn.MaxPool2d(3, 2, 1)
        self.features = nn.Sequential(
            *stem, pool_a,                                                   # 0-3
            *_conv_bn_relu(c1, c2, 5, 1, 2, groups=g), pool_b,               # 4-7
            *_conv_bn_relu(c2, c3, 3, 1, 1),                                 # 8-10
            *_conv_bn_relu(c3, c4, 3, 1, 1, groups=g),                       # 11-13
            *_conv_bn_relu(c4, c5, 3, 1, 1, groups=g), nn.MaxPool2d(3, 2),  # 14-17: -> 6x6
        )
        self.flatten = nn.Flatten()
        self.classifier = nn.Sequential(
            nn.Dropout(0.5), nn.Linear(c5 * 6 * 6, fc, bias=False), nn.BatchNorm1d(fc),
            nn.ReLU(inplace=True),
            nn.Dropout(0.5), nn.Linear(fc, fc, bias=False), nn.BatchNorm1d(fc),
            nn.ReLU(inplace=True),
            nn.Linear(fc, num_classes),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.flatten(self.features(x)))


def alexnet(num_classes: int = 1000, width: float = 1, grouped: bool = True,
            variant: str = "krizhevsky") -> nn.Module:
    """AlexNet with BN instead of LRN (PACT-SAWB Appendix A); input 3x224x224.

    ``grouped=True`` keeps Krizhevsky's groups=2 in conv2/4/5 (0.724 GMACs); False: 1.14 GMACs.
    ``variant="tensorpack"``: Tensorpack's DoReFa-Net geometry (0.794 GMACs), see `AlexNet`.
    """
    _check(num_classes, width)
    return AlexNet(num_classes, width, grouped, variant)


# -- pre-activation ResNets (He et al. 2016a, "Identity Mappings in Deep Residual Networks") -------
def _shortcut(c_in: int, c_out: int, stride: int) -> nn.Sequential | None:
    """1x1 projection (He et al. 2016b option B) when the shape changes, else identity (None)."""
    if stride == 1 and c_in == c_out:
        return None
    return nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))


class PreActBasicBlock(nn.Module):
    """BN-ReLU-conv3x3-BN-ReLU-conv3x3 + shortcut (He et al. 2016a Fig. 4e, "full pre-activation").

    The projection shortcut reads the pre-activated input, as in the paper's reference code.
    """

    expansion = 1

    def __init__(self, c_in: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        c_out = planes * self.expansion
        self.bn1 = nn.BatchNorm2d(c_in)
        self.relu1 = nn.ReLU(inplace=False)
        self.conv1 = nn.Conv2d(c_in, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu2 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, c_out, 3, 1, 1, bias=False)
        self.shortcut = _shortcut(c_in, c_out, stride)

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu1(self.bn1(x))
        short = self.shortcut(out) if self.shortcut is not None else x
        out = self.conv1(out)
        out = self.conv2(self.relu2(self.bn2(out)))
        return out + short


class PreActBottleneck(nn.Module):
    """BN-ReLU-conv1x1-BN-ReLU-conv3x3-BN-ReLU-conv1x1(x4) + shortcut (He et al. 2016a).

    ``stride_in_1x1=False`` (default) puts the stride in the 3x3 conv, as the pre-activation
    reference code (fb.resnet.torch lineage) and Tensorpack's ResNets do; ``True`` puts it in the
    first 1x1 as the original Caffe ResNet-50 (He et al. 2016b, 3.8e9 FLOPs).
    """

    expansion = 4

    def __init__(self, c_in: int, planes: int, stride: int = 1,
                 stride_in_1x1: bool = False) -> None:
        super().__init__()
        c_out = planes * self.expansion
        s1, s3 = (stride, 1) if stride_in_1x1 else (1, stride)
        self.bn1 = nn.BatchNorm2d(c_in)
        self.relu1 = nn.ReLU(inplace=False)
        self.conv1 = nn.Conv2d(c_in, planes, 1, s1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu2 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, s3, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes)
        self.relu3 = nn.ReLU(inplace=True)
        self.conv3 = nn.Conv2d(planes, c_out, 1, 1, bias=False)
        self.shortcut = _shortcut(c_in, c_out, stride)

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu1(self.bn1(x))
        short = self.shortcut(out) if self.shortcut is not None else x
        out = self.conv1(out)
        out = self.conv2(self.relu2(self.bn2(out)))
        out = self.conv3(self.relu3(self.bn3(out)))
        return out + short


class PreActResNet(nn.Module):
    """ImageNet pre-activation ResNet: conv7x7/2-BN-ReLU-maxpool, 4 stages, BN-ReLU-avgpool-fc.

    PACT-SAWB Appendix A: "full pre-activation ResNet structure (He et al., 2016a) is employed".
    Stage widths 64-128-256-512 (x expansion), strides 1-2-2-2, times ``width`` (WRPN).
    """

    def __init__(self, block: type[PreActBasicBlock] | type[PreActBottleneck],
                 depths: tuple[int, int, int, int], num_classes: int = 1000, width: float = 1,
                 **block_kw: bool) -> None:
        super().__init__()
        c = _ch(64, width)
        self.conv1 = nn.Conv2d(3, c, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(c)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        stages = []
        for i, (planes, depth) in enumerate(zip((64, 128, 256, 512), depths)):
            p = _ch(planes, width)
            blocks = []
            for j in range(depth):
                stride = 2 if (i > 0 and j == 0) else 1
                blocks.append(block(c, p, stride, **block_kw))
                c = p * block.expansion
            stages.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.bn = nn.BatchNorm2d(c)       # final pre-activation BN-ReLU (He et al. 2016a)
        self.relu_final = nn.ReLU(inplace=True)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(c, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        x = self.avgpool(self.relu_final(self.bn(x)))
        return self.fc(self.flatten(x))


def resnet18(num_classes: int = 1000, width: float = 1) -> nn.Module:
    """Pre-activation ResNet-18 (basic blocks 2-2-2-2), 1.82 GMACs at 224x224."""
    _check(num_classes, width)
    return PreActResNet(PreActBasicBlock, (2, 2, 2, 2), num_classes, width)


def resnet34(num_classes: int = 1000, width: float = 1) -> nn.Module:
    """Pre-activation ResNet-34 (basic blocks 3-4-6-3), 3.66 GMACs at 224x224."""
    _check(num_classes, width)
    return PreActResNet(PreActBasicBlock, (3, 4, 6, 3), num_classes, width)


def resnet50(num_classes: int = 1000, width: float = 1, stride_in_1x1: bool = False) -> nn.Module:
    """Pre-activation ResNet-50 (bottlenecks 3-4-6-3).

    The downsampling stride of a bottleneck sits in its 3x3 conv (4.09 GMACs at 224x224): that is
    where the pre-activation reference code of He et al. 2016a (built on fb.resnet.torch) and
    Tensorpack (PACT-SAWB's framework, Sec. 6) put it. ``stride_in_1x1=True`` gives the original
    Caffe placement (first 1x1 strided, 3.86 GMACs, the "3.8e9 FLOPs" of He et al. 2016b).
    """
    _check(num_classes, width)
    return PreActResNet(PreActBottleneck, (3, 4, 6, 3), num_classes, width,
                        stride_in_1x1=stride_in_1x1)


class CifarPreActResNet(nn.Module):
    """CIFAR pre-activation ResNet with 6n+2 layers (He et al. 2016b Sec. 4.2, 2016a).

    conv3x3(16) then three stages of n basic blocks with 16-32-64 channels (strides 1-2-2), final
    BN-ReLU, global average pool, fc. PACT-SAWB Appendix A: "a CONV layer followed by 3 ResNet
    blocks ... and a final FC layer"; Sec. 5 quantizes "the 1x1 convolution in shortcut
    connections", so downsampling shortcuts are 1x1 projections (option B).
    """

    def __init__(self, n: int, num_classes: int = 10, width: float = 1) -> None:
        super().__init__()
        c = _ch(16, width)
        self.conv1 = nn.Conv2d(3, c, 3, 1, 1, bias=False)
        stages = []
        for i, planes in enumerate((16, 32, 64)):
            p = _ch(planes, width)
            blocks = []
            for j in range(n):
                blocks.append(PreActBasicBlock(c, p, 2 if (i > 0 and j == 0) else 1))
                c = p
            stages.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3 = stages
        self.bn = nn.BatchNorm2d(c)
        self.relu_final = nn.ReLU(inplace=True)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(c, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        x = self.layer3(self.layer2(self.layer1(self.conv1(x))))
        x = self.avgpool(self.relu_final(self.bn(x)))
        return self.fc(self.flatten(x))


def _cifar_resnet(depth: int) -> Callable[..., nn.Module]:
    n = (depth - 2) // 6

    def build(num_classes: int = 10, width: float = 1) -> nn.Module:
        _check(num_classes, width)
        return CifarPreActResNet(n, num_classes, width)

    build.__name__ = f"resnet{depth}"
    build.__doc__ = (f"CIFAR pre-activation ResNet-{depth} ({n} basic blocks per stage), "
                     "input 3x32x32.")
    return build


resnet20 = _cifar_resnet(20)
resnet32 = _cifar_resnet(32)
resnet44 = _cifar_resnet(44)
resnet56 = _cifar_resnet(56)


# -- VGG-Small (LLSQ Sec. 4.1; Zhang et al. 2018 LQ-Nets) ----------------------------------------
class VGGSmall(nn.Module):
    """VGG-Small: "six Conv layers, three MaxPool layers, and one FC layer" (LLSQ Sec. 4.1).

    Channels 128-128-M-256-256-M-512-512-M as in LQ-Nets (Zhang et al. 2018a), 3x3 convs with BN and
    ReLU, FC 512*4*4 -> classes. MACs at 32x32: 3*128*9*1024 + 128*128*9*1024 + 128*256*9*256
    + 256*256*9*256 + 256*512*9*64 + 512*512*9*64 + 8192*10 = 607,600,640 (0.608 G).
    """

    def __init__(self, num_classes: int = 10, width: float = 1) -> None:
        super().__init__()
        c = [_ch(x, width) for x in (128, 128, 256, 256, 512, 512)]
        layers: list[nn.Module] = []
        c_in = 3
        for i, c_out in enumerate(c):
            layers += _conv_bn_relu(c_in, c_out, 3, 1, 1)
            if i % 2 == 1:
                layers.append(nn.MaxPool2d(2, 2))
            c_in = c_out
        self.features = nn.Sequential(*layers)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(c_in * 4 * 4, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.flatten(self.features(x)))


def vgg_small(num_classes: int = 10, width: float = 1) -> nn.Module:
    """VGG-Small for CIFAR-10 (LLSQ Sec. 4.1), 0.608 GMACs at 32x32."""
    _check(num_classes, width)
    return VGGSmall(num_classes, width)


# -- MobileNetV2 (Sandler et al. 2018) ---------------------------------------------------------
class InvertedResidual(nn.Module):
    """1x1 expand (t) - 3x3 depthwise (stride) - 1x1 linear projection, + x when shapes match."""

    def __init__(self, c_in: int, c_out: int, stride: int, expand: int) -> None:
        super().__init__()
        hidden = c_in * expand
        layers: list[nn.Module] = []
        if expand != 1:
            layers += [nn.Conv2d(c_in, hidden, 1, bias=False), nn.BatchNorm2d(hidden),
                       nn.ReLU6(inplace=True)]
        layers += [nn.Conv2d(hidden, hidden, 3, stride, 1, groups=hidden, bias=False),
                   nn.BatchNorm2d(hidden), nn.ReLU6(inplace=True),
                   nn.Conv2d(hidden, c_out, 1, bias=False), nn.BatchNorm2d(c_out)]
        self.conv = nn.Sequential(*layers)
        self.use_residual = stride == 1 and c_in == c_out

    def forward(self, x: Tensor) -> Tensor:
        if self.use_residual:
            return x + self.conv(x)
        return self.conv(x)


class MobileNetV2(nn.Module):
    """MobileNetV2 (Sandler et al. 2018, Table 2: t, c, n, s per bottleneck sequence)."""

    SETTINGS = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
                (6, 160, 3, 2), (6, 320, 1, 1))

    def __init__(self, num_classes: int = 1000, width: float = 1) -> None:
        super().__init__()
        c = _ch(32, width)
        layers: list[nn.Module] = [nn.Sequential(*_conv_bn_relu6(3, c, 3, 2, 1))]
        for t, ch, n, s in self.SETTINGS:
            c_out = _ch(ch, width)
            for i in range(n):
                layers.append(InvertedResidual(c, c_out, s if i == 0 else 1, t))
                c = c_out
        last = _ch(1280, width)
        layers.append(nn.Sequential(*_conv_bn_relu6(c, last, 1)))
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(last, num_classes))

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.flatten(self.avgpool(self.features(x))))


def _conv_bn_relu6(c_in: int, c_out: int, kernel: int, stride: int = 1,
                   padding: int = 0) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, kernel, stride, padding, bias=False), nn.BatchNorm2d(c_out),
            nn.ReLU6(inplace=True)]


def mobilenet_v2(num_classes: int = 1000, width: float = 1) -> nn.Module:
    """MobileNetV2 1.0 at 224x224: 0.301 GMACs (Sandler et al. 2018 Table 4: 300 M)."""
    _check(num_classes, width)
    return MobileNetV2(num_classes, width)


# -- digits ---------------------------------------------------------------------------------------
class DigitsCNN(nn.Module):
    """Small CNN for scikit-learn's 8x8x1 digits: 3x(conv3x3-BN-ReLU), two 2x2 max-pools, fc.

    8x8 -> conv(16) -> conv(32) -> pool 4x4 -> conv(64) -> pool 2x2 -> fc(256 -> classes).
    """

    def __init__(self, num_classes: int = 10, width: float = 1) -> None:
        super().__init__()
        c1, c2, c3 = (_ch(c, width) for c in (16, 32, 64))
        self.features = nn.Sequential(
            *_conv_bn_relu(1, c1, 3, 1, 1), *_conv_bn_relu(c1, c2, 3, 1, 1), nn.MaxPool2d(2),
            *_conv_bn_relu(c2, c3, 3, 1, 1), nn.MaxPool2d(2))
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(c3 * 2 * 2, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.flatten(self.features(x)))


def digits_cnn(num_classes: int = 10, width: float = 1) -> nn.Module:
    """Small CNN for 8x8 scikit-learn digits (1x8x8 input, 10 classes)."""
    _check(num_classes, width)
    return DigitsCNN(num_classes, width)


# -- registry -------------------------------------------------------------------------------------
_IMAGENET = (3, 224, 224)
_CIFAR = (3, 32, 32)
_REGISTRY: dict[str, tuple[Callable[..., nn.Module], tuple[int, int, int], int]] = {
    "alexnet": (alexnet, _IMAGENET, 1000),
    "resnet18": (resnet18, _IMAGENET, 1000),
    "resnet34": (resnet34, _IMAGENET, 1000),
    "resnet50": (resnet50, _IMAGENET, 1000),
    "resnet20": (resnet20, _CIFAR, 10),
    "resnet32": (resnet32, _CIFAR, 10),
    "resnet44": (resnet44, _CIFAR, 10),
    "resnet56": (resnet56, _CIFAR, 10),
    "vgg_small": (vgg_small, _CIFAR, 10),
    "mobilenet_v2": (mobilenet_v2, _IMAGENET, 1000),
    "digits_cnn": (digits_cnn, (1, 8, 8), 10),
}


def names() -> list[str]:
    """Names accepted by `get`, in registry order."""
    return list(_REGISTRY)


def _entry(name: str) -> tuple[Callable[..., nn.Module], tuple[int, int, int], int]:
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown model {name!r}; available: {', '.join(_REGISTRY)}") from None


def get(name: str, num_classes: int | None = None, width: float = 1,
        **options: bool | str) -> nn.Module:
    """Build zoo model ``name``.

    ``num_classes=None`` takes the model's native dataset: 1000 for the ImageNet models, 10 for
    the CIFAR and digits models. ``width`` is the WRPN channel multiplier. ``options`` go to the
    builder: ``alexnet(grouped=...)``, ``resnet50(stride_in_1x1=...)``.
    """
    builder, _, default_classes = _entry(name)
    try:
        return builder(num_classes=default_classes if num_classes is None else num_classes,
                       width=width, **options)
    except TypeError as e:
        if options and "unexpected keyword" in str(e):
            raise ValueError(f"model {name!r} takes no option(s) {sorted(options)}") from None
        raise


def input_shape(name: str) -> tuple[int, int, int]:
    """Default (C, H, W) input of zoo model ``name``."""
    return _entry(name)[1]


def default_num_classes(name: str) -> int:
    """Number of classes of the dataset ``name`` was designed for."""
    return _entry(name)[2]
