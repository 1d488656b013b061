"""The ``ecasweep train`` command line that runs exactly one trial configuration.

``ecasweep train`` takes every field of the model, the data and the recipe under the name a study
file uses for it (``--set train.lr=0.05`` in a study is ``--lr 0.05``, ``data.augment = false`` is
``--no-augment``), so one cell of a study can be rerun on its own: ``train_args`` lists the options
of a ``TrialConfig``, and ``ecasweep show STUDY --cell ID`` prints them. Every field is written out,
defaults included, so the command stays exact if a default changes.

Example:
    >>> from ecasweep.engine.config import DataConfig, ModelConfig, TrainConfig, TrialConfig
    >>> cfg = TrialConfig(ModelConfig("resnet-8", "eca", {"k": 3}), DataConfig("synthetic"), TrainConfig(epochs=1))
    >>> " ".join(train_args(cfg)[:8])
    '--backbone resnet-8 --attention eca --k 3 --dataset synthetic'
"""

from __future__ import annotations

import dataclasses
import json
import shlex
from typing import Any

from ..errors import EcasweepError
from .config import RECIPES, DataConfig, ModelConfig, RuntimeConfig, TrainConfig, TrialConfig

#: runtime fields that change results (besides the device and thread count, given by the caller)
_RUNTIME = ("amp",)
#: keyword arguments of the built-in attention modules that ``ecasweep train`` has an option for; any
#: other (a user's module's) is given as ``--kwarg NAME=VALUE``, the value as JSON
ATTENTION_OPTIONS = ("k", "gamma", "beta", "min_k", "r", "groups", "group_size", "bias", "round_to", "spatial_k",
                     "extent")


def option(name: str, value: Any) -> list[str]:
    """``--name value`` for one field (``--name`` / ``--no-name`` for a flag; nothing for None)."""
    flag = "--" + name.replace("_", "-")
    if value is None:
        return []
    if isinstance(value, bool):
        return [flag if value else f"--no-{name.replace('_', '-')}"]
    if isinstance(value, (list, tuple)):
        return [flag, ",".join(str(v) for v in value)]
    return [flag, repr(value) if isinstance(value, float) else str(value)]


def train_args(config: TrialConfig, device: str | None = None, threads: int | None = None) -> list[str]:
    """The options of ``ecasweep train`` that train ``config`` (on ``device`` with ``threads``)."""
    model = config.model
    args = option("backbone", model.backbone) + option("attention", model.attention)
    for key, value in model.attention_kwargs.items():
        args += option(key, value) if key in ATTENTION_OPTIONS else ["--kwarg", f"{key}={json.dumps(value)}"]
    args += option("width", model.width)
    for part in (config.data, config.train):
        for f in dataclasses.fields(part):
            args += option(f.name, getattr(part, f.name))
    args += option("seed", config.seed)
    for name in _RUNTIME:
        args += option(name, getattr(config.runtime, name))
    return args + option("device", device) + option("threads", threads)


def trial_config(backbone: str, attention: str, attention_kwargs: dict[str, Any], width: int | None,
                 data: DataConfig, recipe: str | None, epochs: int | None, train: dict[str, Any], seed: int,
                 runtime: RuntimeConfig) -> TrialConfig:
    """The ``TrialConfig`` of ``ecasweep train``'s options (``train_args`` the other way round).

    ``attention_kwargs`` and ``train`` hold the options given (None: not given); the recipe's fields
    (``--recipe``, else the defaults) fill the rest, and ``epochs``, when given, overrides them.
    """
    if recipe is not None and recipe not in RECIPES:
        raise EcasweepError(f"--recipe: unknown recipe {recipe!r}; expected one of {', '.join(RECIPES)}")
    base = RECIPES[recipe] if recipe else TrainConfig()
    given = {key: value for key, value in train.items() if value is not None}
    if epochs is not None:
        given["epochs"] = epochs
    model = ModelConfig(backbone, attention, {a: v for a, v in attention_kwargs.items() if v is not None}, width)
    return TrialConfig(model, data, dataclasses.replace(base, **given), seed, runtime)


def parse_kwargs(given: list[str] | None) -> dict[str, Any]:
    """``--kwarg NAME=VALUE`` options as keyword arguments: VALUE is read as JSON (``0.7``, ``true``,
    ``[3, 5]``, ``"max"``), else kept as the text it is (``mode=max``).

    >>> parse_kwargs(["alpha=0.7", "mode=max", "ks=[3, 5]"])
    {'alpha': 0.7, 'mode': 'max', 'ks': [3, 5]}
    """
    out: dict[str, Any] = {}
    for item in given or []:
        name, sep, text = item.partition("=")
        name = name.strip()
        if not sep or not name.isidentifier():
            raise EcasweepError(f"--kwarg {item!r}: expected NAME=VALUE, a keyword argument of the attention "
                                "module, e.g. --kwarg alpha=0.7")
        if name in ATTENTION_OPTIONS:
            raise EcasweepError(f"--kwarg {name}: use --{name.replace('_', '-')}, ecasweep train's own option for it")
        try:
            out[name] = json.loads(text)
        except ValueError:
            out[name] = text
    return out


def command_line(args: list[str]) -> str:
    """``ecasweep train ...`` quoted for a POSIX shell."""
    return shlex.join(["ecasweep", "train", *args])
