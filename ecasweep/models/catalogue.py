"""What exists, by name, without building anything: attention variants, backbones and kernel sizes.

The study loader and the quick commands (``list``, ``show``) read this module only, so they answer
without importing torch. The modules themselves live in ``attention``, ``attention_timm`` and
``backbones``, which take their names, arguments and channel geometry from here; a test checks that
every variant's constructor takes exactly the arguments listed, with the same defaults.

* Attention variants: the paper's Table 2 (Wang et al., "ECA-Net", CVPR 2020, arXiv 1910.03151) in
  its order, then timm's modules (an optional extra).
* Kernel sizes: Eq. (12) of the paper, as its official code computes it.
* Backbones: the channel count the attention sees in each stage, and the official repository's
  per-stage kernel sizes.

Example:
    >>> accepted_arguments("se")
    ['r', 'bias', 'round_to']
    >>> [resolve_kernel_size("adaptive", c) for c in stage_channels("resnet-50")]
    [5, 5, 5, 7]
"""

from __future__ import annotations

import importlib.util
import math
import re
from dataclasses import dataclass, field
from typing import Any, Callable

from ..errors import EcasweepError

KernelSize = int | str

ADAPTIVE = "adaptive"
OFFICIAL = "official"


# Attention variants -----------------------------------------------------------------------------

@dataclass(frozen=True)
class Variant:
    """An attention variant: its keyword arguments with their defaults, and what kind it is."""

    name: str
    arguments: dict[str, Any] = field(default_factory=dict)
    kernel: bool = False  # the ECA family: the kernel size is set by k / gamma / beta / min_k
    timm: bool = False  # built from timm's module (the ``timm`` extra)


_KERNEL_ARGS = {"k": 3, "gamma": 2.0, "beta": 1.0, "min_k": 1, "bias": False}

VARIANTS: dict[str, Variant] = {v.name: v for v in (
    Variant("none"),
    Variant("se", {"r": 16, "bias": False, "round_to": None}),
    Variant("se-var1"),
    Variant("se-var2", {"bias": False}),
    Variant("se-var3", {"bias": False}),
    Variant("se-gc", {"groups": None, "group_size": None, "bias": False}),
    Variant("eca-ns", dict(_KERNEL_ARGS), kernel=True),
    Variant("eca", dict(_KERNEL_ARGS), kernel=True),
    Variant("ceca", dict(_KERNEL_ARGS), kernel=True),
    Variant("cbam", {"r": 16, "spatial_k": 7}, timm=True),
    Variant("lcbam", {"r": 16, "spatial_k": 7}, timm=True),
    Variant("ge-theta-minus", {"extent": 0}, timm=True),
    Variant("ge-theta", {"extent": 2}, timm=True),
    Variant("ge-theta-plus", {"extent": 2, "r": 16}, timm=True),
    Variant("gc", {"r": 8}, timm=True),
    Variant("gca", {"r": 8}, timm=True),
    Variant("ese", timm=True),
    Variant("nl", {"r": 8}, timm=True),
)}
#: variants whose kernel size is set by ``k`` / ``gamma`` / ``beta``
KERNEL_VARIANTS = frozenset(name for name, v in VARIANTS.items() if v.kernel)
#: the variants built from timm's modules (``ecasweep.attention_timm``; needs the ``timm`` extra)
TIMM_NAMES = frozenset(name for name, v in VARIANTS.items() if v.timm)
#: ecasweep's own variants (the paper's Table 2)
NATIVE_NAMES = frozenset(VARIANTS) - TIMM_NAMES

TIMM_INSTALL_HINT = "pip install 'ecasweep[timm]'"


class MissingTimmError(EcasweepError, ImportError):
    """A timm attention module was asked for but timm is not installed."""


