"""``bench models``: the paper's Table 3 on this machine (parameters, FLOPs, training and inference
images/s of a backbone with each variant), with the paper's figures beside."""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from ..models.timm_attention import timm_available
from ..models.backbones import build_model, summarize as summarize_model
from ..engine.config import TrainConfig
from ..engine.devices import resolve_device
from ..engine.train import make_optimizer
from ..report.efficiency import TABLE3_METHODS
from ..report.labels import paper_reference

from .timing import (Timer, synchronizer, time_pair, time_one, _threads, _cpu_threads, _machine)
from .modules import VARIANT_KWARGS


#: attention variants of ``bench models``, each at its paper setting
MODEL_VARIANTS = ("none", "se", "eca", "eca-ns", "se-var1", "se-var2", "se-var3", "se-gc", "ceca")


#: timm's modules of the paper's Table 3 comparison, added to ``bench models`` when timm is installed
TIMM_MODEL_VARIANTS = ("cbam", "ge-theta-minus", "gc")




def model_variants() -> tuple[str, ...]:
    """``MODEL_VARIANTS``, then timm's Table 3 modules when timm is installed."""
    return MODEL_VARIANTS + (TIMM_MODEL_VARIANTS if timm_available() else ())


def paper_speeds(backbone: str) -> tuple[str, dict[str, dict[str, float]]]:
    """The paper's train/inference FPS per variant for ``backbone``, or ResNet-50's (GPU) when the
    paper has no row for it; returns (the backbone whose figures they are, rows by variant)."""
    rows = paper_reference()["table3"]
    source = backbone if any(r["backbone"] == backbone for r in rows) else "resnet-50"
    by_variant = {}
    for variant, methods in TABLE3_METHODS.items():
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
