"""Search spaces: the [search] table of a search study, sampled by Optuna."""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from typing import Any, Mapping

from ..models.catalogue import ADAPTIVE, VARIANTS, accepted_arguments
from .arms import _check_keys, _is_user, _make_arm
from .schema import ADAPTIVE_ONLY, ARM_ARGS, FLOAT_ARGS, MAX_ARMS, _Invalid, _canonical_json


@dataclass(frozen=True)
class SearchSpec:
    """An Optuna search: ``space`` maps ``attention`` and arm arguments to a list (categorical),
    ``{"low", "high", "log"}`` (float range) or a fixed value."""

    n_trials: int
    sampler: str = "tpe"
    pruner: str = "median"
    space: dict[str, Any] = field(default_factory=dict)

    def suggest(self, trial: Any) -> dict[str, Any]:
        """Sample one point with an ``optuna.Trial``; gamma/beta/min_k only when k is adaptive.

        >>> import optuna
        >>> space = SearchSpec(1, space={"attention": ["eca"], "k": [3, "adaptive"]})
        >>> sorted(space.suggest(optuna.trial.FixedTrial({"attention": "eca", "k": 3})))
        ['attention', 'k']
        """
        params: dict[str, Any] = {}
        for key in ("attention", *ARM_ARGS):
            if key not in self.space:
                continue
            domain = self.space[key]
            if key in ADAPTIVE_ONLY and params.get("k", self.space.get("k")) != ADAPTIVE:
                continue
            if isinstance(domain, list):
                params[key] = trial.suggest_categorical(key, domain)
            elif isinstance(domain, dict):
                params[key] = trial.suggest_float(key, domain["low"], domain["high"], log=domain["log"])
            else:
                params[key] = domain
        return params


def _search_space(space: Any) -> dict[str, Any]:
    """The normalised space: lists (categorical), {low, high, log} (float ranges), fixed values."""
    if not isinstance(space, dict) or not space:
        raise _Invalid("", f"expected a table [search.space] (attention = [...], k = [...], ...), got {space!r}")
    _check_keys(space, ("attention", *ARM_ARGS))
    if "attention" not in space:
        raise _Invalid("attention", f"missing; expected a list of: {', '.join(VARIANTS)}")
    normalised: dict[str, Any] = {}
    for key in ("attention", *ARM_ARGS):
        if key not in space:
            continue
        domain = space[key]
        if isinstance(domain, list):
            frozen = [_canonical_json(v) for v in domain]
            if not domain or len(set(frozen)) < len(frozen):
                raise _Invalid(key, f"expected a non-empty list of distinct values, got {domain!r}")
            if not all(v is None or isinstance(v, (bool, int, float, str)) for v in domain):
                raise _Invalid(key, f"expected numbers or strings, got {domain!r}")
        elif isinstance(domain, dict):
            domain = _float_range(key, domain)
        normalised[key] = domain
    attentions = normalised["attention"] if isinstance(normalised["attention"], list) else [normalised["attention"]]
    for attention in attentions:
        if isinstance(attention, str) and attention not in VARIANTS and (":" in attention or _is_user(attention)):
            raise _Invalid("attention", f"{attention!r}: a search space samples ecasweep's own variants; "
                                        "compare your own module in an [[arms]] or [[grid]] study")
        _make_arm(attention, {}, explicit=False)  # the name must exist
        for key in normalised:
            if key != "attention" and key not in accepted_arguments(attention):
                raise _Invalid(key, f"attention {attention!r} does not take {key}; every attention of "
                                    f"the space must take every argument of it")
    return normalised


def _float_range(key: str, domain: Mapping[str, Any]) -> dict[str, Any]:
    if key not in FLOAT_ARGS:
        raise _Invalid(key, f"a range {{low, high}} is only for {', '.join(FLOAT_ARGS)}; give a list of values")
    _check_keys(domain, ("low", "high", "log"))
    bounds = [domain.get("low"), domain.get("high")]
    if not all(isinstance(b, (int, float)) and not isinstance(b, bool) for b in bounds) or not bounds[0] < bounds[1]:
        raise _Invalid(key, f"expected {{low = <number>, high = <larger number>}}, got {dict(domain)!r}")
    log = domain.get("log", False)
    if not isinstance(log, bool) or (log and bounds[0] <= 0):
        raise _Invalid(f"{key}.log", f"expected true (with low > 0) or false, got {log!r}")
    return {"low": float(bounds[0]), "high": float(bounds[1]), "log": log}


def _space_points(space: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Every categorical combination, with both ends of each range: enough to validate the space."""
    axes = {key: domain if isinstance(domain, list) else [domain["low"], domain["high"]]
            if isinstance(domain, dict) else [domain] for key, domain in space.items()}
    if math.prod(len(values) for values in axes.values()) > MAX_ARMS:
        raise _Invalid("", f"the space has more than {MAX_ARMS} categorical combinations")
    return [dict(zip(axes, combo)) for combo in itertools.product(*axes.values())]


def _search_point(space: Mapping[str, Any], params: Mapping[str, Any]) -> dict[str, Any]:
    """Check sampled ``params`` against ``space`` and fill in its fixed values."""
    if not isinstance(params, Mapping):
        raise _Invalid("", f"expected a mapping of parameters, got {params!r}")
    _check_keys(params, list(space))
    point: dict[str, Any] = {}
    for key, domain in space.items():
        if key not in params:
            if isinstance(domain, (list, dict)) and key not in ADAPTIVE_ONLY:
                raise _Invalid(key, "missing; the space samples it")
            if not isinstance(domain, (list, dict)):
                point[key] = domain
            continue
        value = params[key]
        if isinstance(domain, list):
            ok = any(_canonical_json(value) == _canonical_json(v) for v in domain)
        elif isinstance(domain, dict):
            number = isinstance(value, (int, float)) and not isinstance(value, bool)
            ok = number and domain["low"] <= value <= domain["high"]
        else:
            ok = _canonical_json(value) == _canonical_json(domain)
        if not ok:
            raise _Invalid(key, f"{value!r} is outside the space's {domain!r}")
        point[key] = value
    return point
