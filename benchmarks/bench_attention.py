"""Forward+backward time of ecasweep's attention modules against the ECA-Net reference formulation.

The reference is the paper's own ``eca_layer`` (Wang et al., ECA-Net, CVPR 2020, arXiv 1910.03151):
``AdaptiveAvgPool2d(1) -> Conv1d over channels -> sigmoid -> x * y.expand_as(x)``, run through plain
autograd. Both run in one process and are interleaved (ref, ours, ours, ref, ...) so that the noise of
a shared machine hits both alike; what is reported is the median of the per-repeat ratios
``ref_time / our_time`` (> 1: ecasweep is faster) with its spread.

Example:
    python benchmarks/bench_attention.py --quick
    python benchmarks/bench_attention.py --repeats 41 --json bench.json
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import time
from typing import Callable

import torch
from torch import Tensor, nn

from ecasweep.attention import REGISTRY, create_attention

SHAPES = ((128, 64, 32, 32), (128, 256, 8, 8))
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


def _quantile(sorted_values: list[float], q: float) -> float:
    pos = q * (len(sorted_values) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


def summarize(values: list[float]) -> dict[str, float]:
    """Median, quartiles and range of ``values``."""
    s = sorted(values)
    return {"median": statistics.median(s), "q1": _quantile(s, 0.25), "q3": _quantile(s, 0.75),
            "min": s[0], "max": s[-1]}


def _elapsed(fn: Callable[[], object], number: int) -> float:
    start = time.perf_counter()
    for _ in range(number):
        fn()
    return (time.perf_counter() - start) / number


def calibrate(fn: Callable[[], object], min_time: float = 0.02) -> int:
    """Calls per timed sample so that one sample lasts at least ``min_time`` seconds."""
    return max(1, math.ceil(min_time / max(_elapsed(fn, 1), 1e-9)))


def time_pair(fn_a: Callable[[], object], fn_b: Callable[[], object], repeats: int = 21,
              warmup: int = 3, number: int | None = None) -> dict:
    """Time ``fn_a`` and ``fn_b`` interleaved; summarize the per-repeat ratios ``t_a / t_b``.

    Each repeat times both (``number`` calls each; by default enough for 20 ms), alternating which
    goes first, so drift and bursts of load on a shared machine fall on both. Returns seconds per
    call of each and the ratio summary: ``{"a": {...}, "b": {...}, "ratio": {"median", "q1", "q3",
    "min", "max"}, "repeats": n, "number": calls}``. A ratio above 1 means ``fn_b`` is faster.

    >>> r = time_pair(lambda: sum(range(1000)), lambda: sum(range(1000)), repeats=5, warmup=1)
    >>> sorted(r)
    ['a', 'b', 'number', 'ratio', 'repeats']
    """
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    for _ in range(warmup):
        fn_a()
        fn_b()
    number = number or calibrate(fn_a)
    times_a, times_b = [], []
    for i in range(repeats):
        if i % 2:
            times_b.append(_elapsed(fn_b, number))
            times_a.append(_elapsed(fn_a, number))
        else:
            times_a.append(_elapsed(fn_a, number))
            times_b.append(_elapsed(fn_b, number))
    ratios = [a / b for a, b in zip(times_a, times_b)]
    return {"a": summarize(times_a), "b": summarize(times_b), "ratio": summarize(ratios),
            "repeats": repeats, "number": number}


def time_one(fn: Callable[[], object], repeats: int = 21, warmup: int = 3,
             number: int | None = None) -> dict:
    """Seconds per call of ``fn``: median, quartiles and range over ``repeats``."""
    for _ in range(warmup):
        fn()
    number = number or calibrate(fn)
    return summarize([_elapsed(fn, number) for _ in range(repeats)])


def forward_backward(module: nn.Module, x: Tensor, grad: Tensor) -> Callable[[], object]:
    """A closure running one forward and backward, gradients w.r.t. ``x`` and all parameters."""
    inputs = (x, *(p for p in module.parameters() if p.requires_grad))

    def step() -> object:
        return torch.autograd.grad(module(x), inputs, grad)

    return step


def make_input(shape: tuple[int, ...], layout: str, seed: int = 0) -> tuple[Tensor, Tensor]:
    g = torch.Generator().manual_seed(seed)
    fmt = LAYOUTS[layout]
    x = torch.randn(shape, generator=g).to(memory_format=fmt).requires_grad_()
    grad = torch.randn(shape, generator=g).to(memory_format=fmt)
    return x, grad


def compare_eca(shape: tuple[int, ...], layout: str, repeats: int, warmup: int,
                number: int | None) -> dict:
    """Interleaved timing of the reference against ecasweep's ``eca`` (same weights)."""
    x, grad = make_input(shape, layout)
    ours = create_attention("eca", shape[1], k=3)
    ref = ReferenceECA(3)
    with torch.no_grad():
        ref.conv.weight.copy_(ours.conv.weight)
    result = time_pair(forward_backward(ref, x, grad), forward_backward(ours, x, grad),
                       repeats, warmup, number)
    return {"shape": list(shape), "layout": layout, "ref_ms": result["a"]["median"] * 1e3,
            "ours_ms": result["b"]["median"] * 1e3, "ratio": result["ratio"],
            "repeats": result["repeats"], "number": result["number"]}


