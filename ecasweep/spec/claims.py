"""The claims a study tests: ``[[claims]]`` tables -> ``ClaimSpec``s, checked against its arms.

The study file only declares claims; ``ecasweep.claims`` decides them over seeds. In a study file::

    margin = 0.5                    # percentage points: the margin of claims that take one and
                                    #   give none (override with --set margin=0.3)
    [[claims]]
    kind = "superiority"            # superiority: A > B; non-inferiority: A >= B - margin;
    a = ["eca(k=3)", "eca(k=5)"]    #   equivalence: |A - B| < margin
    b = "se(r=16)"                  # arm ids; a list in a or b: one claim per arm of it
    words = "ECA beats SE (r=16) at every k"
    evidence = "Figure 4"           # optional: the paper's evidence, in words
    # margin = 0.3                  # optional (non-inferiority, equivalence): this claim's margin

and, at the top level, how they are decided (docs/claims.md; both optional)::

    design = "holm"                 # holm (default): a decided claim's share of alpha passes to the
                                    #   open ones; bonferroni: each keeps alpha / K
    spending = "power-1"            # how each share is spent over the looks: power-RHO, pocock, obf,
                                    #   even (default: the one docs/claims.md's simulation chose)

Example:
    >>> claims_from_tables([{"kind": "superiority", "a": ["x", "y"], "b": "z"}], ["x", "y", "z"], None)[1]
    ClaimSpec(kind='superiority', a='y', b='z', margin=0.0, words='y > z', evidence='')
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Sequence

from .schema import _Invalid, _suggest

#: the kinds of claim (``ecasweep.claims`` decides each)
KINDS = ("superiority", "non-inferiority", "equivalence")
#: how a study's claims share alpha (``design = "..."``; ``stats.sequential.PROCEDURES``): Holm's
#: procedure recycling a decided claim's share (the default), or Bonferroni (each keeps alpha / K)
DESIGNS = ("holm", "bonferroni")
#: the spending function a new study uses unless it names another (``stats.spending`` computes them;
#: chosen by benchmarks/design_simulation.py, docs/claims.md has the table)
SPENDING = "power-0.7-after-8"
#: the spending of studies stored before designs were named (issue 22)
SPENDING_LEGACY = "even"
_POWER = re.compile(r"power-(\d+(?:\.\d+)?)(?:-after-(\d+))?")
SPENDING_NAMES = ("even", "power-RHO or power-RHO-after-N (RHO > 0, e.g. power-1, power-0.5-after-8)", "pocock", "obf")


def check_spending(name: object) -> str:
    """``name`` if it names a spending function, else ValueError saying which do.

    >>> check_spending("power-0.5-after-8")
    'power-0.5-after-8'
    """
    if isinstance(name, str):
        if name in ("even", "pocock", "obf"):
            return name
        match = _POWER.fullmatch(name)
        if match and float(match.group(1)) > 0 and int(match.group(2) or 0) < 64:
            return name
    raise ValueError(f"expected one of: {', '.join(SPENDING_NAMES)}, got {name!r}")


CLAIM_KEYS = ("kind", "a", "b", "margin", "words", "evidence")
#: how a claim of each kind relates its arms, in words and in ``show``
RELATION = {"superiority": ">", "non-inferiority": ">=", "equivalence": "≈"}
_RELATION = {**RELATION, "non-inferiority": ">= (within the margin)"}


@dataclass(frozen=True)
class ClaimSpec:
    """One claim about two arms: ``kind`` with ``margin`` (pp; 0 for superiority), in ``words``."""

    kind: str
    a: str
    b: str
    margin: float
    words: str
    evidence: str = ""


def check_margin(value: Any) -> float:
    """A margin: a finite number > 0 (percentage points)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise _Invalid("", f"expected a number of percentage points > 0, got {value!r}")
    return float(value)


def claims_from_tables(tables: Any, arm_ids: Sequence[str], default_margin: float | None) -> list[ClaimSpec]:
    """Every claim of ``tables`` (the ``[[claims]]`` array), one per arm where ``a`` or ``b`` lists
    several; a bad value is ``_Invalid`` with its key relative to the array (``[0].kind``)."""
    if not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
        raise _Invalid("", f"expected an array of tables [[claims]], got {tables!r}")
    claims: list[ClaimSpec] = []
    for i, table in enumerate(tables):
        try:
            claims += _claims_from_table(table, arm_ids, default_margin)
        except _Invalid as e:
            raise _Invalid(f"[{i}].{e.key}".rstrip("."), e.message) from None
    return claims


def _claims_from_table(table: dict[str, Any], arm_ids: Sequence[str], default_margin: float | None) -> list[ClaimSpec]:
    for key in table:
        if key not in CLAIM_KEYS:
            raise _Invalid(key, f"unknown key{_suggest(key, CLAIM_KEYS)}; expected one of: {', '.join(CLAIM_KEYS)}")
    kind = table.get("kind")
    if not isinstance(kind, str) or kind not in KINDS:
        raise _Invalid("kind", f"expected one of: {', '.join(KINDS)}, got {kind!r}{_suggest(kind, KINDS)}")
    a, b = (_arms(table, side, arm_ids) for side in ("a", "b"))
    if len(a) > 1 and len(b) > 1:
        raise _Invalid("b", "a list in a or in b, not in both")
    margin = 0.0
    if kind == "superiority":
        if "margin" in table:
            raise _Invalid("margin", "a superiority claim (A > B) takes no margin")
    else:
        value = table.get("margin", default_margin)
        if value is None:
            raise _Invalid("margin", f"a {kind} claim needs a margin (here or as the study's margin)")
        try:
            margin = check_margin(value)
        except _Invalid as e:
            raise _Invalid("margin", e.message) from None
    for key in ("words", "evidence"):
        if not isinstance(table.get(key, ""), str):
            raise _Invalid(key, f"expected a string, got {table[key]!r}")
    claims = []
    for arm_a in a:
        for arm_b in b:
            if arm_a == arm_b:
                raise _Invalid("b", f"compares arm {arm_a!r} with itself")
            words = table.get("words") or f"{arm_a} {_RELATION[kind]} {arm_b}"
            claims.append(ClaimSpec(kind, arm_a, arm_b, margin, words, table.get("evidence", "")))
    return claims


def _arms(table: dict[str, Any], side: str, arm_ids: Sequence[str]) -> list[str]:
    if side not in table:
        raise _Invalid(side, "missing; expected an arm id of the study or a list of them")
    value = table[side]
    names = [value] if isinstance(value, str) else value
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise _Invalid(side, f"expected an arm id or a non-empty list of arm ids, got {value!r}")
    for name in names:
        if name not in arm_ids:
            raise _Invalid(side, f"no arm {name!r} in the study{_suggest(name, arm_ids)}; arms: {', '.join(arm_ids)}")
    return list(names)
