"""The benchmarks behind ``ecasweep bench``: every figure measured in one run, ratios taken pair by pair.

The benchmarks measure the library from outside: this package may import anything, nothing imports
it but the CLI. One module per benchmark (``modules``, ``models``, ``engine``, ``sweep``), how things
are timed (``timing``) and their tables (``render``).

Four benchmarks, each a function returning plain data (dicts of numbers and labels) that ``render``
turns into Rich tables and the CLI can print as JSON:

* ``bench_modules``: forward+backward of every attention variant, and of ``eca`` against the ECA-Net
  paper's own ``eca_layer`` (Wang et al., CVPR 2020, arXiv 1910.03151: ``AdaptiveAvgPool2d``,
  transposes, ``Conv1d``, ``expand_as``). Ratio reference / ours (> 1: ecasweep is faster).
* ``bench_models``: the paper's Table 3 on this machine: parameters, FLOPs, training and inference
  images/s of a backbone with each variant, and each variant's overhead against ``none``.
* ``bench_engine``: images/s of ``run_trial`` against a plain torchvision pipeline (Dataset +
  transforms + DataLoader, eager, NCHW) on the same model, recipe and images; both final accuracies.
* ``bench_sweep``: a small grid study with 1 worker and with N workers on this machine: trials per
  hour and the time spent outside training per trial.

How things are timed: warm-up calls first, then ``repeats`` samples; two things compared are
interleaved (a, b, b, a, ...) so that the other jobs of a shared machine hit both alike, and a ratio is
the median of the per-repeat ratios, reported with its quartiles and range. On a GPU every sample
ends with ``torch.cuda.synchronize``.

Example:
    >>> from ecasweep.bench import time_pair
    >>> r = time_pair(lambda: sum(range(1000)), lambda: sum(range(2000)), repeats=3, warmup=1)
    >>> r["ratio"]["median"] < 1
    True
"""

from __future__ import annotations

import sys
from typing import Any, Sequence

from ..engine.devices import resolve_device
from .engine import bench_engine
from .models import bench_models, model_variants, paper_speeds
from .modules import (LAYOUTS, QUICK_SHAPES, VARIANT_KWARGS, ReferenceECA, bench_modules, compare_eca, forward_backward,
                      make_input, time_variants)
from .render import render
from .sweep import bench_sweep
from .timing import calibrate, summarize, time_one, time_pair

__all__ = ["BENCHMARKS", "LAYOUTS", "VARIANT_KWARGS", "ReferenceECA", "bench_engine", "bench_models", "bench_modules",
           "bench_sweep", "calibrate", "compare_eca", "forward_backward", "make_input", "model_variants",
           "paper_speeds", "quick_settings", "ratios", "render", "run_all", "summarize", "time_one", "time_pair",
           "time_variants"]


BENCHMARKS = ("modules", "models", "engine", "sweep")


def run_all(quick: bool = False, device: str = "auto", which: Sequence[str] = BENCHMARKS,
            options: dict[str, dict[str, Any]] | None = None) -> dict[str, dict]:
    """Every benchmark in ``which`` with its default settings (``quick``: tiny sizes, seconds), and
    ``options`` by benchmark over them (e.g. ``{"models": {"variants": [...]}}``)."""
    settings = quick_settings() if quick else {name: {} for name in BENCHMARKS}
    functions = {"modules": bench_modules, "models": bench_models, "engine": bench_engine, "sweep": bench_sweep}
    results = {}
    for name in which:
        kwargs = {**settings[name], **(options or {}).get(name, {})}
        if name != "sweep":
            kwargs["device"] = device
        elif resolve_device(device).type != "cpu":
            kwargs["device"] = str(resolve_device(device))
        results[name] = functions[name](**kwargs)
    return results


def quick_settings() -> dict[str, dict[str, Any]]:
    """Sizes for ``--quick``: everything runs, in seconds; the numbers mean little."""
    return {"modules": {"repeats": 3, "warmup": 1, "shapes": QUICK_SHAPES},
            "models": {"backbone": "resnet-8", "batch_size": 8, "repeats": 2, "warmup": 1,
                       "variants": ("none", "se", "eca")},
            "engine": {"subset": 128, "batch_size": 32, "repeats": 1},
            "sweep": {"seeds": 1, "images": 128, "workers": 2}}


def ratios(results: dict[str, dict]) -> dict[str, float]:
    """The headline ratios of a run, by name (what the issue's targets are stated in).

    >>> ratios({})
    {}
    """
    out: dict[str, float] = {}
    for row in results.get("modules", {}).get("eca", []):
        out[f"eca ref/ours {'x'.join(map(str, row['shape']))} {row['layout']}"] = row["ratio"]["median"]
    for row in results.get("models", {}).get("rows", [])[1:]:
        out[f"train overhead {row['attention']} vs none"] = row["train_overhead"]["median"]
    if "engine" in results:
        out["engine / torchvision images/s"] = results["engine"]["ratio"]["median"]
    if "sweep" in results:
        s = results["sweep"]
        out[f"sweep {s['workers']} workers / 1 worker trials/h"] = s["ratio"]["median"]
        out[f"sweep {s['workers']} workers / 1 worker trials/h, steady state"] = s["steady_ratio"]["median"]
        out["sweep outside training per trial, % of 30 s (1 worker)"] = s["one"]["outside_training_pct_of_30s"]
    return out


def main(argv: Sequence[str] | None = None) -> None:  # pragma: no cover - used by benchmarks/ scripts
    """Run ``python -m ecasweep.bench [--quick]``: all four benchmarks."""
    argv = list(sys.argv[1:] if argv is None else argv)
    render(run_all(quick="--quick" in argv))


if __name__ == "__main__":  # pragma: no cover
    main()
