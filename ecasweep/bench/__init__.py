"""The benchmarks behind ``ecasweep bench``: every figure measured in one run, ratios taken pair by pair.

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

import math
import os
import statistics
import sys
import tempfile
import time
import tomllib
from contextlib import contextmanager
from datetime import datetime
from importlib import resources
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import torch
from torch import Tensor, nn

from ..models.attention import NATIVE_NAMES, REGISTRY, create_attention
from ..models.timm_attention import timm_available
from ..models.backbones import build_model, summarize as summarize_model
from ..engine.config import DataConfig, ModelConfig, RuntimeConfig, TrainConfig, TrialConfig
from ..engine.devices import cpu_count, resolve_device
from ..engine.train import lr_multiplier, make_optimizer, run_trial

Timer = Callable[[], object]

# ------------------------------------------------------------------------------------------ timing


def summarize(values: Sequence[float]) -> dict[str, float]:
    """Median, quartiles and range of ``values``.

    >>> summarize([1.0, 2.0, 3.0, 4.0])["median"]
    2.5
    """
    s = sorted(values)
    return {"median": statistics.median(s), "q1": _quantile(s, 0.25), "q3": _quantile(s, 0.75),
            "min": s[0], "max": s[-1]}


def _quantile(sorted_values: list[float], q: float) -> float:
    pos = q * (len(sorted_values) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


def synchronizer(device: torch.device | str) -> Callable[[], None]:
    """A function that waits for ``device`` to finish its queued work (a no-op on the CPU)."""
    device = torch.device(device)
    if device.type == "cuda":
        return lambda: torch.cuda.synchronize(device)
    if device.type == "mps":
        return torch.mps.synchronize
    return lambda: None


def _elapsed(fn: Timer, number: int, sync: Callable[[], None]) -> float:
    sync()
    start = time.perf_counter()
    for _ in range(number):
        fn()
    sync()
    return (time.perf_counter() - start) / number


def calibrate(fn: Timer, min_time: float = 0.02, sync: Callable[[], None] = lambda: None) -> int:
    """Calls per timed sample so that one sample lasts at least ``min_time`` seconds."""
    return max(1, math.ceil(min_time / max(_elapsed(fn, 1, sync), 1e-9)))


def time_pair(fn_a: Timer, fn_b: Timer, repeats: int = 21, warmup: int = 3, number: int | None = None,
              sync: Callable[[], None] = lambda: None) -> dict:
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
    number = number or calibrate(fn_a, sync=sync)
    times_a, times_b = [], []
    for i in range(repeats):
        if i % 2:
            times_b.append(_elapsed(fn_b, number, sync))
            times_a.append(_elapsed(fn_a, number, sync))
        else:
            times_a.append(_elapsed(fn_a, number, sync))
            times_b.append(_elapsed(fn_b, number, sync))
    ratios = [a / b for a, b in zip(times_a, times_b)]
    return {"a": summarize(times_a), "b": summarize(times_b), "ratio": summarize(ratios),
            "repeats": repeats, "number": number}


def time_one(fn: Timer, repeats: int = 21, warmup: int = 3, number: int | None = None,
             sync: Callable[[], None] = lambda: None) -> dict:
    """Seconds per call of ``fn``: median, quartiles and range over ``repeats``."""
    for _ in range(warmup):
        fn()
    number = number or calibrate(fn, sync=sync)
    return summarize([_elapsed(fn, number, sync) for _ in range(repeats)])


@contextmanager
def _threads(n: int | None) -> Iterator[int]:
    """Run with ``n`` intra-op threads (None: leave as is), restoring the count afterwards."""
    before = torch.get_num_threads()
    if n:
        torch.set_num_threads(n)
    try:
        yield torch.get_num_threads()
    finally:
        torch.set_num_threads(before)


def _cpu_threads(device: torch.device, threads: int | None) -> int | None:
    """Default CPU threads: 1, as each worker of a sweep has (one single-threaded worker per core)."""
    return (threads or 1) if device.type == "cpu" else None


def _machine(device: torch.device, threads: int) -> dict[str, Any]:
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
    else:  # the vector unit matters: the same code runs ~3x faster with AVX-512 than with AVX2 here
        name = f"CPU, {cpu_count()} cores, {torch.backends.cpu.get_cpu_capability()}"
    return {"device": str(device), "device_name": name, "threads": threads, "torch": torch.__version__,
            "load_average": load}


# ----------------------------------------------------------------------------------------- modules

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


# ------------------------------------------------------------------------------------------ models

#: attention variants of ``bench models``, each at its paper setting
MODEL_VARIANTS = ("none", "se", "eca", "eca-ns", "se-var1", "se-var2", "se-var3", "se-gc", "ceca")
#: timm's modules of the paper's Table 3 comparison, added to ``bench models`` when timm is installed
TIMM_MODEL_VARIANTS = ("cbam", "ge-theta-minus", "gc")
#: the paper's Table 3 method names of our variants
PAPER_METHODS = {"none": ("ResNet", "MobileNetV2"), "se": ("SENet", "SENet (r=8)"), "eca": ("ECA-Net",),
                 "cbam": ("CBAM",)}


def model_variants() -> tuple[str, ...]:
    """``MODEL_VARIANTS``, then timm's Table 3 modules when timm is installed."""
    return MODEL_VARIANTS + (TIMM_MODEL_VARIANTS if timm_available() else ())


