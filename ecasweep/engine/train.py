"""One trial: build the model, train it with the recipe, evaluate, checkpoint, return the metrics.

``run_trial(config, on_epoch=None) -> TrialResult`` is the unit a sweep runs hundreds of times, so
it is written for speed (device-resident data, channels_last, bf16 autocast on GPU, no host sync per
step on GPU) and for exact reproducibility: the seed fixes initialisation, data order and
augmentation, the data order depends on (seed, epoch) only, and a trial restarted with the same
identity resumes from its last checkpoint and ends with the same metrics as an uninterrupted run.

Example:
    >>> from ecasweep.engine.config import TrialConfig, ModelConfig, DataConfig, TrainConfig
    >>> cfg = TrialConfig(ModelConfig("resnet-8", "eca", {"k": 3}), DataConfig("synthetic"),
    ...                   TrainConfig(epochs=1), seed=0)
    >>> result = run_trial(cfg)                       # doctest: +SKIP
    >>> result.top1                                   # doctest: +SKIP
    93.75
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import platform
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import torch
import torch.nn.functional as F
from torch import nn

from .. import __version__
from ..models.backbones import build_model, check_model_size, summarize
from .checkpoint import CheckpointStore
from .config import TrainConfig, TrialConfig
from .data import load_dataset
from .devices import autocast_dtype, resolve_device
from ..errors import NonFiniteLossError

EpochCallback = Callable[[int, dict[str, Any]], None]

#: On a GPU the loss is checked for NaN/inf every this many steps (a host sync); on CPU every step.
GPU_FINITE_CHECK_EVERY = 25


@dataclass
class TrialResult:
    """Final metrics of a trial (accuracies in percent, 0-100) and how it ran."""

    top1: float
    top5: float
    loss: float
    epochs: int
    images_per_second: float
    wall_seconds: float
    total_params: int
    attention_params: int
    flops: int
    kernel_sizes: list[int] | None
    device: str
    val_top1: float | None = None
    val_loss: float | None = None
    #: test images per second of the last evaluation (batches of eval_batch_size, the model in eval mode)
    infer_images_per_second: float | None = None
    resumed_from_epoch: int = 0
    epoch_seconds: list[float] = field(default_factory=list)
    history: list[dict[str, Any]] = field(default_factory=list)
    identity: str = ""
    versions: dict[str, str] = field(default_factory=dict)

    def metrics(self) -> dict[str, Any]:
        """JSON-friendly metrics (what the sweep stores with the trial)."""
        return dataclasses.asdict(self)


def versions() -> dict[str, str]:
    import torchvision

    return {"ecasweep": __version__, "torch": torch.__version__, "torchvision": torchvision.__version__,
            "python": platform.python_version()}


#: Devices with PyTorch's fused SGD kernel (one kernel for every parameter instead of a Python loop
#: over them): on the CPU it takes resnet-8's optimizer step from 1.6 ms to 0.3 ms.
FUSED_SGD_DEVICES = ("cpu", "cuda")


def make_optimizer(model: nn.Module, train: TrainConfig, device: torch.device) -> torch.optim.SGD:
    """SGD as the recipe says; PyTorch's fused implementation where the device has it."""
    return torch.optim.SGD(model.parameters(), lr=train.lr, momentum=train.momentum, nesterov=train.nesterov,
                           weight_decay=train.weight_decay, fused=True if device.type in FUSED_SGD_DEVICES else None)