def variant(name: str) -> Variant:
    """The variant called ``name``, or a ValueError listing the names."""
    try:
        return VARIANTS[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown attention {name!r}; expected one of: {', '.join(VARIANTS)}") from None


def accepted_arguments(name: str) -> list[str]:
    """Keyword arguments the variant ``name`` accepts (``create_attention``'s, after the channels)."""
    return list(variant(name).arguments)


def check_timm_installed(name: str) -> None:
    """A ``MissingTimmError`` naming the install command when ``name`` is timm's and timm is absent."""
    if variant(name).timm and importlib.util.find_spec("timm") is None:
        raise MissingTimmError(f"attention {name!r} is timm's module and needs timm, an optional extra: "
                               f"{TIMM_INSTALL_HINT}")


# Kernel sizes (Eq. 12) --------------------------------------------------------------------------

def adaptive_kernel_size(channels: int, gamma: float = 2.0, beta: float = 1.0, min_k: int = 1) -> int:
    """Kernel size from the channel count, paper Eq. (12) as computed by the paper's own code.

    ``t = int(abs((log2(C) + beta) / gamma)); k = t if t is odd else t + 1``. timm's ``EcaModule``
    additionally clamps ``k >= 3``; pass ``min_k=3`` for that behaviour (the default, 1, keeps the
    paper's rule).

    >>> [adaptive_kernel_size(c) for c in (64, 128, 256, 512, 1024, 2048)]
    [3, 5, 5, 5, 5, 7]
    """
    check_positive_int("channels", channels)
    check_gamma(gamma)
    t = int(abs((math.log2(channels) + beta) / gamma))
    k = t if t % 2 else t + 1
    return max(k, odd_k(min_k, "min_k"))


def resolve_kernel_size(k: KernelSize, channels: int, gamma: float = 2.0, beta: float = 1.0,
                        min_k: int = 1) -> int:
    """An odd kernel size from ``k``: an odd int >= 1, or ``"adaptive"`` (Eq. 12)."""
    if k == ADAPTIVE:
        return adaptive_kernel_size(channels, gamma, beta, min_k)
    return odd_k(k, "k")


def odd_k(k: object, name: str) -> int:
    if isinstance(k, bool) or not isinstance(k, int) or k < 1 or k % 2 == 0:
        raise ValueError(f"{name} must be an odd integer >= 1 or 'adaptive', got {k!r}")
    return k


def check_positive_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return value


def check_gamma(gamma: object) -> None:
    if isinstance(gamma, bool) or not isinstance(gamma, (int, float)) or not gamma > 0:
        raise ValueError(f"gamma must be a number > 0, got {gamma!r}")


# Backbones --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class BackboneShape:
    """A backbone's geometry: the channels its attention sees per stage, and the official k's.

    ``stage_channels(width)`` takes the model's ``width`` (None: the backbone's default) and raises
    ValueError for a width the backbone does not take.
    """

    name: str
    kind: str  # "cifar-resnet" | "imagenet-resnet" | "mobilenet-v2"
    stage_channels: Callable[[Any], list[int]]
    official_k: tuple[int, ...] | None = None


#: ImageNet ResNets (torchvision's): depth -> (block expansion, blocks per stage, released ECA checkpoint's k)
IMAGENET_RESNETS = {
    18: (1, (2, 2, 2, 2), (3, 5, 7, 7)),
    34: (1, (3, 4, 6, 3), (3, 3, 5, 7)),
    50: (4, (3, 4, 6, 3), (3, 5, 5, 7)),
    101: (4, (3, 4, 23, 3), (3, 3, 5, 7)),
    152: (4, (3, 8, 36, 3), (3, 3, 5, 7)),
}
#: base width of a CIFAR ResNet (He et al. 2016, Sec. 4.2)
CIFAR_WIDTH = 16
#: (c, n) of torchvision's (and the paper's) MobileNetV2 inverted residual settings; one stage per setting
MOBILENET_V2_SETTINGS = ((16, 1), (24, 2), (32, 3), (64, 4), (96, 3), (160, 3), (320, 1))


def make_divisible(v: float, divisor: int, min_value: int | None = None) -> int:
    """torchvision's channel rounding of MobileNetV2 (``torchvision.models._utils._make_divisible``)."""
    min_value = min_value or divisor
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    return new_v + divisor if new_v < 0.9 * v else new_v


def _imagenet_resnet(depth: int) -> BackboneShape:
    expansion, _, official_k = IMAGENET_RESNETS[depth]

    def channels(width: Any) -> list[int]:
        if width is not None:
            raise ValueError(f"width applies to the CIFAR ResNets and mobilenet-v2, not resnet-{depth}")
        return [planes * expansion for planes in (64, 128, 256, 512)]

    return BackboneShape(f"resnet-{depth}", "imagenet-resnet", channels, official_k)


def cifar_width(width: Any) -> int:
    width = CIFAR_WIDTH if width is None else width
    if isinstance(width, bool) or not isinstance(width, int) or width < 1:
        raise ValueError(f"width of a CIFAR ResNet must be a positive integer, got {width!r}")
    return width


def _cifar_resnet(name: str) -> BackboneShape:
    def channels(width: Any) -> list[int]:
        w = cifar_width(width)
        return [w, 2 * w, 4 * w]

    return BackboneShape(name, "cifar-resnet", channels)


def mobilenet_width(width: Any) -> float:
    width = 1.0 if width is None else width
    if isinstance(width, bool) or not isinstance(width, (int, float)) or width <= 0:
        raise ValueError(f"width of mobilenet-v2 is its width multiplier (> 0), got {width!r}")
    return float(width)


def _mobilenet_v2() -> BackboneShape:
    def channels(width: Any) -> list[int]:
        w = mobilenet_width(width)
        return [make_divisible(c * w, 8) for c, _ in MOBILENET_V2_SETTINGS]

    # The official ECA-MobileNetV2 (BangguWu/ECANet, models/eca_mobilenetv2.py): k = 1 if c < 96 else 3,
    # with c the setting's unscaled channel count. (An earlier revision of that file had c <= 96.)
    official_k = tuple(1 if c < 96 else 3 for c, _ in MOBILENET_V2_SETTINGS)
    return BackboneShape("mobilenet-v2", "mobilenet-v2", channels, official_k)


BACKBONE_SHAPES: dict[str, BackboneShape] = {
    **{f"resnet-{d}": _cifar_resnet(f"resnet-{d}") for d in (20, 32, 44, 56, 110)},
    **{f"resnet-{d}": _imagenet_resnet(d) for d in IMAGENET_RESNETS},
    "mobilenet-v2": _mobilenet_v2(),
}

_CIFAR_NAME = re.compile(r"(cifar-)?resnet-(\d+)")


def backbone_names() -> list[str]:
    """The listed backbone names (any other ``resnet-<6n+2>`` is accepted too)."""
    return list(BACKBONE_SHAPES)


def backbone_shape(name: str) -> BackboneShape:
    """The geometry of ``name``; ``resnet-<6n+2>`` / ``cifar-resnet-<6n+2>`` for other CIFAR depths."""
    if isinstance(name, str) and name in BACKBONE_SHAPES:
        return BACKBONE_SHAPES[name]
    match = _CIFAR_NAME.fullmatch(name) if isinstance(name, str) else None
    if match and int(match[2]) >= 8 and (int(match[2]) - 2) % 6 == 0:
        return _cifar_resnet(name)
    raise ValueError(f"unknown backbone {name!r}; expected one of: {', '.join(BACKBONE_SHAPES)}, "
                     "or resnet-<6n+2> / cifar-resnet-<6n+2> for another CIFAR ResNet depth")


def is_builtin_backbone(name: object) -> bool:
    """Whether ``name`` is one of ecasweep's backbones (a listed one, or any resnet-<6n+2>).

    >>> is_builtin_backbone("resnet-8"), is_builtin_backbone("my_net.py:build")
    (True, False)
    """
    try:
        backbone_shape(name)  # type: ignore[arg-type]
        return True
    except ValueError:
        return False


class _BuiltinBackbones:
    """``name in BUILTIN_BACKBONES``: ``is_builtin_backbone`` as a container (for ``models.user``)."""

    def __contains__(self, name: object) -> bool:
        return is_builtin_backbone(name)


BUILTIN_BACKBONES = _BuiltinBackbones()


def cifar_depth(name: str) -> int:
    """The depth 6n+2 of a CIFAR ResNet name (``resnet-8``, ``cifar-resnet-50``)."""
    return int(_CIFAR_NAME.fullmatch(name)[2])


def stage_channels(backbone: str, width: int | float | None = None) -> list[int]:
    """Channel count of the attention modules in each stage, without building the model.

    >>> stage_channels("resnet-50")
    [256, 512, 1024, 2048]
    """
    return backbone_shape(backbone).stage_channels(width)
