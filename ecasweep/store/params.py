"""Grid cells as Optuna parameters, so that Optuna's own tools analyse a study.

Each trial of a grid study carries the factors of its cell as Optuna parameters with distributions,
as if an objective had suggested them; ``optuna.importance``, ``optuna.visualization``, ``optuna
trials`` and optuna-dashboard then work on an ecasweep study as on any other:

- ``attention``: the arm's variant, categorical over the study's variants;
- the variant's own arguments (``k``, ``r``, ``gamma``, ``beta``, ``groups``, ...), each categorical
  over the values the study gives it (``"adaptive"`` is one choice of ``k`` beside the odd ints).
  An argument is a parameter of the trials whose variant takes it (``gamma``, ``beta`` and ``min_k``
  only with an adaptive ``k``), with the variant's default where an arm leaves it out, as an
  objective with conditional ``suggest_*`` calls would record it;
- ``backbone``: categorical over the study's backbones;
- ``seed``: an int from 0 to the number of seeds - 1.

Optuna refuses two distributions for one parameter name within a study, so the choices are the
study's (which its results hash fixes) in an order that does not depend on the order of the study
file, and the seed is an int range: more seeds widen it, which Optuna accepts.

The arm id, cell key and metrics stay user attributes (``results``).

Example:
    >>> from ecasweep.spec import load_study
    >>> spec = load_study("kernel-size")
    >>> cell = Cell("resnet-8/eca(k=adaptive)/seed=0", spec.arm("eca(k=adaptive,gamma=2,beta=1)"), "resnet-8", 0)
    >>> {name: value for name, (value, _) in cell_params(spec, cell).items()}
    {'attention': 'eca', 'k': 'adaptive', 'gamma': 2.0, 'beta': 1.0, 'backbone': 'resnet-8', 'seed': 0}
    >>> cell_params(spec, cell)["k"][1].choices
    (3, 5, 7, 9, 'adaptive')
"""

from __future__ import annotations

import inspect
import re
from typing import Any

import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution, IntDistribution
from optuna.trial import FrozenTrial, TrialState

from ..models.attention import ADAPTIVE, REGISTRY
from .results import cell_attrs
from ..spec import ADAPTIVE_ONLY, ARM_ARGS, Arm, Cell, StudySpec

ATTENTION, BACKBONE, SEED = "attention", "backbone", "seed"


def cell_params(spec: StudySpec, cell: Cell) -> dict[str, tuple[Any, BaseDistribution]]:
    """The Optuna parameters of one cell: name -> (value, distribution)."""
    space = study_distributions(spec)
    values = {ATTENTION: cell.arm.attention, **arm_arguments(cell.arm, space), BACKBONE: cell.backbone,
              SEED: cell.seed}
    return {name: (value, space[name]) for name, value in values.items()}


def cell_trial(spec: StudySpec, cell: Cell) -> FrozenTrial:
    """The WAITING trial that stands for ``cell``, for ``Study.add_trial``: its parameters, and the
    user attributes that identify the cell. Like ``Study.enqueue_trial``, it also records the values
    as ``fixed_params``."""
    params = cell_params(spec, cell)
    values = {name: value for name, (value, _) in params.items()}
    arm = cell.arm
    return optuna.trial.create_trial(
        state=TrialState.WAITING, params=values, distributions={name: d for name, (_, d) in params.items()},
        user_attrs=cell_attrs(cell.key, arm.id, cell.backbone, cell.seed, {"attention": arm.attention, **arm.kwargs}),
        system_attrs={"fixed_params": values})


def study_distributions(spec: StudySpec) -> dict[str, BaseDistribution]:
    """Every parameter a grid study's trials may carry, with its distribution."""
    values: dict[str, set] = {}
    for arm in spec.arms:
        for name, value in _arguments(arm, used=_used(spec)).items():
            values.setdefault(name, set()).add(value)
    space: dict[str, BaseDistribution] = {ATTENTION: _categorical(arm.attention for arm in spec.arms)}
    space.update({name: _categorical(values[name]) for name in ARM_ARGS if name in values})
    space[BACKBONE] = _categorical(spec.backbones)
    space[SEED] = IntDistribution(0, max([spec.seeds, *spec.extra_seeds.values()]) - 1)  # extra: --until-resolved
    return space


def arm_arguments(arm: Arm, space: dict[str, BaseDistribution]) -> dict[str, Any]:
    """The arm's arguments that are parameters of ``space``, defaults filled in."""
    return _arguments(arm, used=set(space))


def _used(spec: StudySpec) -> set[str]:
    return {name for arm in spec.arms for name in arm.kwargs}


def _arguments(arm: Arm, used: set[str]) -> dict[str, Any]:
    """The arguments of ``used`` that ``arm``'s variant takes, in ``ARM_ARGS`` order."""
    defaults = {name: p.default for name, p in inspect.signature(REGISTRY[arm.attention].__init__).parameters.items()
                if name not in ("self", "channels")}
    adaptive = arm.kwargs.get("k", defaults.get("k")) == ADAPTIVE
    arguments = {}
    for name in ARM_ARGS:
        if name not in used or name not in defaults or (name in ADAPTIVE_ONLY and not adaptive):
            continue
        value = arm.kwargs.get(name, defaults[name])
        if value is not None:
            arguments[name] = value
    return arguments


def _categorical(values) -> CategoricalDistribution:
    """Numbers first (ascending), then strings in natural order (resnet-8 before resnet-14)."""
    return CategoricalDistribution(sorted(set(values), key=_order))


def _order(value: Any) -> tuple:
    if isinstance(value, (int, float)):
        return (0, float(value), ())
    return (1, 0.0, tuple((0, int(part)) if part.isdigit() else (1, part) for part in re.split(r"(\d+)", str(value))))
