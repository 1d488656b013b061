"""``bench modules``: forward+backward of every attention variant, and ``eca`` against the paper's
own ``eca_layer``."""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor, nn

from ..models.attention import NATIVE_NAMES, REGISTRY, create_attention
from ..engine.devices import cpu_count, resolve_device

from .timing import (Timer, synchronizer, time_pair, time_one, _threads, _machine)


MODULE_SHAPES = ((128, 64, 32, 32), (128, 256, 8, 8), (32, 16, 28, 28))


QUICK_SHAPES = ((8, 16, 8, 8),)


LAYOUTS = {"nchw": torch.contiguous_format, "channels_last": torch.channels_last}


#: keyword arguments of each variant at its paper setting (Table 2)
VARIANT_KWARGS = {"se": {"r": 16}, "se-gc": {"groups": 16}, "eca": {"k": 3}, "eca-ns": {"k": 3},
                  "ceca": {"k": 3}}


class ReferenceECA(nn.Module):
    """The paper's ``eca_layer``, kept verbatim as the baseline."""

    def __init__(self, k: int = 3) -> None:
        super().__init__()
        self.avg_pool = nn.AdaptiveAvgPool2d(1)
        self.conv = nn.Conv1d(1, 1, kernel_size=k, padding=(k - 1) // 2, bias=False)
        self.sigmoid = nn.Sigmoid()

    def forward(self, x: Tensor) -> Tensor:
        y = self.avg_pool(x)
        y = self.conv(y.squeeze(-1).transpose(-1, -2)).transpose(-1, -2).unsqueeze(-1)
        y = self.sigmoid(y)
        return x * y.expand_as(x)


def forward_backward(module: nn.Module, x: Tensor, grad: Tensor) -> Timer:
    """A closure running one forward and backward, gradients w.r.t. ``x`` and all parameters."""
    inputs = (x, *(p for p in module.parameters() if p.requires_grad))

    def step() -> object:
        return torch.autograd.grad(module(x), inputs, grad)

    return step


def make_input(shape: Sequence[int], layout: str, seed: int = 0,
               device: torch.device | str = "cpu") -> tuple[Tensor, Tensor]:
    """A random input (requiring grad) and output gradient of ``shape`` in ``layout``."""
    g = torch.Generator().manual_seed(seed)
    fmt = LAYOUTS[layout]
    x = torch.randn(tuple(shape), generator=g).to(device, memory_format=fmt).requires_grad_()
    grad = torch.randn(tuple(shape), generator=g).to(device, memory_format=fmt)
    return x, grad


def compare_eca(shape: Sequence[int], layout: str, repeats: int, warmup: int, number: int | None = None,
                device: torch.device | str = "cpu") -> dict:
    """Interleaved fwd+bwd timing of the reference ``eca_layer`` against ecasweep's ``eca`` (same weights)."""
    sync = synchronizer(device)
    x, grad = make_input(shape, layout, device=device)
    ours = create_attention("eca", shape[1], k=3).to(device)
    ref = ReferenceECA(3).to(device)
    with torch.no_grad():
        ref.conv.weight.copy_(ours.conv.weight)
    result = time_pair(forward_backward(ref, x, grad), forward_backward(ours, x, grad), repeats, warmup,
                       number, sync)
    return {"shape": list(shape), "layout": layout, "ref_ms": result["a"]["median"] * 1e3,
            "ours_ms": result["b"]["median"] * 1e3, "ratio": result["ratio"], "repeats": repeats}


def time_variants(shape: Sequence[int], layout: str, repeats: int, warmup: int, number: int | None = None,
                  device: torch.device | str = "cpu") -> dict[str, float]:
    """Median fwd+bwd milliseconds of every variant of the paper's Table 2 but ``none``."""
    sync = synchronizer(device)
    x, grad = make_input(shape, layout, device=device)
    out = {}
    for name in REGISTRY:
        if name == "none" or name not in NATIVE_NAMES:  # the identity: no graph, nothing to time
            continue
        module = create_attention(name, shape[1], **VARIANT_KWARGS.get(name, {})).to(device)
        out[name] = time_one(forward_backward(module, x, grad), repeats, warmup, number, sync)["median"] * 1e3
    return out


def bench_modules(device: str = "auto", repeats: int = 11, warmup: int = 2, threads: int | None = None,
                  shapes: Sequence[Sequence[int]] = MODULE_SHAPES, variants: bool = True) -> dict:
    """``eca`` against the reference at each shape and layout, and every variant's fwd+bwd time.

    ``threads``: CPU threads (default: all cores, as the module would run in a one-worker trial).

    >>> r = bench_modules("cpu", repeats=1, warmup=0, shapes=[(2, 16, 4, 4)], variants=False)
    >>> r["eca"][0]["ratio"]["median"] > 0
    True
    """
    device = resolve_device(device)
    with _threads(threads or (cpu_count() if device.type == "cpu" else None)) as n:
        rows, variant_rows = [], []
        for shape in shapes:
            for layout in LAYOUTS:
                rows.append(compare_eca(shape, layout, repeats, warmup, device=device))
                if variants:
                    variant_rows.append({"shape": list(shape), "layout": layout,
                                         "ms": time_variants(shape, layout, max(3, repeats // 4), 1,
                                                             device=device)})
        return {"machine": _machine(device, n), "eca": rows, "variants": variant_rows}
