"""What a study file may hold: its keys, the arm arguments, and the helpers every part of the loader shares."""

from __future__ import annotations

import dataclasses
import difflib
import json
from typing import Any, Iterable

from ..engine.config import DataConfig, TrainConfig


LAYOUTS = ("table2", "figure4", "gamma-beta", "search", "table3")
SAMPLERS = ("tpe", "random")
PRUNERS = ("median", "hyperband", "none")
#: arm arguments, in the order canonical ids list them
ARM_ARGS = ("r", "groups", "group_size", "k", "gamma", "beta", "min_k", "bias", "round_to", "spatial_k", "extent")
#: arguments that only matter for k = "adaptive"
ADAPTIVE_ONLY = ("gamma", "beta", "min_k")
#: float-valued arm arguments: the only ones a search space may give as {low, high}
FLOAT_ARGS = ("gamma", "beta")
#: grids larger than this are refused (a typo, not a study)
MAX_ARMS = 10_000
_TABLES = {
    "data": tuple(f.name for f in dataclasses.fields(DataConfig)),
    "train": tuple(f.name for f in dataclasses.fields(TrainConfig)),
    "model": ("width",),
    "search": ("n_trials", "sampler", "pruner", "space"),
    # where and how jobs are launched (never part of results): [launcher.slurm], see launch/slurm.py
    "launcher": ("slurm",),
}
_SCALARS = ("name", "description", "mirrors", "layout", "seeds", "baseline", "backbones", "arms", "grid",
            "claims", "margin", "extra_seeds", "design", "spending")
_LAYER_KEYS = (*_SCALARS, *_TABLES)
_STUDY_KEYS = (*_LAYER_KEYS, "profiles")
_NULLABLE = ("data.subset", "data.data_dir", "model.width")


def _canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def _suggest(word: Any, choices: Iterable[str]) -> str:
    if not isinstance(word, str):
        return ""
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


class _Invalid(Exception):
    """A bad value at ``key`` (relative to what is being validated); becomes a SpecError."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"{key}: {message}")
        self.key, self.message = key, message