def time_variants(shape: tuple[int, ...], layout: str, repeats: int, warmup: int,
                  number: int | None) -> dict:
    """Median fwd+bwd milliseconds of every registered variant but ``none``."""
    x, grad = make_input(shape, layout)
    out = {}
    for name in REGISTRY:
        if name == "none":  # the identity: no graph, nothing to time
            continue
        module = create_attention(name, shape[1], **VARIANT_KWARGS.get(name, {}))
        timing = time_one(forward_backward(module, x, grad), repeats, warmup, number)
        out[name] = timing["median"] * 1e3
    return out


def run(repeats: int, warmup: int, number: int | None, variants: bool) -> dict:
    """All measurements as plain data (rendered by ``render``)."""
    torch.set_num_threads(os.cpu_count() or 1)
    results = {"torch": torch.__version__, "threads": torch.get_num_threads(), "eca": [], "variants": []}
    for shape in SHAPES:
        for layout in LAYOUTS:
            results["eca"].append(compare_eca(shape, layout, repeats, warmup, number))
            if variants:
                results["variants"].append({"shape": list(shape), "layout": layout,
                                            "ms": time_variants(shape, layout, max(3, repeats // 3),
                                                                warmup, number)})
    return results


def render(results: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=max(Console().width, 120))
    table = Table(title=f"eca fwd+bwd vs reference (torch {results['torch']}, "
                        f"{results['threads']} threads, float32 CPU)")
    for col in ("shape", "layout", "ref ms", "ours ms", "ratio median", "IQR", "min-max", "n"):
        table.add_column(col, justify="right")
    for row in results["eca"]:
        r = row["ratio"]
        table.add_row("x".join(map(str, row["shape"])), row["layout"], f"{row['ref_ms']:.2f}",
                      f"{row['ours_ms']:.2f}", f"{r['median']:.3f}", f"{r['q1']:.3f}-{r['q3']:.3f}",
                      f"{r['min']:.3f}-{r['max']:.3f}", str(row["repeats"]))
    console.print(table)
    if results["variants"]:
        names = list(results["variants"][0]["ms"])
        table = Table(title="every variant, fwd+bwd median ms")
        table.add_column("shape", justify="right")
        table.add_column("layout")
        for name in names:
            table.add_column(name, justify="right")
        for row in results["variants"]:
            table.add_row("x".join(map(str, row["shape"])), row["layout"],
                          *(f"{row['ms'][n]:.2f}" for n in names))
        console.print(table)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=21, help="interleaved repeats per shape")
    parser.add_argument("--warmup", type=int, default=3, help="untimed calls of each before timing")
    parser.add_argument("--number", type=int, default=None,
                        help="calls per timed sample (default: enough for 20 ms)")
    parser.add_argument("--quick", action="store_true", help="7 repeats, 1 warm-up, eca only")
    parser.add_argument("--no-variants", action="store_true", help="skip timing the other variants")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    args = parser.parse_args(argv)
    repeats, warmup = (7, 1) if args.quick else (args.repeats, args.warmup)
    results = run(repeats, warmup, args.number, variants=not (args.quick or args.no_variants))
    render(results)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
