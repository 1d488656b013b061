"""Arms: an attention variant and its arguments, normalised to a canonical id, from [[arms]] and [[grid]] tables."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from ..models.catalogue import ADAPTIVE, KERNEL_VARIANTS, VARIANTS, accepted_arguments, check_timm_installed
from ..models.catalogue import stage_channels
from .schema import ADAPTIVE_ONLY, ARM_ARGS, FLOAT_ARGS, MAX_ARMS, _Invalid, _canonical_json, _suggest


@dataclass(frozen=True)
class Arm:
    """One attention configuration: ``create_attention(attention, C, **kwargs)`` in every block."""

    id: str
    attention: str
    kwargs: dict[str, Any] = field(default_factory=dict)

    def __hash__(self) -> int:
        return hash((self.id, self.attention, _canonical_json(self.kwargs)))


def _arm_from_table(table: Mapping[str, Any]) -> Arm:
    _check_keys(table, ("id", "attention", *ARM_ARGS))
    if "attention" not in table:
        raise _Invalid("attention", f"missing; expected one of: {', '.join(VARIANTS)}")
    arm_id = table.get("id")
    if arm_id is not None and (not isinstance(arm_id, str) or not arm_id.strip() or "/" in arm_id):
        raise _Invalid("id", f"expected a non-empty string without '/', got {arm_id!r}")
    return _make_arm(table["attention"], {k: v for k, v in table.items() if k in ARM_ARGS},
                     explicit=True, arm_id=arm_id)


def _arms_from_grid(table: Mapping[str, Any]) -> list[Arm]:
    if "id" in table:
        raise _Invalid("id", "grid arms get generated ids; give an id in an [[arms]] table instead")
    _check_keys(table, ("attention", *ARM_ARGS))
    if "attention" not in table:
        raise _Invalid("attention", f"missing; expected one of: {', '.join(VARIANTS)}")
    axes = {key: value if isinstance(value, list) else [value] for key, value in table.items()}
    size = 1
    for key, values in axes.items():
        if not values:
            raise _Invalid(key, "empty axis; give at least one value")
        frozen = [_canonical_json(v) for v in values]
        if len(set(frozen)) < len(frozen):
            raise _Invalid(key, f"a value is listed twice in {values!r}")
        size *= len(values)
        if size > MAX_ARMS:
            raise _Invalid("", f"the grid expands to more than {MAX_ARMS} arms")
    arms: dict[str, Arm] = {}
    for combo in itertools.product(*axes.values()):
        point = dict(zip(axes, combo))
        arm = _make_arm(point.pop("attention"), point, explicit=False)
        arms.setdefault(arm.id, arm)  # int k's collapse over the gamma/beta axes
    return list(arms.values())


def _check_keys(table: Mapping[str, Any], allowed: Sequence[str]) -> None:
    for key in table:
        if key not in allowed:
            raise _Invalid(key, f"unknown key{_suggest(key, allowed)}; expected one of: {', '.join(allowed)}")


def _make_arm(attention: Any, args: Mapping[str, Any], explicit: bool, arm_id: str | None = None) -> Arm:
    """A normalised arm: arguments checked, defaults of defining arguments filled, others dropped.

    ``explicit``: an adaptive-only argument with an int k is an error (an [[arms]] table) rather
    than dropped (a [[grid]] point).
    """
    if not isinstance(attention, str) or attention not in VARIANTS:
        raise _Invalid("attention", f"unknown attention {attention!r}{_suggest(attention, VARIANTS)}; "
                                    f"expected one of: {', '.join(VARIANTS)}")
    check_timm_installed(attention)
    accepted = accepted_arguments(attention)
    for key in args:
        if key not in accepted:
            raise _Invalid(key, f"attention {attention!r} does not take {key}; "
                                f"it takes: {', '.join(accepted) or 'no arguments'}")
    kwargs = {key: _check_arg(key, args[key]) for key in ARM_ARGS if key in args}
    defaults = VARIANTS[attention].arguments
    defining = {"se": ("r",)}.get(attention, ())
    if attention in KERNEL_VARIANTS:
        kwargs.setdefault("k", defaults["k"])
        defining = ("k", "gamma", "beta") if kwargs["k"] == ADAPTIVE else ("k",)
        if kwargs["k"] != ADAPTIVE:
            for key in ADAPTIVE_ONLY:
                if key in kwargs and explicit:
                    raise _Invalid(key, f"applies only when k = \"adaptive\" (k is {kwargs['k']})")
                kwargs.pop(key, None)
    if attention == "se-gc" and ("groups" in kwargs) == ("group_size" in kwargs):
        raise _Invalid("groups", "se-gc takes exactly one of groups (SE-GC1: 16) or group_size (SE-GC2: 16, SE-GC3: 8)")
    for key in defining:
        value = kwargs.get(key, defaults[key])
        kwargs[key] = float(value) if key in FLOAT_ARGS else value
    kwargs = {key: kwargs[key] for key in ARM_ARGS
              if key in kwargs and (key in defining or kwargs[key] != defaults.get(key))}
    return Arm(arm_id or _arm_id(attention, kwargs), attention, kwargs)


def _check_arg(key: str, value: Any) -> Any:
    is_int = isinstance(value, int) and not isinstance(value, bool)
    is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if key == "k":
        if value != ADAPTIVE and not (is_int and value >= 1 and value % 2 == 1):
            raise _Invalid(key, f"expected an odd integer >= 1 or \"adaptive\", got {value!r}")
        return value
    if key == "gamma":
        if not is_number or not value > 0:
            raise _Invalid(key, f"expected a number > 0, got {value!r}")
        return float(value)
    if key == "beta":
        if not is_number:
            raise _Invalid(key, f"expected a number, got {value!r}")
        return float(value)
    if key == "bias":
        if not isinstance(value, bool):
            raise _Invalid(key, f"expected true or false, got {value!r}")
        return value
    if key == "spatial_k" and not (is_int and value >= 1 and value % 2 == 1):
        raise _Invalid(key, f"expected an odd integer >= 1, got {value!r}")
    if key == "extent":  # 0 is the global extent; the module checks the power of two
        if not is_int or value < 0:
            raise _Invalid(key, f"expected 0 (global) or a power of two >= 2, got {value!r}")
        return value
    if not is_int or value < 1:
        raise _Invalid(key, f"expected an integer >= 1, got {value!r}")
    return value


def _arm_id(attention: str, kwargs: Mapping[str, Any]) -> str:
    if not kwargs:
        return attention
    return f"{attention}({','.join(f'{key}={_format(value)}' for key, value in kwargs.items())})"


def _format(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _check_on_stages(arm: Arm, backbones: Sequence[str], width: int | None) -> None:
    """Build the arm's module for every stage (on the meta device: no memory) to let it validate.

    This imports torch; ``load_study(..., check_models=None)`` (``list``, ``show``) skips it where
    the tests have already done it.
    """
    import torch

    from ..models.attention import create_attention

    for backbone in backbones:
        where = backbone if width is None else f"{backbone} (model.width = {width})"
        for stage, channels in enumerate(stage_channels(backbone, width), 1):
            try:
                with torch.device("meta"):
                    create_attention(arm.attention, channels, **arm.kwargs)
            except (ValueError, TypeError, OverflowError, RuntimeError) as e:
                raise _Invalid("", f"arm {arm.id!r} on {where} stage {stage} (C={channels}): {e}") from None
