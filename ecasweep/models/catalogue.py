"""What exists, by name, without building anything: attention variants, backbones and kernel sizes.

The study loader and the quick commands (``list``, ``show``) read this module only, so they answer
without importing torch. The modules themselves live in ``attention``, ``attention_timm`` and
``backbones``, which take their names, arguments and channel geometry from here; a test checks that
every variant's constructor takes exactly the arguments listed, with the same defaults.

* Attention variants: the paper's Table 2 (Wang et al., "ECA-Net", CVPR 2020, arXiv 1910.03151) in
  its order, then timm's modules (an optional extra).
* Kernel sizes: Eq. (12) of the paper, as its official code computes it.

The backbones' geometry (the channels each stage's attention sees) is ``shapes``'.

Example:
    >>> accepted_arguments("se")
    ['r', 'bias', 'round_to']
    >>> [resolve_kernel_size("adaptive", c) for c in (256, 512, 1024, 2048)]  # resnet-50's stages
    [5, 5, 5, 7]
"""

from __future__ import annotations

import importlib.util
import math
from dataclasses import dataclass, field
from typing import Any

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
