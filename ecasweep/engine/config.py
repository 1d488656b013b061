"""The typed, validated configuration of one trial: model, data, recipe, seed, runtime.

A ``TrialConfig`` is everything ``run_trial`` needs. Each part validates itself on construction and
raises ``ConfigError`` naming the field. ``TrialConfig.identity()`` hashes what changes results (not
the runtime knobs such as the checkpoint directory), so that a restarted trial finds its checkpoint.

Example:
    >>> cfg = TrialConfig(model=ModelConfig("resnet-20", "eca", {"k": 3}),
    ...                   data=DataConfig("synthetic"), train=TrainConfig(epochs=1), seed=0)
    >>> len(cfg.identity())
    16
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass, field
from typing import Any, Mapping

from ..errors import ConfigError

DATASETS = ("fashion-mnist", "cifar10", "cifar100", "imagenet", "imagefolder", "synthetic")
SCHEDULES = ("step", "cosine", "onecycle", "exponential", "constant")
AMP_MODES = ("auto", "bf16", "fp16", "off")


def _positive(section: str, name: str, value: Any, kind: type = int, allow_zero: bool = False) -> None:
    ok_type = isinstance(value, kind) and not isinstance(value, bool)
    if kind is float:  # NaN and infinity compare false with everything: refused by name
        ok_type = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not ok_type or value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        noun = "an integer" if kind is int else "a finite number"
        raise ConfigError(f"{section}.{name}", f"expected {noun} {bound}, got {value!r}")


def _choice(section: str, name: str, value: Any, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(f"{section}.{name}", f"expected one of {', '.join(choices)}, got {value!r}")


@dataclass(frozen=True)
class ModelConfig:
    """Backbone and attention: ``build_model(backbone, attention, **attention_kwargs, width=width)``."""

    backbone: str = "resnet-20"
    attention: str = "none"
    attention_kwargs: Mapping[str, Any] = field(default_factory=dict)
    width: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.backbone, str) or not self.backbone:
            raise ConfigError("model.backbone", f"expected a backbone name, got {self.backbone!r}")
        if not isinstance(self.attention, str) or not self.attention:
            raise ConfigError("model.attention", f"expected an attention name, got {self.attention!r}")
        if not isinstance(self.attention_kwargs, Mapping):
            raise ConfigError("model.attention_kwargs", f"expected a table, got {self.attention_kwargs!r}")
        object.__setattr__(self, "attention_kwargs", dict(self.attention_kwargs))
        if self.width is not None:
            _positive("model", "width", self.width)


@dataclass(frozen=True)
class DataConfig:
    """Which data, how much of it, and how it is augmented.

    ``subset``: number of training images kept (stratified by class, chosen from the seed), None for
    all. ``val_split``: images held out of the training split for validation (0 for none); the test
    set is always the dataset's official test split. ``synthetic_size``: training images of the
    ``synthetic`` dataset (its test split is a quarter of that).
    """

    dataset: str = "fashion-mnist"
    data_dir: str | None = None
    subset: int | None = None
    val_split: int = 0
    augment: bool = True
    synthetic_size: int = 2048
    num_workers: int = 4

    def __post_init__(self) -> None:
        _choice("data", "dataset", self.dataset, DATASETS)
        if self.subset is not None:
            _positive("data", "subset", self.subset)
        _positive("data", "val_split", self.val_split, allow_zero=True)
        _positive("data", "synthetic_size", self.synthetic_size)
        _positive("data", "num_workers", self.num_workers, allow_zero=True)
        if not isinstance(self.augment, bool):
            raise ConfigError("data.augment", f"expected true or false, got {self.augment!r}")


@dataclass(frozen=True)
class TrainConfig:
    """The optimisation recipe: SGD (momentum, optional Nesterov), weight decay, schedule.

    Schedules: ``step`` (lr * step_gamma every step_size epochs, the paper's), ``cosine``,
    ``onecycle`` (linear warm-up then linear decay), ``exponential`` (lr * step_gamma ** epoch, the
    paper's MobileNetV2 recipe), ``constant``. ``warmup_epochs`` adds a linear warm-up to any of
    them. Schedules advance per step, so short trials get a smooth curve.
    """

    epochs: int = 10
    batch_size: int = 128
    lr: float = 0.1
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 5e-4
    label_smoothing: float = 0.0
    schedule: str = "cosine"
    step_size: int = 30
    step_gamma: float = 0.1
    warmup_epochs: float = 0.0
    eval_every: int = 0
    eval_batch_size: int = 1000

    def __post_init__(self) -> None:
        _positive("train", "epochs", self.epochs)
        _positive("train", "batch_size", self.batch_size)
        _positive("train", "lr", self.lr, float)
        _positive("train", "momentum", self.momentum, float, allow_zero=True)
        _positive("train", "weight_decay", self.weight_decay, float, allow_zero=True)
        _positive("train", "step_size", self.step_size)
        _positive("train", "step_gamma", self.step_gamma, float)
        _positive("train", "warmup_epochs", self.warmup_epochs, float, allow_zero=True)
        _positive("train", "eval_every", self.eval_every, allow_zero=True)
        _positive("train", "eval_batch_size", self.eval_batch_size)
        _choice("train", "schedule", self.schedule, SCHEDULES)
        if not isinstance(self.nesterov, bool):
            raise ConfigError("train.nesterov", f"expected true or false, got {self.nesterov!r}")
        if self.nesterov and self.momentum == 0:
            raise ConfigError("train.nesterov", "Nesterov momentum needs train.momentum > 0")
        if not (isinstance(self.label_smoothing, (int, float)) and 0 <= self.label_smoothing < 1):
            raise ConfigError("train.label_smoothing", f"expected a number in [0, 1), got {self.label_smoothing!r}")


#: The paper's ImageNet recipes (section 4.1; see ecasweep/reference/eca_net_paper.toml).
RECIPES: dict[str, TrainConfig] = {
    "imagenet-resnet": TrainConfig(epochs=100, batch_size=256, lr=0.1, momentum=0.9, weight_decay=1e-4,
                                   schedule="step", step_size=30, step_gamma=0.1),
    "imagenet-mobilenetv2": TrainConfig(epochs=400, batch_size=96, lr=0.045, momentum=0.9,
                                        weight_decay=4e-5, schedule="exponential", step_gamma=0.98),
}


@dataclass(frozen=True)
class RuntimeConfig:
    """How a trial runs, not what it computes (except ``amp``, which does change results slightly).

    ``device``: cpu, cuda, cuda:N, mps or auto. ``amp``: auto (bf16 on a GPU that supports it, off
    on CPU), bf16, fp16, off. ``threads``: CPU threads for this trial (None: all cores).
    ``checkpoint_dir``: where per-epoch checkpoints go (None: no checkpoints). ``reuse``: a cell
    another study of the storage finished with the same configuration is read from it, not trained
    again (``sweep.reuse``).
    """

    device: str = "auto"
    channels_last: bool = True
    amp: str = "auto"
    cudnn_benchmark: bool = True
    compile: bool = False
    threads: int | None = None
    checkpoint_dir: str | None = None
    checkpoint_every: int = 1
    keep_checkpoints: bool = False
    quiet: bool = True
    reuse: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.device, str) or not self.device:
            raise ConfigError("runtime.device", f"expected cpu, cuda, cuda:N, mps or auto, got {self.device!r}")
        _choice("runtime", "amp", self.amp, AMP_MODES)
        if self.threads is not None:
            _positive("runtime", "threads", self.threads)
        _positive("runtime", "checkpoint_every", self.checkpoint_every)


@dataclass(frozen=True)
class TrialConfig:
    """One trial: a model trained with a recipe on a dataset from a seed."""

    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    seed: int = 0
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)

    def __post_init__(self) -> None:
        for name, kind in (("model", ModelConfig), ("data", DataConfig), ("train", TrainConfig),
                           ("runtime", RuntimeConfig)):
            if not isinstance(getattr(self, name), kind):
                raise ConfigError(name, f"expected a {kind.__name__}, got {type(getattr(self, name)).__name__}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ConfigError("seed", f"expected an integer >= 0, got {self.seed!r}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def identity(self) -> str:
        """A short hash of what changes the trial's results (model, data, recipe, seed, amp)."""
        data = dataclasses.asdict(self.data)
        data.pop("data_dir"), data.pop("num_workers")
        key = {"model": dataclasses.asdict(self.model), "data": data,
               "train": dataclasses.asdict(self.train), "seed": self.seed, "amp": self.runtime.amp}
        return hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:16]

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "TrialConfig":
        """Inverse of ``to_dict``; unknown keys raise ``ConfigError`` naming them."""
        parts = {}
        for name, kind in (("model", ModelConfig), ("data", DataConfig), ("train", TrainConfig),
                           ("runtime", RuntimeConfig)):
            section = dict(d.get(name, {}))
            known = {f.name for f in dataclasses.fields(kind)}
            unknown = sorted(set(section) - known)
            if unknown:
                raise ConfigError(f"{name}.{unknown[0]}", f"unknown key; expected one of {', '.join(sorted(known))}")
            parts[name] = kind(**section)
        unknown = sorted(set(d) - {"model", "data", "train", "runtime", "seed"})
        if unknown:
            raise ConfigError(unknown[0], "unknown key; expected model, data, train, runtime or seed")
        return cls(seed=d.get("seed", 0), **parts)