def paper_table3() -> list[dict[str, Any]]:
    """The paper's Table 3 rows (ecasweep/reference/eca_net_paper.toml)."""
    text = resources.files("ecasweep").joinpath("reference/eca_net_paper.toml").read_text()
    return tomllib.loads(text)["table3"]


def paper_speeds(backbone: str) -> tuple[str, dict[str, dict[str, float]]]:
    """The paper's train/inference FPS per variant for ``backbone``, or ResNet-50's (GPU) when the
    paper has no row for it; returns (the backbone whose figures they are, rows by variant)."""
    rows = paper_table3()
    source = backbone if any(r["backbone"] == backbone for r in rows) else "resnet-50"
    by_variant = {}
    for variant, methods in PAPER_METHODS.items():
        row = next((r for r in rows if r["backbone"] == source and r["method"] in methods), None)
        if row is not None:
            by_variant[variant] = {"train_fps": row["train_fps"], "infer_fps": row["infer_fps"],
                                   "params_m": row["params_m"], "gflops": row["gflops"]}
    base = by_variant.get("none")
    for values in by_variant.values():
        if base:
            values["train_overhead"] = base["train_fps"] / values["train_fps"] - 1
            values["infer_overhead"] = base["infer_fps"] / values["infer_fps"] - 1
    return source, by_variant


def _model_input(backbone: str) -> tuple[int, int, int]:
    """(channels, size, classes) of the data the backbone is meant for."""
    return (3, 32, 10) if backbone.startswith(("resnet-", "cifar-")) and backbone not in (
        "resnet-18", "resnet-34", "resnet-50", "resnet-101", "resnet-152") else (3, 224, 1000)


