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
import os

import torch

from ecasweep.bench import (LAYOUTS, VARIANT_KWARGS, ReferenceECA, calibrate, compare_eca,  # noqa: F401
                            forward_backward, make_input, summarize, time_one, time_pair, time_variants)

SHAPES = ((128, 64, 32, 32), (128, 256, 8, 8))


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
