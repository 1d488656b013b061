"""Backbones of the ECA-Net ablations with channel attention injected, and a model summary.

Wang et al., "ECA-Net", CVPR 2020 (arXiv 1910.03151), official code BangguWu/ECANet.

* ``resnet-18/34/50/101/152``: torchvision's ``ResNet`` with its own ``BasicBlock`` / ``Bottleneck``,
  subclassed to apply ``attn`` after the block's last BatchNorm and before the residual addition (the
  official ECA placement). With ``attention="none"`` the model *is* ``torchvision.models.resnetXX``.
* ``resnet-<6n+2>`` (``resnet-20/32/44/56/110`` listed; any other depth 6n+2 accepted, e.g.
  ``resnet-8``; ``cifar-resnet-<6n+2>`` for depths that clash with an ImageNet name, i.e. 50 and 152):
  the CIFAR ResNet of He et al. 2016 (Sec. 4.2) built from torchvision's ``BasicBlock``: 3x3 stem
  without max-pool, three stages of n blocks with ``width``, 2 ``width``, 4 ``width`` channels
  (``width`` = 16 by default), global average pooling, fc. Shortcuts are the paper's option A
  (parameter-free: stride-2 subsampling and zero-padded channels), so resnet-20 has 269,722
  parameters for 10 classes (the paper's "0.27M").
* ``mobilenet-v2``: torchvision's ``MobileNetV2`` with the attention appended to ``block.conv`` of every
  inverted residual block, after the projection BatchNorm (as the official ECA-MobileNetV2);
  ``width`` is torchvision's ``width_mult``.

Kernel sizes of the ECA family (``eca``, ``eca-ns``, ``ceca``) can be set per stage: ``k`` is an odd
int, ``"adaptive"`` (Eq. 12 from each stage's channel count, with ``gamma``, ``beta``, ``min_k``), one
k per stage as a list or a digit string like the official ``--ksize 3557``, or ``"official"`` (the
official repository's choice: its released ResNet checkpoints' per-stage k, and for MobileNetV2
``k = 1 if c < 96 else 3`` with c the setting's channel count). The model records what it got as
``model.kernel_sizes`` (one entry per stage, ``None`` without a kernel), next to ``model.backbone``
and ``model.attention``.

Example:
    >>> model = build_model("resnet-50", "eca", num_classes=1000, k=[3, 5, 5, 7])
    >>> model.kernel_sizes
    [3, 5, 5, 7]
    >>> summarize(model, (3, 32, 32))["attention_params"]
    80
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

import torch
import torch.nn.functional as F
import torchvision
from torch import Tensor, nn
from torch.utils.flop_counter import FlopCounterMode
from torchvision.models.mobilenetv2 import InvertedResidual
from torchvision.models.resnet import BasicBlock, Bottleneck, ResNet, conv3x3

from ecasweep.models import user
from ecasweep.models.attention import KERNEL_VARIANTS, create_attention, is_attention
from ecasweep.models.catalogue import OFFICIAL  # noqa: F401  (re-exported)
from ecasweep.models.shapes import (  # noqa: F401  (re-exported)
    BUILTIN_BACKBONES, CIFAR_WIDTH, IMAGENET_RESNETS, MOBILENET_V2_SETTINGS, backbone_names, backbone_shape,
    cifar_depth, cifar_width, is_builtin_backbone, mobilenet_width, stage_channels,
)
from ecasweep.errors import ConfigError

AttentionFactory = Callable[[int], nn.Module]  # stage index -> a fresh attention module


class AttentionBasicBlock(BasicBlock):
    """torchvision's ``BasicBlock`` with ``attn`` after ``bn2``, before the residual addition."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.attn: nn.Module = nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.attn(self.bn2(self.conv2(out)))
        out += x if self.downsample is None else self.downsample(x)
        return self.relu(out)