def lr_multiplier(train: TrainConfig, steps_per_epoch: int) -> Callable[[int], float]:
    """The schedule as a function of the optimiser step (per-step, so short trials are smooth)."""
    total = train.epochs * steps_per_epoch
    warmup = int(round(train.warmup_epochs * steps_per_epoch))

    def schedule(step: int) -> float:
        epoch = step / steps_per_epoch
        if train.schedule == "step":
            m = train.step_gamma ** int(epoch // train.step_size)
        elif train.schedule == "exponential":
            m = train.step_gamma ** int(epoch)
        elif train.schedule == "cosine":
            m = 0.5 * (1 + math.cos(math.pi * min(step, total) / total))
        elif train.schedule == "onecycle":
            # Step 0 already trains at lr / peak (a step at lr 0 would be wasted); the peak is reached
            # at step peak - 1 and the last step trains at lr / (total - peak).
            peak = warmup or max(1, int(0.15 * total))
            return (step + 1) / peak if step < peak else max(0.0, (total - step) / max(1, total - peak))
        else:
            m = 1.0
        return m * min(1.0, (step + 1) / warmup) if warmup else m

    return schedule


class _Evaluator:
    """Top-1, top-5 and mean loss over a split, accumulated on the device (one sync at the end)."""

    def __init__(self, model: nn.Module, autocast: Callable[[], Any], num_classes: int) -> None:
        self.model, self.autocast, self.k = model, autocast, min(5, num_classes)

    @torch.inference_mode()
    def __call__(self, batches: Iterator[tuple[torch.Tensor, torch.Tensor]]) -> dict[str, float]:
        started = time.perf_counter()
        was_training = self.model.training
        self.model.eval()
        totals = None
        for x, y in batches:
            with self.autocast():
                logits = self.model(x)
            logits = logits.float()
            topk = logits.topk(self.k, dim=1).indices
            hits = topk == y[:, None]
            batch = torch.stack([hits[:, 0].sum(), hits.any(1).sum(),
                                 F.cross_entropy(logits, y, reduction="sum"), torch.tensor(len(y), device=y.device)])
            totals = batch.double() if totals is None else totals + batch.double()
        self.model.train(was_training)
        if totals is None:
            return {"top1": float("nan"), "top5": float("nan"), "loss": float("nan")}
        top1, top5, loss, n = totals.tolist()  # a host sync: the timing below includes the device's work
        return {"top1": 100.0 * top1 / n, "top5": 100.0 * top5 / n, "loss": loss / n,
                "infer_images_per_second": n / (time.perf_counter() - started)}


def _progress(quiet: bool, total: int, description: str):
    if quiet:
        return contextlib.nullcontext(None)
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                        TextColumn("{task.fields[status]}"), TimeRemainingColumn(), transient=True)
    return _ProgressTask(progress, total, description)


class _ProgressTask:
    def __init__(self, progress, total: int, description: str) -> None:
        self.progress, self.total, self.description = progress, total, description

    def __enter__(self):
        self.progress.__enter__()
        self.task = self.progress.add_task(self.description, total=self.total, status="")
        return self

    def __exit__(self, *exc) -> None:
        self.progress.__exit__(*exc)

    def advance(self, status: str) -> None:
        self.progress.update(self.task, advance=1, status=status)


