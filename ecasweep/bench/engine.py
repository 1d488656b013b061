"""``bench engine``: images/s of ``run_trial`` against a plain torchvision pipeline on the same model,
recipe and images."""

from __future__ import annotations

import statistics
import time
from typing import Any

import torch
from torch import Tensor, nn

from ..models.backbones import build_model
from ..engine.config import DataConfig, ModelConfig, RuntimeConfig, TrainConfig, TrialConfig
from ..engine.devices import resolve_device
from ..engine.train import lr_multiplier, run_trial

from .timing import (summarize, synchronizer, _threads, _cpu_threads, _machine)


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
