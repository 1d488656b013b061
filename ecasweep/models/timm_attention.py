"""The attention modules of timm (Wightman, pytorch-image-models) under ecasweep's registry contract.

The ECA-Net paper's Table 3 (Wang et al., CVPR 2020, arXiv 1910.03151) compares ECA with other
attention methods. The implementations the community uses for most of them live in ``timm.layers``;
this module builds them with timm's own constructors, translating ecasweep's argument names
(``r`` the reduction ratio, ``spatial_k`` the spatial kernel size, ``extent`` the gather extent) into
timm's, and holds no copy of timm's code. timm is an optional extra: ``pip install 'ecasweep[timm]'``.

* ``cbam``, ``lcbam``: CBAM (Woo et al., ECCV 2018), timm's ``CbamModule`` / ``LightCbamModule``.
* ``ge-theta-minus``, ``ge-theta``, ``ge-theta-plus``: Gather-Excite (Hu et al., NeurIPS 2018),
  timm's ``GatherExcite``: parameter-free gather and excite (θ⁻), a depthwise-convolution gather (θ),
  and that gather with an MLP excite (θ⁺).
* ``gc``, ``gca``: Global Context (Cao et al., GCNet, 2019), timm's ``GlobalContext`` with the
  context fused by scaling (timm's ``gc``) or by addition (timm's ``gca``, the GCNet paper's default).
* ``ese``: effective SE (Lee and Park, CenterMask, CVPR 2020), timm's ``EffectiveSEModule``.
* ``nl``: non-local block (Wang et al., CVPR 2018), timm's ``NonLocalAttn``.

Each wrapper sits where ecasweep's own variants sit (after the block's last BatchNorm, before the
residual addition) and holds timm's module as ``.module``; its forward is timm's forward.

Example:
    >>> import torch
    >>> from ecasweep.models.attention import create_attention
    >>> cbam = create_attention("cbam", 64, r=16)              # doctest: +SKIP
    >>> cbam(torch.randn(2, 64, 8, 8)).shape                   # doctest: +SKIP
    torch.Size([2, 64, 8, 8])
"""

from __future__ import annotations

import importlib
from typing import Any

from torch import Tensor, nn

from .catalogue import TIMM_INSTALL_HINT as INSTALL_HINT, MissingTimmError  # noqa: F401  (re-exported)

#: timm's modules left out, and why (for ``--help`` and error messages)
OUT_OF_SCOPE = {
    "sk": "selective kernel: replaces the block's convolution",
    "splat": "split attention: replaces the block's convolution",
    "lambda": "lambda layer: replaces the block's convolution",
    "halo": "halo attention: replaces the block's convolution",
    "bottleneck": "bottleneck self-attention: replaces the block's convolution",
}
OUT_OF_SCOPE_HELP = (f"timm's {', '.join(OUT_OF_SCOPE)} are not offered: they change the block's "
                     "convolution rather than re-weighting its output, so they are not attention "
                     "modules placed after the block's last BatchNorm.")


def timm_layers(submodule: str = "", variant: str = "") -> Any:
    """``timm.layers`` (or its ``submodule``), or a ``MissingTimmError`` naming the install command."""
    try:
        return importlib.import_module("timm.layers" + (f".{submodule}" if submodule else ""))
    except ImportError:
        what = f"attention {variant!r} is timm's module and needs" if variant else "timm's attention modules need"
        raise MissingTimmError(f"{what} timm, an optional extra: {INSTALL_HINT}") from None


def timm_available() -> bool:
    """True when ``timm.layers`` imports."""
    try:
        timm_layers()
    except MissingTimmError:
        return False
    return True


def _positive_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return value


def _odd(name: str, value: object) -> int:
    if _positive_int(name, value) % 2 == 0:
        raise ValueError(f"{name} must be an odd integer >= 1, got {value!r}")
    return value


def _extent(value: object, allow_global: bool) -> int:
    """0 (global) or a power of two: the gather's stride (one stride-2 convolution per factor 2)."""
    valid = not isinstance(value, bool) and isinstance(value, int) and value >= 0 and (value & (value - 1)) == 0
    if not valid or value == 1 or (value == 0 and not allow_global):
        expected = "0 (global) or a power of two >= 2" if allow_global else (
            "a power of two >= 2 (a global gather with parameters needs the feature map's size, "
            "which a module built per stage does not know)")
        raise ValueError(f"extent must be {expected}, got {value!r}")
    return value


class TimmAttention(nn.Module):
    """Base class: timm's module as ``.module``, built for ``channels``; the forward is timm's."""

    #: user-facing name of the variant (the registry key)
    name: str = ""

    def __init__(self, channels: int, module: nn.Module) -> None:
        super().__init__()
        self.channels = channels
        self.module = module

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 4 or x.shape[1] != self.channels:
            raise ValueError(f"{type(self).__name__} expects (N, {self.channels}, H, W), got {tuple(x.shape)}")
        return self.module(x)

    def extra_repr(self) -> str:
        return f"channels={self.channels}"


