"""Arms: an attention variant and its arguments, normalised to a canonical id, from [[arms]] and [[grid]] tables."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from ..models import user
from ..models.catalogue import ADAPTIVE, KERNEL_VARIANTS, VARIANTS, accepted_arguments, check_timm_installed
from ..models.shapes import BUILTIN_BACKBONES, is_builtin_backbone, stage_channels
from .schema import ADAPTIVE_ONLY, ARM_ARGS, FLOAT_ARGS, MAX_ARMS, _Invalid, _canonical_json, _suggest

#: what "attention" may be, for messages
_EXPECTED = (f"one of: {', '.join(VARIANTS)}; or your own module: \"my_attn.py:MyAttention\" (a file next to "
             "the study), \"my_pkg.attn:MyAttention\" or a name an installed package registers")


@dataclass(frozen=True)
class Arm:
    """One attention configuration: ``create_attention(attention, C, **kwargs)`` in every block."""

    id: str
    attention: str
    kwargs: dict[str, Any] = field(default_factory=dict)

    def __hash__(self) -> int:
        return hash((self.id, self.attention, _canonical_json(self.kwargs)))


def _arm_from_table(table: Mapping[str, Any], base: Any = None, code: dict | None = None) -> Arm:
    """``base``: the folder a file reference is relative to (the study file's); ``code``: filled with
    the identity record of each user module (``models.user.identify``), by resolved reference."""
    if "attention" not in table:
        raise _Invalid("attention", f"missing; expected {_EXPECTED}")
    if not _is_user(table["attention"]):
        _check_keys(table, ("id", "attention", *ARM_ARGS))
    arm_id = table.get("id")
    if arm_id is not None and (not isinstance(arm_id, str) or not arm_id.strip() or "/" in arm_id):
        raise _Invalid("id", f"expected a non-empty string without '/', got {arm_id!r}")
    return _make_arm(table["attention"], {k: v for k, v in table.items() if k not in ("id", "attention")},
                     explicit=True, arm_id=arm_id, base=base, code=code)


def _is_user(attention: Any) -> bool:
    """A user's module (a reference, or an entry-point name that is not a built-in)."""
    if isinstance(attention, str) and attention not in VARIANTS and user.is_user(attention, VARIANTS):
        return True
    return False


def _arms_from_grid(table: Mapping[str, Any], base: Any = None, code: dict | None = None) -> list[Arm]:
    if "id" in table:
        raise _Invalid("id", "grid arms get generated ids; give an id in an [[arms]] table instead")
    if "attention" not in table:
        raise _Invalid("attention", f"missing; expected {_EXPECTED}")
    attentions = table["attention"] if isinstance(table["attention"], list) else [table["attention"]]
    if not any(_is_user(a) for a in attentions):  # a user's module takes its own arguments
        _check_keys(table, ("attention", *ARM_ARGS))
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
        arm = _make_arm(point.pop("attention"), point, explicit=False, base=base, code=code)
        arms.setdefault(arm.id, arm)  # int k's collapse over the gamma/beta axes
    return list(arms.values())


def _check_keys(table: Mapping[str, Any], allowed: Sequence[str]) -> None:
    for key in table:
        if key not in allowed:
            raise _Invalid(key, f"unknown key{_suggest(key, allowed)}; expected one of: {', '.join(allowed)}")


def _make_arm(attention: Any, args: Mapping[str, Any], explicit: bool, arm_id: str | None = None,
              base: Any = None, code: dict | None = None) -> Arm:
    """A normalised arm: arguments checked, defaults of defining arguments filled, others dropped.

    ``explicit``: an adaptive-only argument with an int k is an error (an [[arms]] table) rather
    than dropped (a [[grid]] point). A user's module: see ``_make_user_arm``.
    """
    if _is_user(attention):
        return _make_user_arm(attention, args, arm_id, base, code)
    if not isinstance(attention, str) or attention not in VARIANTS:
        raise _Invalid("attention", f"unknown attention {attention!r}{_suggest(attention, VARIANTS)}; "
                                    f"expected {_EXPECTED}")
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


def _make_user_arm(attention: str, args: Mapping[str, Any], arm_id: str | None, base: Any,
                   code: dict | None) -> Arm:
    """An arm of a user's module: the reference resolved (a file made absolute, relative to ``base``),
    the code imported and identified (``code[resolved] = record``), the arguments checked against
    the class's signature; those left at the class's default are dropped, the others kept in the
    signature's order. The id is the class's name with the arguments: ``MyAttention(alpha=0.5)``."""
    try:
        user.check_shadowing(VARIANTS)
        resolved = user.resolve(attention, base)
        record = user.identify(resolved, source=attention)
        factory = user.load(resolved)
    except user.UserCodeError as e:
        raise _Invalid("attention", str(e)) from None
    try:
        user.check_kwargs(resolved, factory, args)
    except user.UserCodeError as e:
        named, var_kw = user.parameters(factory)
        unknown = [key for key in args if key not in named and not var_kw]
        raise _Invalid(unknown[0] if unknown else "attention",
                       f"{e}{_suggest(unknown[0], named) if unknown else ''}") from None
    if code is not None:
        previous = code.get(resolved)
        if previous is not None and previous.get("source") != attention:
            record["source"] = previous["source"]  # one module named two ways: the first name
        code[resolved] = record
    named, _ = user.parameters(factory)
    for key, value in args.items():
        if not _scalar(value):
            raise _Invalid(key, f"expected a number, a string or a boolean, got {value!r}")
    kwargs = {key: args[key] for key in named if key in args and args[key] != named[key]}
    kwargs.update({key: args[key] for key in sorted(args) if key not in named})  # taken by **kwargs
    given = arm_id is not None
    arm_id = arm_id or _arm_id(user.display_name(resolved), kwargs)
    if arm_id in VARIANTS or arm_id.split("(")[0] in VARIANTS:
        raise _Invalid("id" if given else "attention",
                       f"{arm_id!r} shadows the built-in attention {arm_id.split('(')[0]!r}; give the arm "
                       "another id")
    return Arm(arm_id, resolved, kwargs)


def _is_user_backbone(name: Any) -> bool:
    """A user's network: a reference, or an entry point in ``ecasweep.backbone`` that is no built-in."""
    return isinstance(name, str) and not is_builtin_backbone(name) and user.is_user(name, BUILTIN_BACKBONES,
                                                                                      "backbone")


def _user_backbone(name: str, base: Any, code: dict | None) -> str:
    """A user's backbone resolved (a file made absolute, relative to ``base``), imported and identified
    (``code[resolved] = record``); ``_Invalid`` (at the key ``backbones``) for what is wrong."""
    try:
        user.check_shadowing(BUILTIN_BACKBONES, "backbone")
        resolved = user.resolve(name, base)
        record = user.identify(resolved, source=name, kind="backbone")
        user.load(resolved, "backbone")
    except user.UserCodeError as e:
        raise _Invalid("backbones", str(e)) from None
    if code is not None:
        code[resolved] = record
    return resolved


def _check_user_backbone(arm: Arm, backbone: str) -> None:
    """Build ``backbone`` (a user's) with the arm's attention and run it on a small batch (2, 3, 32, 32):
    10 logits per image expected."""
    import torch

    from ..models.backbones import build_model

    name = user.display_name(backbone)
    model = build_model(backbone, arm.attention, num_classes=10, in_channels=3, **arm.kwargs)
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    try:
        with torch.no_grad():
            y = model.eval()(x)
    except Exception as e:  # noqa: BLE001
        raise user.UserCodeError(f"{name} with {arm.id} failed on a (2, 3, 32, 32) input: {type(e).__name__}: "
                                 f"{' '.join(str(e).split())}") from None
    if not isinstance(y, torch.Tensor) or tuple(y.shape) != (2, 10):
        got = f"shape {tuple(y.shape)}" if isinstance(y, torch.Tensor) else type(y).__name__
        raise user.UserCodeError(f"{name} maps a (2, 3, 32, 32) input to {got}; a backbone built for "
                                 "num_classes=10 must return (2, 10) logits")


def _scalar(value: Any) -> bool:
    return isinstance(value, (bool, int, float, str))


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

    checked: set[int] = set()
    for backbone in backbones:
        if not is_builtin_backbone(backbone):  # a user's network: built whole with the arm, and run
            try:
                _check_user_backbone(arm, backbone)
            except Exception as e:  # noqa: BLE001  (the user's code may raise anything)
                message = str(e) if isinstance(e, user.UserCodeError) else \
                    f"{type(e).__name__}: {' '.join(str(e).split())}"
                raise _Invalid("", f"arm {arm.id!r} on {user.display_name(backbone)}: {message}") from None
            continue
        where = backbone if width is None else f"{backbone} (model.width = {width})"
        for stage, channels in enumerate(stage_channels(backbone, width), 1):
            try:
                if arm.attention not in VARIANTS:  # a user's module: built and run on a small tensor
                    if channels not in checked:
                        user.check_shape(arm.attention, channels, **arm.kwargs)
                        checked.add(channels)
                    continue
                with torch.device("meta"):
                    create_attention(arm.attention, channels, **arm.kwargs)
            except user.UserCodeError as e:
                raise _Invalid("", f"arm {arm.id!r} on {where} stage {stage} (C={channels}): {e}") from None
            except Exception as e:  # noqa: BLE001  (a user's constructor may raise anything)
                if arm.attention in VARIANTS and not isinstance(e, (ValueError, TypeError, OverflowError,
                                                                    RuntimeError)):
                    raise
                message = str(e) if arm.attention in VARIANTS else \
                    f"{user.display_name(arm.attention)}({channels}, ...) raised {type(e).__name__}: " \
                    f"{' '.join(str(e).split())}"
                raise _Invalid("", f"arm {arm.id!r} on {where} stage {stage} (C={channels}): {message}") from None
