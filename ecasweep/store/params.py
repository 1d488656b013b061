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

from ..models import user
from ..models.attention import ADAPTIVE, REGISTRY, attention_class
from .results import cell_attrs
from ..spec import ADAPTIVE_ONLY, ARM_ARGS, Arm, Cell, StudySpec

ATTENTION, BACKBONE, SEED = "attention", "backbone", "seed"


def cell_params(spec: StudySpec, cell: Cell) -> dict[str, tuple[Any, BaseDistribution]]:
    """The Optuna parameters of one cell: name -> (value, distribution)."""
    space = study_distributions(spec)
    values = {ATTENTION: _attention(spec, cell.arm), **arm_arguments(cell.arm, space),
              BACKBONE: _written(spec, cell.backbone),
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
        user_attrs=cell_attrs(cell.key, arm.id, cell.backbone, cell.seed,
                              {"attention": user.display_name(arm.attention), **arm.kwargs}),  # a label: no path
        system_attrs={"fixed_params": values})


def study_distributions(spec: StudySpec) -> dict[str, BaseDistribution]:
    """Every parameter a grid study's trials may carry, with its distribution."""
    values: dict[str, set] = {}
    for arm in spec.arms:
        for name, value in _arguments(arm, used=_used(spec)).items():
            values.setdefault(name, set()).add(value)
    space: dict[str, BaseDistribution] = {ATTENTION: _categorical(_attention(spec, arm) for arm in spec.arms)}
    space.update({name: _categorical(values[name]) for name in ARM_ARGS if name in values})
    space.update({name: _categorical(values[name]) for name in sorted(values) if name not in ARM_ARGS})  # users'
    return _with_cell_axes(spec, space)


def _attention(spec: StudySpec, arm: Arm) -> str:
    """The ``attention`` parameter: a built-in's name, or a user's module as the study names it
    (``my_attn.py:MyAttention``; not where it is, which differs between machines)."""
    return _written(spec, arm.attention)


def _written(spec: StudySpec, name: str) -> str:
    """A user's module or backbone as the study names it; a built-in as it is."""
    return spec.code[name]["source"] if name in spec.code else name


def _with_cell_axes(spec: StudySpec, space: dict[str, BaseDistribution]) -> dict[str, BaseDistribution]:
    space[BACKBONE] = _categorical(_written(spec, b) for b in spec.backbones)
    space[SEED] = IntDistribution(0, max([spec.seeds, *spec.extra_seeds.values()]) - 1)  # extra: --until-resolved
    return space


def arm_arguments(arm: Arm, space: dict[str, BaseDistribution]) -> dict[str, Any]:
    """The arm's arguments that are parameters of ``space``, defaults filled in."""
    return _arguments(arm, used=set(space))


def _used(spec: StudySpec) -> set[str]:
    return {name for arm in spec.arms for name in arm.kwargs}


def _arguments(arm: Arm, used: set[str]) -> dict[str, Any]:
    """The arguments of ``used`` that ``arm``'s variant takes, in ``ARM_ARGS`` order."""
    if arm.attention in REGISTRY:
        signature = inspect.signature(REGISTRY[arm.attention].__init__)
        defaults = {name: p.default for name, p in signature.parameters.items() if name not in ("self", "channels")}
        names = list(ARM_ARGS)
    else:  # a user's module: its own keyword arguments (imported from where the study recorded it)
        defaults, _ = user.parameters(attention_class(arm.attention))
        defaults = {name: value for name, value in defaults.items() if value is not inspect.Parameter.empty}
        defaults.update({name: value for name, value in arm.kwargs.items() if name not in defaults})
        names = [*(n for n in ARM_ARGS if n in defaults),
                 *sorted(n for n in defaults if n not in (*ARM_ARGS, ATTENTION, BACKBONE, SEED))]
    adaptive = arm.attention in REGISTRY and arm.kwargs.get("k", defaults.get("k")) == ADAPTIVE
    arguments = {}
    for name in names:
        if name not in used or name not in defaults or (name in ADAPTIVE_ONLY and not adaptive
                                                         and arm.attention in REGISTRY):
            continue
        value = arm.kwargs.get(name, defaults[name])
        if value is not None and isinstance(value, (bool, int, float, str)):
            arguments[name] = value
    return arguments


def _categorical(values) -> CategoricalDistribution:
    """Numbers first (ascending), then strings in natural order (resnet-8 before resnet-14)."""
    return CategoricalDistribution(sorted(set(values), key=_order))


def _order(value: Any) -> tuple:
    if isinstance(value, (int, float)):
        return (0, float(value), ())
    return (1, 0.0, tuple((0, int(part)) if part.isdigit() else (1, part) for part in re.split(r"(\d+)", str(value))))