class CBAM(TimmAttention):
    """``cbam``: a channel gate (MLP of avg- and max-pooled y, hidden C/r), then a spatial_k^2 spatial gate."""

    name = "cbam"

    def __init__(self, channels: int, r: int = 16, spatial_k: int = 7) -> None:
        _positive_int("channels", channels)
        _positive_int("r", r)
        _odd("spatial_k", spatial_k)
        cbam = timm_layers("cbam", self.name).CbamModule
        super().__init__(channels, cbam(channels, rd_ratio=1 / r, spatial_kernel_size=spatial_k))


class LightCBAM(TimmAttention):
    """``lcbam``: CBAM's light form (one MLP over avg+max, a one-map spatial gate); timm's LightCbamModule."""

    name = "lcbam"

    def __init__(self, channels: int, r: int = 16, spatial_k: int = 7) -> None:
        _positive_int("channels", channels)
        _positive_int("r", r)
        _odd("spatial_k", spatial_k)
        light_cbam = timm_layers("cbam", self.name).LightCbamModule
        super().__init__(channels, light_cbam(channels, rd_ratio=1 / r, spatial_kernel_size=spatial_k))


def _gather_excite(variant: str, channels: int, **kwargs: Any) -> nn.Module:
    """timm's ``GatherExcite``; a TypeError of timm's constructor becomes a ValueError saying so."""
    layers = timm_layers(variant=variant)
    try:
        return layers.GatherExcite(channels, **kwargs)
    except TypeError as e:  # timm 1.0.31: GatherExcite passes its device/dtype dict with * instead of **
        version = getattr(importlib.import_module("timm"), "__version__", "?")
        raise ValueError(f"timm {version}'s GatherExcite({', '.join(f'{k}={v!r}' for k, v in kwargs.items())}) "
                         f"cannot be built ({e}); this variant needs a timm release where it builds") from None


class GEThetaMinus(TimmAttention):
    """``ge-theta-minus``: GE-θ⁻, parameter-free: average pooling over ``extent`` (0: global), then sigmoid."""

    name = "ge-theta-minus"

    def __init__(self, channels: int, extent: int = 0) -> None:
        _positive_int("channels", channels)
        extent = _extent(extent, allow_global=True)
        super().__init__(channels, _gather_excite(self.name, channels, extent=extent, extra_params=False,
                                                  use_mlp=False))


class GETheta(TimmAttention):
    """``ge-theta``: GE-θ, gather by stride-2 depthwise convolutions down by ``extent``, excite by sigmoid."""

    name = "ge-theta"

    def __init__(self, channels: int, extent: int = 2) -> None:
        _positive_int("channels", channels)
        extent = _extent(extent, allow_global=False)
        super().__init__(channels, _gather_excite(self.name, channels, extent=extent, extra_params=True,
                                                  use_mlp=False))


class GEThetaPlus(TimmAttention):
    """``ge-theta-plus``: GE-θ⁺, GE-θ's gather and an MLP excite of hidden width C/r."""

    name = "ge-theta-plus"

    def __init__(self, channels: int, extent: int = 2, r: int = 16) -> None:
        _positive_int("channels", channels)
        extent = _extent(extent, allow_global=False)
        _positive_int("r", r)
        super().__init__(channels, _gather_excite(self.name, channels, extent=extent, extra_params=True,
                                                  use_mlp=True, rd_ratio=1 / r))


class GlobalContext(TimmAttention):
    """``gc``: Global Context, an attention-pooled context through an MLP (hidden C/r, LayerNorm) scaling x."""

    name = "gc"
    fuse = {"fuse_add": False, "fuse_scale": True}

    def __init__(self, channels: int, r: int = 8) -> None:
        _positive_int("channels", channels)
        _positive_int("r", r)
        global_context = timm_layers(variant=self.name).GlobalContext
        super().__init__(channels, global_context(channels, rd_ratio=1 / r, **self.fuse))


class GlobalContextAdd(GlobalContext):
    """``gca``: Global Context fused by addition (the GCNet paper's block): x + MLP(context)."""

    name = "gca"
    fuse = {"fuse_add": True, "fuse_scale": False}


class EffectiveSE(TimmAttention):
    """``ese``: effective SE, hard_sigmoid(W y + b) with one full C x C matrix, no reduction."""

    name = "ese"

    def __init__(self, channels: int) -> None:
        _positive_int("channels", channels)
        super().__init__(channels, timm_layers(variant=self.name).EffectiveSEModule(channels))


class NonLocal(TimmAttention):
    """``nl``: non-local block, softmax attention between all H x W positions (width C/r, rounded to 8)."""

    name = "nl"

    def __init__(self, channels: int, r: int = 8) -> None:
        _positive_int("channels", channels)
        _positive_int("r", r)
        super().__init__(channels, timm_layers(variant=self.name).NonLocalAttn(channels, rd_ratio=1 / r))


#: the timm variants, in the order of the paper's Table 3 where it has them
TIMM_VARIANTS: tuple[type[TimmAttention], ...] = (CBAM, LightCBAM, GEThetaMinus, GETheta, GEThetaPlus,
                                                 GlobalContext, GlobalContextAdd, EffectiveSE, NonLocal)
