"""The backbones' geometry without building anything: the channels each stage's attention sees, and
the official repository's per-stage kernel sizes (read by the study loader, ``show`` and the
adaptive k, which need no torch; ``backbones`` builds the models from the same numbers).

Example:
    >>> stage_channels("resnet-50")
    [256, 512, 1024, 2048]
    >>> backbone_shape("mobilenet-v2").official_k
    (1, 1, 1, 1, 3, 3, 3)
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable


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