class AttentionBottleneck(Bottleneck):
    """torchvision's ``Bottleneck`` with ``attn`` after ``bn3``, before the residual addition."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.attn: nn.Module = nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.attn(self.bn3(self.conv3(out)))
        out += x if self.downsample is None else self.downsample(x)
        return self.relu(out)


class PadShortcut(nn.Module):
    """Option-A shortcut of He et al. 2016: subsample by ``stride``, append zero channels.

    Chosen over the 1x1-convolution shortcut (option B) because it is what the CIFAR experiments of
    the ResNet paper use, and it keeps resnet-20 at the paper's 0.27M parameters.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.stride, self.extra = stride, out_channels - in_channels

    def forward(self, x: Tensor) -> Tensor:
        return F.pad(x[:, :, ::self.stride, ::self.stride], (0, 0, 0, 0, 0, self.extra))

    def extra_repr(self) -> str:
        return f"stride={self.stride}, zero_channels={self.extra}"


class CifarResNet(nn.Module):
    """The CIFAR ResNet of He et al. 2016, Sec. 4.2: depth 6n+2, three stages of n basic blocks.

    Attribute names follow torchvision's ``ResNet`` (``conv1``, ``bn1``, ``layer1..3``, ``fc``).
    """

    def __init__(self, depth: int, block: type[BasicBlock] = BasicBlock, num_classes: int = 10,
                 in_channels: int = 3, width: int = 16) -> None:
        super().__init__()
        blocks = (depth - 2) // 6
        self.conv1 = conv3x3(in_channels, width)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.inplanes = width
        self.layer1 = self._make_layer(block, width, blocks, stride=1)
        self.layer2 = self._make_layer(block, 2 * width, blocks, stride=2)
        self.layer3 = self._make_layer(block, 4 * width, blocks, stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(4 * width, num_classes)
        for m in self.modules():  # torchvision's ResNet initialisation
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def _make_layer(self, block: type[BasicBlock], planes: int, blocks: int, stride: int) -> nn.Sequential:
        shortcut = None
        if stride != 1 or self.inplanes != planes:
            shortcut = PadShortcut(self.inplanes, planes, stride)
        layers = [block(self.inplanes, planes, stride, shortcut)]
        layers += [block(planes, planes) for _ in range(1, blocks)]
        self.inplanes = planes
        return nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def _attach_to_resnet(model: nn.Module, make_attention: AttentionFactory) -> None:
    for stage, layer in enumerate(_resnet_stages(model)):
        for block in layer:
            block.attn = make_attention(stage)


def _resnet_stages(model: nn.Module) -> list[nn.Sequential]:
    return [getattr(model, f"layer{i}") for i in range(1, 5) if hasattr(model, f"layer{i}")]


def _new_stem(conv: nn.Conv2d, in_channels: int) -> nn.Conv2d:
    """``conv`` with ``in_channels`` inputs, initialised as torchvision initialises its convolutions."""
    stem = nn.Conv2d(in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
                     bias=conv.bias is not None)
    nn.init.kaiming_normal_(stem.weight, mode="fan_out", nonlinearity="relu")
    return stem


@dataclass(frozen=True)
class Backbone:
    """A named backbone: call it like ``build_model`` without the name.

    ``stage_channels(width)`` lists the channel count the attention sees in each stage, and
    ``official_k`` the official repository's per-stage kernel sizes (None where it has none).
    """

    name: str
    _stage_channels: Callable[[Any], list[int]]
    _build: Callable[[AttentionFactory | None, int, int, Any], nn.Module]
    official_k: tuple[int, ...] | None = None

    def stage_channels(self, width: int | float | None = None) -> list[int]:
        return self._stage_channels(width)

    def __call__(self, attention: str = "none", num_classes: int = 10, in_channels: int = 3,
                 width: int | float | None = None, **attention_kwargs: Any) -> nn.Module:
        if isinstance(in_channels, bool) or not isinstance(in_channels, int) or in_channels < 1:
            raise ValueError(f"in_channels must be a positive integer, got {in_channels!r}")
        channels = self.stage_channels(width)
        stage_kwargs = _stage_kwargs(self, attention, attention_kwargs)
        # One module per stage up front: bad arguments fail before the model is built, and the
        # resolved kernel sizes are read off the modules themselves.
        prototypes = [create_attention(attention, c, **kw) for c, kw in zip(channels, stage_kwargs)]
        make = None if attention == "none" else (
            lambda stage: create_attention(attention, channels[stage], **stage_kwargs[stage]))
        model = self._build(make, num_classes, in_channels, width)
        model.backbone = self.name
        model.attention = attention
        model.kernel_sizes = [m.k for m in prototypes] if attention in KERNEL_VARIANTS else None
        return model


def _stage_kwargs(backbone: Backbone, attention: str, kwargs: dict[str, Any]) -> list[dict[str, Any]]:
    """``kwargs`` for each stage, with a per-stage ``k`` (list, digit string, "official") split up."""
    stages = len(backbone.stage_channels())
    k = kwargs.get("k")
    per_stage = isinstance(k, (list, tuple)) or k == OFFICIAL or (isinstance(k, str) and k.isdigit())
    if not per_stage:
        return [kwargs] * stages
    if attention not in KERNEL_VARIANTS:
        raise ValueError(f"k={k!r} sets one kernel size per stage, which only the ECA family "
                         f"({', '.join(sorted(KERNEL_VARIANTS))}) has, not {attention!r}")
    if k == OFFICIAL:
        if backbone.official_k is None:
            raise ValueError(f"k='official': the official ECA code has no kernel sizes for {backbone.name}")
        ks: Sequence[Any] = backbone.official_k
    else:
        ks = [int(d) for d in k] if isinstance(k, str) else k
    if len(ks) != stages:
        raise ValueError(f"k={k!r} must give one kernel size per stage: {backbone.name} has {stages} "
                         f"stages, got {len(ks)}")
    return [{**kwargs, "k": stage_k} for stage_k in ks]


# ImageNet ResNets -------------------------------------------------------------------------------

_IMAGENET_BLOCK = {1: BasicBlock, 4: Bottleneck}  # by the block's expansion (shapes.IMAGENET_RESNETS)
_ATTENTION_BLOCK = {BasicBlock: AttentionBasicBlock, Bottleneck: AttentionBottleneck}


def _imagenet_resnet(depth: int) -> Backbone:
    shape = backbone_shape(f"resnet-{depth}")
    expansion, layers, _ = IMAGENET_RESNETS[depth]
    block = _IMAGENET_BLOCK[expansion]

    def build(make: AttentionFactory | None, num_classes: int, in_channels: int, width: Any) -> nn.Module:
        if make is None:
            model = getattr(torchvision.models, f"resnet{depth}")(num_classes=num_classes)
        else:
            model = ResNet(_ATTENTION_BLOCK[block], list(layers), num_classes=num_classes)
            _attach_to_resnet(model, make)
        if in_channels != 3:
            model.conv1 = _new_stem(model.conv1, in_channels)
        return model

    return Backbone(shape.name, shape.stage_channels, build, shape.official_k)


# CIFAR ResNets ----------------------------------------------------------------------------------

def _cifar_resnet(name: str) -> Backbone:
    shape = backbone_shape(name)
    depth = cifar_depth(name)

    def build(make: AttentionFactory | None, num_classes: int, in_channels: int, width: Any) -> nn.Module:
        block = BasicBlock if make is None else AttentionBasicBlock
        model = CifarResNet(depth, block, num_classes, in_channels, cifar_width(width))
        if make is not None:
            _attach_to_resnet(model, make)
        return model

    return Backbone(shape.name, shape.stage_channels, build)


# MobileNetV2 ------------------------------------------------------------------------------------

def _mobilenet_v2() -> Backbone:
    shape = backbone_shape("mobilenet-v2")

    def build(make: AttentionFactory | None, num_classes: int, in_channels: int, width: Any) -> nn.Module:
        model = torchvision.models.mobilenet_v2(num_classes=num_classes, width_mult=mobilenet_width(width))
        if make is not None:
            blocks = [m for m in model.features if isinstance(m, InvertedResidual)]
            stages = [stage for stage, (_, n) in enumerate(MOBILENET_V2_SETTINGS) for _ in range(n)]
            assert len(blocks) == len(stages), "torchvision's MobileNetV2 settings changed"
            for block, stage in zip(blocks, stages):
                block.conv.append(make(stage))
        if in_channels != 3:
            model.features[0][0] = _new_stem(model.features[0][0], in_channels)
        return model

    return Backbone(shape.name, shape.stage_channels, build, shape.official_k)


_BUILDERS = {"cifar-resnet": _cifar_resnet, "imagenet-resnet": lambda name: _imagenet_resnet(int(name.removeprefix("resnet-"))),
             "mobilenet-v2": lambda name: _mobilenet_v2()}
BACKBONES: dict[str, Backbone] = {name: _BUILDERS[backbone_shape(name).kind](name) for name in backbone_names()}


class UserBackbone:
    """A user's network (``models.user``: ``"my_net.py:build"``, ``"my_pkg.net:build"`` or a name in the
    entry-point group ``ecasweep.backbone``), called like a ``Backbone``.

    The contract: ``build(make_attention, num_classes, in_channels)`` returns the ``nn.Module``, where
    ``make_attention(channels)`` returns a fresh attention module for a feature map of ``channels``
    channels (an ``nn.Identity`` for ``attention = "none"``). Where the network calls it is where
    the attention sits; per-stage kernel sizes (``k = [3, 5, 7]``) need ecasweep's stages and are
    refused.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self.official_k = None

    def stage_channels(self, width: int | float | None = None) -> list[int]:
        raise ValueError(f"{user.display_name(self.name)} is a user's backbone: its stages are its own")

    def __call__(self, attention: str = "none", num_classes: int = 10, in_channels: int = 3,
                 width: int | float | None = None, **attention_kwargs: Any) -> nn.Module:
        if width is not None:
            raise ValueError(f"width applies to ecasweep's backbones, not to {user.display_name(self.name)}")
        k = attention_kwargs.get("k")
        if isinstance(k, (list, tuple)) or k == OFFICIAL or (isinstance(k, str) and k.isdigit()):
            raise ValueError(f"k={k!r} sets one kernel size per stage of ecasweep's backbones; "
                             f"{user.display_name(self.name)} is a user's backbone: give one k")
        builder = user.load(self.name, "backbone")
        made: list[nn.Module] = []

        def make_attention(channels: int) -> nn.Module:
            module = nn.Identity() if attention == "none" else create_attention(attention, channels,
                                                                                **attention_kwargs)
            made.append(module)
            return module

        model = builder(make_attention, num_classes, in_channels)
        if not isinstance(model, nn.Module):
            raise user.UserCodeError(f"{user.display_name(self.name)}(make_attention, {num_classes}, {in_channels}) "
                                     f"returned {type(model).__name__}, not an nn.Module")
        model.backbone = self.name
        model.attention = attention
        kernels = [m.k for m in made if hasattr(m, "k")] if attention in KERNEL_VARIANTS else []
        model.kernel_sizes = kernels or None  # one per module the network made
        return model


def is_user_backbone(name: Any) -> bool:
    """A user's network: a reference, or an entry point in ``ecasweep.backbone`` that is no built-in."""
    return isinstance(name, str) and not is_builtin_backbone(name) and \
        user.is_user(name, BUILTIN_BACKBONES, "backbone")


def get_backbone(name: str) -> Backbone | UserBackbone:
    """The ``Backbone`` called ``name``; ``resnet-<6n+2>`` / ``cifar-resnet-<6n+2>`` for CIFAR depths;
    a ``UserBackbone`` for a user's network (``models.user``).

    >>> get_backbone("resnet-8").stage_channels()
    [16, 32, 64]
    """
    if isinstance(name, str) and name in BACKBONES:
        return BACKBONES[name]
    if is_user_backbone(name):
        return UserBackbone(name)
    return _BUILDERS[backbone_shape(name).kind](name)


def build_model(backbone: str, attention: str = "none", num_classes: int = 10, in_channels: int = 3,
                width: int | float | None = None, **attention_kwargs: Any) -> nn.Module:
    """Build ``backbone`` with the attention variant ``attention`` in every block.

    ``attention_kwargs`` go to ``create_attention`` (``r``, ``groups``, ``k``, ``gamma``, ...), except
    that ``k`` may also be per stage (see the module docstring). ``width``: base width of a CIFAR
    ResNet (default 16), ``width_mult`` of mobilenet-v2; not accepted by the ImageNet ResNets.

    >>> model = build_model("resnet-20", "se", r=4)
    >>> model(torch.randn(2, 3, 32, 32)).shape
    torch.Size([2, 10])
    """
    return get_backbone(backbone)(attention, num_classes, in_channels, width, **attention_kwargs)


#: larger models are refused before anything is allocated (ResNet-152 has 60 M parameters)
MAX_PARAMETERS = 1_000_000_000


def parameter_count(backbone: str, attention: str = "none", num_classes: int = 10, in_channels: int = 3,
                    width: int | float | None = None, **attention_kwargs: Any) -> int:
    """Parameters and buffers of ``build_model(...)``, counted on the meta device (nothing allocated).

    >>> parameter_count("resnet-20", num_classes=10) > 269_722      # parameters + BatchNorm buffers
    True
    """
    with torch.device("meta"):
        model = build_model(backbone, attention, num_classes, in_channels, width, **attention_kwargs)
    return sum(t.numel() for t in (*model.parameters(), *model.buffers()))


def check_model_size(backbone: str, num_classes: int = 10, in_channels: int = 3,
                     width: int | float | None = None) -> None:
    """Refuse a model above ``MAX_PARAMETERS`` (a typo such as ``width = 1000000``) with a ConfigError.

    >>> check_model_size("resnet-8", width=1_000_000)
    Traceback (most recent call last):
    ecasweep.errors.ConfigError: model.width: resnet-8 would have 2.9e+14 parameters (1.2e+15 bytes in float32); at most 1e+09
    """
    if is_user_backbone(backbone):  # its size is its author's
        return
    n = parameter_count(backbone, "none", num_classes, in_channels, width)
    if n > MAX_PARAMETERS:
        raise ConfigError("model.width" if width is not None else "model.backbone",
                          f"{backbone} would have {n:.2g} parameters ({4 * n:.2g} bytes in float32); "
                          f"at most {MAX_PARAMETERS:.0e}")


# Summary ----------------------------------------------------------------------------------------

def summarize(model: nn.Module, input_size: Sequence[int]) -> dict[str, Any]:
    """Parameter counts and FLOPs of one forward pass of ONE image of ``input_size`` (C, H, W).

    ``flops`` is what ``torch.utils.flop_counter.FlopCounterMode`` counts: convolutions and matrix
    products only, one multiply-add = 2 FLOPs. ``macs = flops // 2`` is the unit papers call
    "FLOPs" (ResNet-50: 4.1 G by torchvision's count, 3.86 G in the ECA paper). The pass runs in
    eval mode without gradients, in the model's dtype, device and memory format; each module's
    training flag is restored afterwards.

    >>> summarize(build_model("resnet-20"), (3, 32, 32))["total_params"]
    269722
    """
    shape = tuple(input_size)
    if len(shape) == 4 and shape[0] == 1:
        shape = shape[1:]
    if len(shape) != 3:
        raise ValueError(f"input_size must be (C, H, W) or (1, C, H, W), got {tuple(input_size)!r}")
    param = next(model.parameters())
    x = torch.zeros((1, *shape), dtype=param.dtype, device=param.device)
    if _is_channels_last(model):
        x = x.to(memory_format=torch.channels_last)
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(x)
    finally:
        for m, training in modes:
            m.training = training
    flops = counter.get_total_flops()
    attention_modules = _outermost_attention(model)
    return {
        "backbone": getattr(model, "backbone", None),
        "attention": getattr(model, "attention", None),
        "kernel_sizes": getattr(model, "kernel_sizes", None),
        "input_size": shape,
        "total_params": sum(p.numel() for p in model.parameters()),
        "attention_params": sum(p.numel() for m in attention_modules for p in m.parameters()),
        "attention_modules": len(attention_modules),
        "flops": flops,
        "macs": flops // 2,
    }


def _outermost_attention(model: nn.Module) -> list[nn.Module]:
    """The attention modules of ``model``, not counting one inside another (a user's module may hold
    ecasweep's own)."""
    found: list[nn.Module] = []

    def visit(module: nn.Module) -> None:
        if is_attention(module):
            found.append(module)
            return
        for child in module.children():
            visit(child)

    visit(model)
    return found


def _is_channels_last(model: nn.Module) -> bool:
    return any(p.dim() == 4 and not p.is_contiguous() and p.is_contiguous(memory_format=torch.channels_last)
               for p in model.parameters())