def _model_steps(backbone: str, attention: str, batch: int, device: torch.device) -> tuple[dict, Timer, Timer]:
    channels, size, classes = _model_input(backbone)
    torch.manual_seed(0)
    model = build_model(backbone, attention, num_classes=classes, in_channels=channels,
                        **VARIANT_KWARGS.get(attention, {}))
    summary = summarize_model(model, (channels, size, size))
    model = model.to(device, memory_format=torch.channels_last)
    optimizer = make_optimizer(model, TrainConfig(lr=0.01, momentum=0.9, weight_decay=5e-4), device)  # as trials do
    criterion = nn.CrossEntropyLoss()
    g = torch.Generator().manual_seed(1)
    x = torch.randn(batch, channels, size, size, generator=g).to(device, memory_format=torch.channels_last)
    y = torch.randint(0, classes, (batch,), generator=g).to(device)

    def train_step() -> object:
        model.train()
        loss = criterion(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return loss

    def infer_step() -> object:
        model.eval()
        with torch.inference_mode():
            return model(x)

    return summary, train_step, infer_step


def bench_models(backbone: str | None = None, device: str = "auto", batch_size: int | None = None,
                 repeats: int = 7, warmup: int = 2, threads: int | None = None,
                 variants: Sequence[str] | None = None) -> dict:
    """Table 3 on this machine: each variant's size, cost and speed, and its overhead against ``none``.

    Default backbone: resnet-50 (224 px, batch 64) on a GPU, resnet-20 (32 px, batch 32) on the CPU
    with one thread, as sweeps run it. Each variant's training step (forward, backward, SGD step)
    and inference pass are timed interleaved with ``none``'s; the overhead is the median over
    repeats of ``t_variant / t_none - 1``. Variants (default): ``MODEL_VARIANTS``, and timm's CBAM,
    GE-θ⁻ and GC when timm is installed (``model_variants()``).

    >>> r = bench_models("resnet-8", "cpu", batch_size=2, repeats=1, warmup=0, variants=["none", "eca"])
    >>> r["rows"][1]["train_overhead"]["median"] > -1
    True
    """
    device = resolve_device(device)
    gpu = device.type == "cuda"
    backbone = backbone or ("resnet-50" if gpu else "resnet-20")
    batch = batch_size or (64 if gpu else 32)
    variants = list(dict.fromkeys(["none", *(model_variants() if variants is None else variants)]))
    sync = synchronizer(device)
    if gpu:
        torch.backends.cudnn.benchmark = True
    with _threads(_cpu_threads(device, threads)) as n:
        base_summary, base_train, base_infer = _model_steps(backbone, "none", batch, device)
        base_train_s = time_one(base_train, repeats, warmup, sync=sync)
        base_infer_s = time_one(base_infer, repeats, warmup, sync=sync)
        rows = [_model_row("none", base_summary, batch, base_train_s["median"], base_infer_s["median"])]
        for attention in variants[1:]:
            summary, train_step, infer_step = _model_steps(backbone, attention, batch, device)
            train = time_pair(train_step, base_train, repeats, warmup, sync=sync)
            infer = time_pair(infer_step, base_infer, repeats, warmup, sync=sync)
            row = _model_row(attention, summary, batch, train["a"]["median"], infer["a"]["median"])
            row["train_overhead"] = _minus_one(train["ratio"])
            row["infer_overhead"] = _minus_one(infer["ratio"])
            rows.append(row)
    source, paper = paper_speeds(backbone)
    return {"machine": _machine(device, n), "backbone": backbone, "batch_size": batch,
            "input": list(_model_input(backbone)), "repeats": repeats, "rows": rows,
            "paper_backbone": source, "paper": {v: p for v, p in paper.items() if v in variants}}


def _model_row(attention: str, summary: dict, batch: int, train_s: float, infer_s: float) -> dict:
    return {"attention": attention, "params": summary["total_params"],
            "attention_params": summary["attention_params"], "flops": summary["flops"],
            "train_images_per_s": batch / train_s, "infer_images_per_s": batch / infer_s,
            "train_overhead": None, "infer_overhead": None}


def _minus_one(ratio: dict[str, float]) -> dict[str, float]:
    return {key: value - 1 for key, value in ratio.items()}


# ------------------------------------------------------------------------------------------ engine

def bench_engine(device: str = "auto", subset: int = 2000, epochs: int = 1, batch_size: int = 64,
                 repeats: int = 2, threads: int | None = None, data_dir: str | None = None,
                 num_workers: int = 0) -> dict:
    """``run_trial`` against a plain torchvision pipeline: resnet-20 + eca (k = 3), same recipe and images.

    The pipeline is what a tutorial writes: a Dataset of PIL images with ``RandomCrop(28, padding=2)``,
    ``RandomHorizontalFlip``, ``ToTensor``, ``Normalize``; a shuffling ``DataLoader``
    (``num_workers``, default 0: on the CPU its workers would take the cores the model trains on);
    the model eager in NCHW. Both train ``epochs`` over the same ``subset`` of Fashion-MNIST (the
    synthetic set, with a notice, when Fashion-MNIST is not found) with the same SGD recipe and
    per-step schedule, from the same initial weights. Runs alternate (engine, pipeline, pipeline,
    engine, ...); throughput is training images/s (evaluation excluded) and the ratio is the median of
    the per-pair ratios. Accuracies are on the official test split, from the first pair (later
    pipeline runs skip their test pass to keep ``ecasweep bench`` within 5 minutes on a slow CPU).
    """
    from ..errors import DataError

    device = resolve_device(device)
    n_threads = _cpu_threads(device, threads)
    notice = None
    data_cfg = DataConfig("fashion-mnist", data_dir=data_dir, subset=subset, augment=True)
    try:
        _fashion_images(data_cfg)
    except DataError as exc:
        notice = f"Fashion-MNIST not found, synthetic data used instead ({exc})"
        data_cfg = DataConfig("synthetic", synthetic_size=max(subset, 512), subset=subset, augment=True)
    train = TrainConfig(epochs=epochs, batch_size=batch_size, lr=0.05, momentum=0.9, weight_decay=5e-4,
                        schedule="onecycle", eval_batch_size=128)
    config = TrialConfig(ModelConfig("resnet-20", "eca", {"k": 3}), data_cfg, train, seed=0,
                         runtime=RuntimeConfig(device=str(device), threads=n_threads, amp="off"))
    engine, plain = [], []
    with _threads(n_threads) as n:
        for i in range(repeats):
            order = (_engine_run, _torchvision_run) if i % 2 == 0 else (_torchvision_run, _engine_run)
            for run in order:
                # accuracy is read from the first pair; later torchvision runs skip their test pass
                result = run(config, num_workers, i == 0) if run is _torchvision_run else run(config)
                (engine if run is _engine_run else plain).append(result)
        data_only = {"engine": _engine_data_rate(config), "torchvision": _torchvision_data_rate(config, num_workers)}
    ratios = [e["images_per_s"] / p["images_per_s"] for e, p in zip(engine, plain)]
    return {"machine": _machine(device, n), "dataset": data_cfg.dataset, "notice": notice,
            "data_only_images_per_s": data_only,
            "model": "resnet-20 + eca (k=3)", "subset": subset, "epochs": epochs, "batch_size": batch_size,
            "repeats": repeats, "num_workers": num_workers,
            "engine": {"images_per_s": statistics.median(r["images_per_s"] for r in engine),
                       "top1": engine[0]["top1"], "layout": "channels_last"},
            "torchvision": {"images_per_s": statistics.median(r["images_per_s"] for r in plain),
                            "top1": plain[0]["top1"], "layout": "nchw"},
            "ratio": summarize(ratios), "top1_difference": engine[0]["top1"] - plain[0]["top1"]}


def _fashion_images(cfg) -> Any:
    from ..engine.data import _load_fashion_mnist

    return _load_fashion_mnist(cfg)


def _engine_run(config) -> dict[str, float]:
    result = run_trial(config)
    return {"images_per_s": result.images_per_second, "top1": result.top1}


def _engine_data_rate(config) -> float:
    """Images/s of the engine's batches alone (augmented, normalised, on the device), no model."""
    from ..engine.data import load_dataset

    device = resolve_device(config.runtime.device)
    data = load_dataset(config.data, config.seed, device)
    sync = synchronizer(device)
    start, seen = time.perf_counter(), 0
    for _, y in data.train_batches(1, config.train.batch_size):
        seen += len(y)
    sync()
    return seen / (time.perf_counter() - start)


def _torchvision_data_rate(config, num_workers: int) -> float:
    """Images/s of the torchvision DataLoader alone, no model."""
    loader, _, _ = _torchvision_loaders(config, num_workers)
    start, seen = time.perf_counter(), 0
    for _, y in loader:
        seen += len(y)
    return seen / (time.perf_counter() - start)


def _torchvision_loaders(config, num_workers: int):
    """(train loader, test set, input channels) of the plain torchvision pipeline."""
    from PIL import Image
    from torch.utils.data import DataLoader, Dataset
    from torchvision import transforms

    from ..engine.data import STATS, _synthetic, _channel_stats, split_indices

    if config.data.dataset == "fashion-mnist":
        images = _fashion_images(config.data)
        mean, std = STATS["fashion-mnist"]
        pad = 2
    else:
        images = _synthetic(config.data.synthetic_size)
        mean, std = _channel_stats(images.train_x)
        pad = 2
    train_idx, _ = split_indices(images.train_y, 0, config.data.subset, config.seed)
    size = images.train_x.shape[1]
    normalise = transforms.Normalize(mean, std)
    augment = transforms.Compose([transforms.RandomCrop(size, padding=pad), transforms.RandomHorizontalFlip(),
                                  transforms.ToTensor(), normalise])
    evaluate = transforms.Compose([transforms.ToTensor(), normalise])

    class ArrayImages(Dataset):
        """torchvision.datasets.FashionMNIST's __getitem__: a PIL image through the transform."""

        def __init__(self, x: Tensor, y: Tensor, transform) -> None:
            self.x, self.y, self.transform = x.numpy(), y.tolist(), transform

        def __len__(self) -> int:
            return len(self.y)

        def __getitem__(self, i: int):
            image = self.x[i]
            image = Image.fromarray(image[:, :, 0] if image.shape[2] == 1 else image)
            return self.transform(image), self.y[i]

    train_set = ArrayImages(images.train_x[train_idx], images.train_y[train_idx], augment)
    test_set = ArrayImages(images.test_x, images.test_y, evaluate)
    loader = DataLoader(train_set, batch_size=config.train.batch_size, shuffle=True, drop_last=True,
                        num_workers=num_workers, generator=torch.Generator().manual_seed(config.seed))
    return loader, test_set, images.train_x.shape[3]


def _torchvision_run(config, num_workers: int, evaluate: bool = True) -> dict[str, float | None]:
    """The same trial, written as a plain torchvision training script (``evaluate``: test accuracy too)."""
    from torch.utils.data import DataLoader

    device = resolve_device(config.runtime.device)
    loader, test_set, in_channels = _torchvision_loaders(config, num_workers)
    torch.manual_seed(config.seed)
    m = config.model
    model = build_model(m.backbone, m.attention, num_classes=10, in_channels=in_channels,
                        width=m.width, **m.attention_kwargs).to(device)
    t = config.train
    optimizer = torch.optim.SGD(model.parameters(), lr=t.lr, momentum=t.momentum, nesterov=t.nesterov,
                                weight_decay=t.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_multiplier(t, len(loader)))
    criterion = nn.CrossEntropyLoss()
    sync = synchronizer(device)
    seen, seconds = 0, 0.0
    for _ in range(t.epochs):
        model.train()
        sync()
        start = time.perf_counter()
        for x, y in loader:
            x, y = x.to(device), y.to(device)
            loss = criterion(model(x), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            scheduler.step()
            seen += len(y)
        sync()
        seconds += time.perf_counter() - start
    if not evaluate:
        return {"images_per_s": seen / seconds, "top1": None}
    model.eval()
    correct = 0
    with torch.no_grad():
        for x, y in DataLoader(test_set, batch_size=t.eval_batch_size, num_workers=num_workers):
            correct += int((model(x.to(device)).argmax(1).cpu() == y).sum())
    return {"images_per_s": seen / seconds, "top1": 100.0 * correct / len(test_set)}


# ------------------------------------------------------------------------------------------- sweep

SWEEP_STUDY = """
name = "bench-sweep"
description = "ecasweep bench sweep: a small grid on synthetic data"
mirrors = "Table 2"
layout = "table2"
baseline = "none"
seeds = {seeds}
backbones = ["{backbone}"]

[data]
dataset = "synthetic"
synthetic_size = {images}
subset = "none"

[train]
epochs = {epochs}
batch_size = 32
lr = 0.05
eval_batch_size = 256

[[arms]]
attention = "none"

[[arms]]
attention = "se"
r = 4

[[arms]]
attention = "eca"
k = 3
"""


def bench_sweep(workers: int | None = None, seeds: int = 2, backbone: str = "resnet-8", images: int = 4096,
                epochs: int = 1, repeats: int = 1, device: str = "cpu") -> dict:
    """A small grid study (3 arms x ``seeds`` on synthetic data) run with 1 worker and with ``workers``.

    Each run uses ``ecasweep.runner.run`` on a fresh SQLite storage in a temporary directory, as
    ``ecasweep run`` does: on the CPU one worker gets all cores, N workers are N processes with the
    threads split between them. Runs alternate (1, N, N, 1, ...). Per run:

    * trials per hour over the wall time of the whole run, start-up and the last worker's tail
      included (what a short run gets);
    * steady-state trials per hour, ``workers * 3600 / mean trial duration`` (Optuna's start to
      complete, claiming and storing included): what a long sweep gets once the workers are up;
    * start-up: from the run's start to each worker's first trial (importing torch, Optuna and the
      model code in a fresh process; the single worker runs in-process and pays none);
    * time outside training: per trial, Optuna's duration minus ``run_trial``'s wall_seconds
      (claiming, storing), and per worker all its time not spent in ``run_trial`` (start-up,
      claiming, storage, waiting at the end) shared out over the trials.
    """
    n = workers or (cpu_count() if resolve_device(device).type == "cpu" else 1)
    runs = {1: [], n: []} if n != 1 else {1: []}
    with tempfile.TemporaryDirectory(prefix="ecasweep-bench-") as tmp:
        study_file = Path(tmp) / "bench-sweep.toml"
        study_file.write_text(SWEEP_STUDY.format(seeds=seeds, backbone=backbone, images=images, epochs=epochs))
        for i in range(repeats):
            order = [1, n] if i % 2 == 0 else [n, 1]
            for count in dict.fromkeys(order):
                runs[count].append(_sweep_run(study_file, Path(tmp) / f"run-{i}-{count}", count, device))
    one, many = runs[1], runs[n]
    ratios = [m["trials_per_hour"] / o["trials_per_hour"] for o, m in zip(one, many)]
    steady = [m["steady_trials_per_hour"] / o["steady_trials_per_hour"] for o, m in zip(one, many)]
    return {"machine": _machine(resolve_device(device), torch.get_num_threads()), "workers": n,
            "cells": 3 * seeds, "backbone": backbone, "images": images, "epochs": epochs, "repeats": repeats,
            "one": _sweep_summary(one), "many": _sweep_summary(many), "ratio": summarize(ratios),
            "steady_ratio": summarize(steady)}


def _sweep_run(study_file: Path, folder: Path, workers: int, device: str) -> dict[str, float]:
    import warnings

    import optuna

    from ..sweep import runner

    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    folder.mkdir()
    url = f"sqlite:///{folder / 'bench.db'}"
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    started_at, start = datetime.now(), time.perf_counter()  # Optuna stamps trials with naive local time
    outcome = runner.run(str(study_file), overrides=[], storage_url=url, devices=[device], workers=workers,
                         checkpoint_dir=str(folder / "ckpt"))
    elapsed = time.perf_counter() - start
    trials = [t for t in outcome.study.get_trials(deepcopy=False) if t.state.name == "COMPLETE"]
    walls = [float(t.user_attrs["wall_seconds"]) for t in trials]
    durations = [(t.datetime_complete - t.datetime_start).total_seconds() for t in trials]
    first_start: dict[str, datetime] = {}
    for t in trials:
        worker = str(t.user_attrs.get("worker"))
        first_start[worker] = min(first_start.get(worker, t.datetime_start), t.datetime_start)
    return {"elapsed_s": elapsed, "trials": len(trials), "trials_per_hour": 3600 * len(trials) / elapsed,
            "steady_trials_per_hour": 3600 * workers / statistics.mean(durations),
            "startup_s": statistics.median((s - started_at).total_seconds() for s in first_start.values()),
            "trial_s": statistics.median(walls),
            "in_trial_overhead_s": statistics.median(d - w for d, w in zip(durations, walls)),
            "outside_training_per_trial_s": (elapsed * workers - sum(walls)) / max(1, len(trials))}


def _sweep_summary(runs: list[dict[str, float]]) -> dict[str, float]:
    summary = {key: statistics.median(r[key] for r in runs) for key in runs[0]}
    summary["in_trial_overhead_pct_of_30s"] = 100 * summary["in_trial_overhead_s"] / 30
    summary["outside_training_pct_of_30s"] = 100 * summary["outside_training_per_trial_s"] / 30
    return summary


# ------------------------------------------------------------------------------------------ all four

BENCHMARKS = ("modules", "models", "engine", "sweep")


def run_all(quick: bool = False, device: str = "auto", which: Sequence[str] = BENCHMARKS) -> dict[str, dict]:
    """Every benchmark in ``which`` with its default settings (``quick``: tiny sizes, seconds)."""
    settings = quick_settings() if quick else {name: {} for name in BENCHMARKS}
    functions = {"modules": bench_modules, "models": bench_models, "engine": bench_engine, "sweep": bench_sweep}
    results = {}
    for name in which:
        kwargs = dict(settings[name])
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


# ---------------------------------------------------------------------------------------- rendering

def render(results: dict[str, dict], console=None) -> None:
    """Print each benchmark's results as Rich tables."""
    from rich.console import Console

    console = console or Console()
    for name, fn in (("modules", _render_modules), ("models", _render_models), ("engine", _render_engine),
                     ("sweep", _render_sweep)):
        if name in results:
            for table in fn(results[name]):
                console.print(table)


def _machine_line(m: dict) -> str:
    load = f", load {m['load_average']:.1f}" if m.get("load_average") is not None else ""
    return f"{m['device_name']}, {m['threads']} thread(s), torch {m['torch']}{load}"


def _spread(r: dict[str, float], fmt: str = "{:.2f}") -> tuple[str, str, str]:
    return fmt.format(r["median"]), f"{fmt.format(r['q1'])}-{fmt.format(r['q3'])}", \
        f"{fmt.format(r['min'])}-{fmt.format(r['max'])}"


def _table(title: str, columns: Sequence[str]):
    """A table for 80 columns: no outer border, and the first column (the names) never cut."""
    from rich import box
    from rich.table import Table

    table = Table(title=title, box=box.SIMPLE_HEAD, pad_edge=False)
    for i, column in enumerate(columns):
        table.add_column(column, justify="left" if i == 0 else "right", no_wrap=i == 0)
    return table


def _layout(name: str) -> str:
    """Memory layouts by their short names (channels_last is NHWC in memory): tables fit 80 columns."""
    return {"channels_last": "NHWC", "nchw": "NCHW"}.get(name, name)


def _render_modules(r: dict) -> list:
    table = _table(f"eca fwd+bwd: reference / ours ({_machine_line(r['machine'])})",
                   ("shape", "layout", "ref ms", "ours ms", "ratio", "IQR", "min-max", "n"))
    for row in r["eca"]:
        table.add_row("x".join(map(str, row["shape"])), _layout(row["layout"]), f"{row['ref_ms']:.2f}",
                      f"{row['ours_ms']:.2f}", *_spread(row["ratio"]), str(row["repeats"]))
    tables = [table]
    if r["variants"]:  # one row per variant (there are many), one column per shape and layout (a few)
        names = list(r["variants"][0]["ms"])
        table = _table("every variant, fwd+bwd median ms",
                       ("variant", *("x".join(map(str, row["shape"])) + f" {_layout(row['layout'])}"
                                     for row in r["variants"])))
        for name in names:
            table.add_row(name, *(f"{row['ms'][name]:.2f}" for row in r["variants"]))
        tables.append(table)
    return tables


def _pct(r: dict | None) -> str:
    return "" if r is None else f"{100 * r['median']:+.1f}% [{100 * r['q1']:+.1f}, {100 * r['q3']:+.1f}]"


def _render_models(r: dict) -> list:
    table = _table(f"{r['backbone']}, batch {r['batch_size']}, input {r['input'][0]}x{r['input'][1]}px "
                   f"({_machine_line(r['machine'])})",
                   ("attention", "params", "attn params", "GFLOPs", "train img/s", "train overhead [IQR]",
                    "infer img/s", "infer overhead [IQR]"))
    for row in r["rows"]:
        table.add_row(row["attention"], f"{row['params']:,}", f"{row['attention_params']:,}",
                      f"{row['flops'] / 2e9:.4f}", f"{row['train_images_per_s']:.0f}", _pct(row["train_overhead"]),
                      f"{row['infer_images_per_s']:.0f}", _pct(row["infer_overhead"]))
    # The paper's overheads beside its own figures, in a table of their own: both fit 80 columns.
    paper_table = _table(f"the paper's Table 3, {r['paper_backbone']} (4x RTX 2080Ti)",
                         ("method", "params (M)", "GFLOPs", "train FPS", "infer FPS", "train overhead",
                          "infer overhead"))
    for variant, p in r["paper"].items():
        paper_table.add_row(variant, f"{p['params_m']:.2f}", f"{p['gflops']:.2f}", f"{p['train_fps']}",
                            f"{p['infer_fps']}", f"{100 * p['train_overhead']:+.1f}%",
                            f"{100 * p['infer_overhead']:+.1f}%")
    return [table, paper_table]


def _render_engine(r: dict) -> list:
    title = (f"trial engine vs torchvision pipeline: {r['model']}, {r['dataset']} {r['subset']} images x "
             f"{r['epochs']} epoch(s), batch {r['batch_size']} ({_machine_line(r['machine'])})")
    table = _table(title, ("pipeline", "train img/s", "test top-1 %"))
    table.add_row("ecasweep engine (channels_last)", f"{r['engine']['images_per_s']:.0f}", f"{r['engine']['top1']:.2f}")
    table.add_row(f"torchvision DataLoader (NCHW, {r['num_workers']} workers)",
                  f"{r['torchvision']['images_per_s']:.0f}", f"{r['torchvision']['top1']:.2f}")
    data = r["data_only_images_per_s"]
    table.add_row("data alone, no model: engine / torchvision", f"{data['engine']:.0f} / {data['torchvision']:.0f}", "")
    median, iqr, span = _spread(r["ratio"])
    table.add_row("ratio engine / torchvision", f"{median} [{iqr}] n={r['repeats']}",
                  f"diff {r['top1_difference']:+.2f}")
    tables = [table]
    if r.get("notice"):
        tables.append(f"[yellow]notice:[/] {r['notice']}")
    return tables


def _render_sweep(r: dict) -> list:
    table = _table(f"sweep: {r['cells']} cells of {r['backbone']} on synthetic data, 1 vs {r['workers']} workers "
                   f"({_machine_line(r['machine'])})",
                   ("workers", "trials/h", "steady trials/h", "start-up s", "median trial s", "in-trial overhead s",
                    "outside training per trial s", "% of a 30 s trial"))
    for label, s in (("1", r["one"]), (str(r["workers"]), r["many"])):
        table.add_row(label, f"{s['trials_per_hour']:.0f}", f"{s['steady_trials_per_hour']:.0f}",
                      f"{s['startup_s']:.1f}", f"{s['trial_s']:.2f}", f"{s['in_trial_overhead_s']:.3f}",
                      f"{s['outside_training_per_trial_s']:.2f}", f"{s['outside_training_pct_of_30s']:.1f}%")
    median, iqr, _ = _spread(r["ratio"])
    steady, steady_iqr, _ = _spread(r["steady_ratio"])
    table.add_row(f"ratio {r['workers']} / 1", f"{median} [{iqr}] n={r['repeats']}", f"{steady} [{steady_iqr}]",
                  "", "", "", "", "")
    return [table]


def main(argv: Sequence[str] | None = None) -> None:  # pragma: no cover - used by benchmarks/ scripts
    """Run ``python -m ecasweep.bench [--quick]``: all four benchmarks."""
    argv = list(sys.argv[1:] if argv is None else argv)
    render(run_all(quick="--quick" in argv))


if __name__ == "__main__":  # pragma: no cover
    main()