def run_trial(config: TrialConfig, on_epoch: EpochCallback | None = None) -> TrialResult:
    """Train and evaluate one model as ``config`` says; resume from a checkpoint if one exists.

    ``on_epoch(epoch, metrics)`` is called after every epoch (1-based) with the metrics so far; it
    may raise (e.g. ``optuna.TrialPruned``) to stop the trial. A NaN/inf training loss raises
    ``NonFiniteLossError`` with the epoch and step.
    """
    started = time.perf_counter()
    rt = config.runtime
    device = resolve_device(rt.device)
    if rt.threads:
        torch.set_num_threads(rt.threads)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = rt.cudnn_benchmark
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    memory_format = torch.channels_last if rt.channels_last else torch.contiguous_format
    amp_dtype = autocast_dtype(device, rt.amp)

    def autocast():
        if amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device.type, dtype=amp_dtype)

    data = load_dataset(config.data, config.seed, device, channels_last=rt.channels_last)
    # Before anything is allocated: a typo in the width must not ask for terabytes.
    check_model_size(config.model.backbone, data.num_classes, data.in_channels, config.model.width)
    torch.manual_seed(config.seed)  # initialisation; data order has its own (seed, epoch) generator
    model = build_model(config.model.backbone, config.model.attention, num_classes=data.num_classes,
                        in_channels=data.in_channels, width=config.model.width, **config.model.attention_kwargs)
    summary = summarize(model, (data.in_channels, *data.image_size))
    model = model.to(device, memory_format=memory_format)
    train = config.train
    optimizer = make_optimizer(model, train, device)
    steps = data.steps_per_epoch(train.batch_size)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_multiplier(train, steps))
    scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)
    criterion = nn.CrossEntropyLoss(label_smoothing=train.label_smoothing)
    evaluate = _Evaluator(model, autocast, data.num_classes)
    forward = torch.compile(model) if rt.compile else model

    identity = config.identity()
    store = CheckpointStore(rt.checkpoint_dir, identity) if rt.checkpoint_dir else None
    history: list[dict[str, Any]] = []
    epoch_seconds: list[float] = []
    start_epoch, train_images, train_time = 0, 0, 0.0
    loaded = store.load_latest() if store else None
    if loaded:
        start_epoch, state = loaded
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        scaler.load_state_dict(state["scaler"])
        torch.set_rng_state(state["cpu_rng"])
        history, epoch_seconds = list(state["history"]), list(state["epoch_seconds"])
        train_images, train_time = int(state["train_images"]), float(state["train_time"])

    model.train()
    for epoch in range(start_epoch + 1, train.epochs + 1):
        epoch_start = time.perf_counter()
        loss_sum = torch.zeros((), device=device)
        seen = 0
        with _progress(rt.quiet, steps, f"epoch {epoch}/{train.epochs}") as bar:
            for step, (x, y) in enumerate(data.train_batches(epoch, train.batch_size), start=1):
                with autocast():
                    loss = criterion(forward(x), y)
                optimizer.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()
                scheduler.step()
                loss_sum += loss.detach()
                seen += len(y)
                if device.type == "cpu" or step % GPU_FINITE_CHECK_EVERY == 0 or step == steps:
                    _check_finite(loss, epoch, step)
                if bar is not None:
                    bar.advance(f"loss {loss.item():.3f}")
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        seconds = time.perf_counter() - epoch_start
        train_images, train_time = train_images + seen, train_time + seconds
        epoch_seconds.append(seconds)
        metrics: dict[str, Any] = {"epoch": epoch, "train_loss": loss_sum.item() / max(1, step),
                                   "images_per_second": seen / seconds, "lr": optimizer.param_groups[0]["lr"]}
        last = epoch == train.epochs
        if last or (train.eval_every and epoch % train.eval_every == 0):
            metrics.update(evaluate(data.eval_batches("test", train.eval_batch_size)))
        if data.has_val and (last or train.eval_every and epoch % train.eval_every == 0):
            val = evaluate(data.eval_batches("val", train.eval_batch_size))
            metrics.update(val_top1=val["top1"], val_loss=val["loss"])
        history.append(metrics)
        if store and (last or epoch % rt.checkpoint_every == 0):
            store.save(epoch, {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                               "scheduler": scheduler.state_dict(), "scaler": scaler.state_dict(),
                               "cpu_rng": torch.get_rng_state(), "history": history,
                               "epoch_seconds": epoch_seconds, "train_images": train_images,
                               "train_time": train_time, "identity": identity})
        if on_epoch is not None:
            on_epoch(epoch, dict(metrics))

    final = history[-1]
    result = TrialResult(
        top1=final["top1"], top5=final["top5"], loss=final["loss"], epochs=train.epochs,
        images_per_second=train_images / train_time if train_time else 0.0,
        wall_seconds=time.perf_counter() - started, total_params=summary["total_params"],
        attention_params=summary["attention_params"], flops=summary["flops"],
        kernel_sizes=summary["kernel_sizes"], device=str(device), val_top1=final.get("val_top1"),
        val_loss=final.get("val_loss"), infer_images_per_second=final.get("infer_images_per_second"),
        resumed_from_epoch=start_epoch, epoch_seconds=epoch_seconds,
        history=history, identity=identity, versions=versions())
    if store and not rt.keep_checkpoints:
        store.clear()
    return result


def _check_finite(loss: torch.Tensor, epoch: int, step: int) -> None:
    value = loss.item()
    if not math.isfinite(value):
        raise NonFiniteLossError(epoch, step, value)
