"""Alpha-spending functions: how a hypothesis's share of alpha is spent over the looks of the design.

A spending function f maps the information fraction t = n / n_max (seeds over the last look's seeds)
to the fraction of the level spent by then: f(0) = 0, f(1) = 1, non-decreasing (Lan & DeMets 1983,
"Discrete sequential boundaries for clinical trials", Biometrika 70(3):659-663). The look at n_k
seeds spends ``level * (f(t_k) - f(t_{k-1}))``; with the Bonferroni inequality over looks, the chance
that any look of a hypothesis tested at ``level`` errs is at most ``level * f(t_last) <= level``,
whatever the correlation between looks. Every function here is scale-free (the fraction spent does
not depend on the level), so that a level raised by recycling (``ecasweep.stats.recycling``) raises
the spend of every look: the tests stay monotone in the level.

Names (``spending = "..."`` in a study file):

- ``even``: the same share at every look, whatever its seeds (the design before issue 22);
- ``power-RHO``: f(t) = t^RHO (Kim & DeMets 1987, Biometrics 43(4):857-864); ``power-1`` spends in
  proportion to the seeds a look adds, RHO > 1 saves alpha for the late looks (``power-3`` is close
  to O'Brien-Fleming's shape), RHO < 1 spends it early;
- ``power-RHO-after-N``: nothing until N seeds, then the power function of the information beyond
  them, f(t) = ((t - t_N) / (1 - t_N))^RHO with t_N = N / n_max: looks at N seeds or fewer take no
  verdict (at 5 or 7 degrees of freedom the t quantiles at these levels make a look nearly worthless,
  and the t test is least robust to skewed differences there);
- ``pocock``: f(t) = ln(1 + (e - 1) t), the Lan-DeMets Pocock-type function;
- ``obf``: the Hwang-Shih-DeCani function with gamma = -4 (Hwang, Shih & DeCani 1990, Statistics in
  Medicine 9(12):1439-1445), f(t) = (1 - exp(4 t)) / (1 - exp(4)): an O'Brien-Fleming-like shape that
  unlike the Lan-DeMets O'Brien-Fleming function does not depend on the level (at the tiny levels of
  a Bonferroni share that function spends nothing before the last looks).

Example:
    >>> increments("power-1", (16, 32, 64)).round(4).tolist()
    [0.25, 0.25, 0.5]
    >>> increments("even", (6, 8)).tolist()
    [0.5, 0.5]
"""

from __future__ import annotations

import math

import numpy as np

# The names a study may state, and the default, are the spec's: a study declares its design, this
# module computes it.
from ..spec.claims import SPENDING as DEFAULT, SPENDING_LEGACY as LEGACY, _POWER, check_spending as check  # noqa: F401


def fraction(name: str, n: np.ndarray, n_max: int) -> np.ndarray:
    """f: the fraction of the level spent by ``n`` seeds of ``n_max`` (not for ``even``)."""
    t = np.clip(np.asarray(n, dtype=float) / n_max, 0.0, 1.0)
    if name == "pocock":
        return np.log1p((math.e - 1.0) * t)
    if name == "obf":
        return (1.0 - np.exp(4.0 * t)) / (1.0 - math.exp(4.0))
    match = _POWER.fullmatch(check(name))
    if match is None:
        raise ValueError(f"{name!r} spends by look, not by information")
    start = int(match.group(2) or 0) / n_max
    return np.clip((t - start) / (1.0 - start), 0.0, 1.0) ** float(match.group(1))


def increments(name: str, looks: tuple[int, ...], n_max: int | None = None) -> np.ndarray:
    """The fraction of a hypothesis's level each look spends (non-negative, summing to at most 1).

    ``n_max``: the seeds of a full sample (default: the last look).
    """
    check(name)
    if name == "even":
        return np.full(len(looks), 1.0 / len(looks))
    cumulative = fraction(name, np.asarray(looks, dtype=float), n_max or looks[-1])
    return np.diff(np.concatenate([[0.0], cumulative]))
