"""Alpha recycled between claims: Holm's procedure, per direction of verdict, over group-sequential tests.

The claims of a study (or of any list of hypotheses: a report spanning studies passes them all) are
decided together. Each claim j (paired differences d = A - B, true mean mu_j, boundary b_j: 0 for
superiority, -margin for non-inferiority, +-margin for equivalence) is two one-sided null hypotheses:

- S_j, "the claim is false" (superiority mu <= 0, non-inferiority mu <= -margin, equivalence
  |mu| >= margin); rejecting it is the verdict *supported*;
- C_j, "the claim is not contradicted" (mu >= 0, mu >= -margin, |mu| <= margin); rejecting it is the
  verdict *contradicted*.

A wrong verdict is the rejection of a true one of these. The S_j form one family and the C_j another;
each family gets alpha / 2 and is tested with Holm's procedure (Holm 1979, "A simple sequentially
rejective multiple test procedure", Scand. J. Statist. 6(2):65-70): while s hypotheses of the family
are rejected, each open one is tested at (alpha / 2) / (K - s). This is the graphical approach of
Bretz, Maurer, Brannath & Posch (2009, Statistics in Medicine 28(4):586-604) with two complete graphs,
one per family, and each hypothesis is tested with a group-sequential test at its current level as
in Maurer & Bretz (2013, "Multiple testing in group sequential trials using graphical approaches",
Statistics in Biopharmaceutical Research 5(4):311-320): its level gamma is spent over the looks by
the study's spending function f (``ecasweep.stats.spending``), look k spending
gamma * (f(t_k) - f(t_{k-1})) as a one-sided exact t bound (Bonferroni over looks in place of the
joint distribution of the t statistics); when gamma rises, every look so far is tested again at the
new level. The tests:

- superiority and non-inferiority: S_j rejected when the running maximum of the lower bounds (one-
  sided, level gamma_S spent) clears b_j; C_j when the running minimum of the upper bounds (gamma_C)
  lies below b_j;
- equivalence: S_j by the two one-sided tests of TOST (Schuirmann 1987), both bounds at gamma_S;
  C_j when the interval with both bounds at gamma_C / 2 lies wholly outside (-margin, margin).

A claim is decided when one of its two tests rejects at some look, and then for good: the share of
the rejected hypothesis goes to its family, the other hypothesis of the claim stays in its family
unrejected and untested (it is true if the verdict is right, so its share may not be passed on). The
procedure runs to a fixed point: the open claims are tested at the current levels over all their
looks, the newly decided ones raise the levels, and so on until none is decided. Holm's levels only
grow with the rejections and the tests only gain with the level, so the decided set does not depend
on the order of the rejections; a decided claim's verdict is then placed at the first look that
decides it at Holm's level for it (its family's level with every other rejection of the family
made), so that more seeds or more verdicts elsewhere may move it to an earlier look, never take it
back (short of intervals of one claim that do not overlap, which needs a bound to miss).

Why the family-wise error stays at alpha (docs/claims.md has the argument at length). Let M_i(g) be
the event that one of the (at most 8) looks of hypothesis i, computed on the first n_k seeds in seed
order of the *potential* outcomes (the value every arm would reach on every seed 0..63), has a bound
on the wrong side of mu_i when tested at level g; P(M_i(g)) <= g for exact t bounds, and M_i grows
with g (the spending functions are scale-free). A wrong verdict on i at level g implies M_i(g). Take
the first wrong rejection in the S family: every S hypothesis rejected before it is false, so at most
|F_S| are rejected and the level of i is at most (alpha/2)/(K - |F_S|) = (alpha/2)/|T_S| (T_S, F_S:
the true and false S hypotheses). Hence P(some wrong S verdict) <= P(union over i in T_S of
M_i((alpha/2)/|T_S|)) <= alpha/2, and the same for C: at most alpha in all. The events M_i are
defined on all the potential seeds, so the bound holds whichever looks were reached, however seeds
were added (round by round from the data, as ``run --until-resolved`` does) and whenever the table
is read; it needs no assumption on the dependence between claims that share an arm.

Why a verdict frees only the share of the hypothesis it rejected: were a decided claim to pass on the
share of both its hypotheses (Holm over claims with directional verdicts), a right verdict would
pass on the share guarding against the opposite, still possible, wrong one; the bound above then
fails (the true hypotheses would hold more than alpha in all), and directional Holm is only known to
hold under independence (Shaffer 1980, Ann. Statist. 8(6):1342-1347), not for claims that share arms.

Example:
    >>> import numpy as np
    >>> d = np.array([[0.9, 1.3, 0.7, 1.1, 1.0, 0.8, 1.2, 0.9], [0.1, -0.2, 0.0, 0.2, -0.1, 0.1, 0.0, -0.1]])
    >>> fam = holm(look_stats(list(d), (6, 8)), ["superiority", "superiority"], [0.0, 0.0], 0.05,
    ...            np.array([0.5, 0.5]), (6, 8))
    >>> fam.verdict.tolist(), fam.seeds.tolist()
    ([1, 0], [6, 8])
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
from scipy import stats

#: verdict codes
OPEN, SUPPORTED, CONTRADICTED = 0, 1, -1


@dataclass(frozen=True)
class LookStats:
    """The paired differences of H hypotheses at the looks: shapes (..., H, L) and (..., H).

    ``mean``/``sd`` (ddof = 1) of the first ``looks[k]`` differences in seed order (NaN where a
    hypothesis has fewer); ``reached``: how many looks each hypothesis has reached.
    """

    mean: np.ndarray
    sd: np.ndarray
    reached: np.ndarray


def look_stats(diffs: Sequence[np.ndarray], looks: tuple[int, ...]) -> LookStats:
    """``LookStats`` of one study: ``diffs[h]`` the paired differences of hypothesis h in seed order
    (any length).

    >>> s = look_stats([np.arange(8.0), np.arange(3.0)], (2, 4, 8))
    >>> s.reached.tolist(), s.mean[0].tolist()
    ([3, 1], [0.5, 1.5, 3.5])
    """
    mean = np.full((len(diffs), len(looks)), np.nan)
    sd = np.full_like(mean, np.nan)
    reached = np.zeros(len(diffs), dtype=int)
    for h, d in enumerate(diffs):
        d = np.asarray(d, dtype=float)
        for k, n in enumerate(looks):
            if n > d.shape[-1]:
                break
            mean[h, k], sd[h, k] = d[:n].mean(axis=-1), d[:n].std(axis=-1, ddof=1)
            reached[h] = k + 1
    return LookStats(mean, sd, reached)


@dataclass(frozen=True)
class Family:
    """The decided family, shapes (..., H).

    ``verdict``: code; ``look``: index of the deciding look (-1: open); ``seeds``: seeds at that look,
    else at the last look reached (0 before the first); ``low``/``high``: the decision interval (the
    running interval at the shares the claim held when decided, or holds now); ``level``: its
    two-sided error rate; ``share_s``/``share_c``: the one-sided levels of the claim's support and
    contradiction tests (before spending over the looks); ``sim_low``/``sim_high``: the interval at the
    initial shares over every look reached, simultaneous over the family at 1 - alpha.
    """

    verdict: np.ndarray
    look: np.ndarray
    seeds: np.ndarray
    low: np.ndarray
    high: np.ndarray
    level: np.ndarray
    share_s: np.ndarray
    share_c: np.ndarray
    sim_low: np.ndarray
    sim_high: np.ndarray


def _quantiles(levels: np.ndarray, spend: np.ndarray, looks: tuple[int, ...]) -> np.ndarray:
    """t quantiles of one-sided ``levels[j] * spend[k]`` at looks[k] - 1 degrees of freedom: (J, L)."""
    p = np.outer(levels, spend)
    df = np.asarray(looks, dtype=float) - 1.0
    with np.errstate(divide="ignore", invalid="ignore"):
        q = stats.t.isf(p, df)
    return np.where(p > 0, q, np.inf)


def _running(mean: np.ndarray, se: np.ndarray, valid: np.ndarray, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The running intersection over the looks (last axis) of the one-sided bounds mean -+ q se: the
    running maximum of the lower bounds and minimum of the upper ones (looks not reached: no bound)."""
    with np.errstate(invalid="ignore"):
        half = q * se
        low = np.where(valid, mean - half, -np.inf)
        high = np.where(valid, mean + half, np.inf)
    low[np.isnan(low)], high[np.isnan(high)] = -np.inf, np.inf
    return np.maximum.accumulate(low, axis=-1), np.minimum.accumulate(high, axis=-1)


def holm(stats_: LookStats, kinds: Sequence[str], margins: Sequence[float], alpha: float, spend: np.ndarray,
         looks: tuple[int, ...], support: float = 0.5) -> Family:
    """Decide H hypotheses (``kinds``/``margins`` per hypothesis) with Holm per direction of verdict
    over group-sequential t tests; ``spend[k]``: the fraction of a level look k spends; ``support``:
    the part of ``alpha`` of the support family (the contradiction family has the rest). Leading axes
    of ``stats_`` (e.g. simulated studies) are independent families."""
    kinds = list(kinds)
    mean, sd = np.asarray(stats_.mean, dtype=float), np.asarray(stats_.sd, dtype=float)
    lead, (H, L) = mean.shape[:-2], mean.shape[-2:]
    mean, sd = mean.reshape(-1, H, L), sd.reshape(-1, H, L)
    reached = np.broadcast_to(np.asarray(stats_.reached), (*lead, H)).reshape(-1, H)
    R = mean.shape[0]
    se = sd / np.sqrt(np.asarray(looks, dtype=float))
    valid = np.arange(L)[None, None, :] < reached[:, :, None]
    eq = np.array([k == "equivalence" for k in kinds], dtype=bool)
    margin = np.asarray(margins, dtype=float)
    boundary = np.where(np.array([k == "non-inferiority" for k in kinds]), -margin, 0.0)
    rest = np.maximum(H - np.arange(H + 1), 1)
    levels_s, levels_c = alpha * support / rest, alpha * (1 - support) / rest  # Holm: family / (K - rejected)
    q_s = _quantiles(levels_s, spend, looks)         # the support family's one-sided bounds
    q_c = _quantiles(levels_c, spend, looks)         # the contradiction family's
    q_h = _quantiles(levels_c / 2, spend, looks)     # each bound of equivalence's contradiction test

    def bounds(rows: np.ndarray, cols: np.ndarray, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Running (low, high) of hypotheses ``cols`` in families ``rows``; q: (rows, L) or (rows, cols, L)."""
        q = q[:, None, :] if q.ndim == 2 else q[:, cols, :]
        ix = np.ix_(rows, cols)
        return _running(mean[ix], se[ix], valid[ix], q)

    def tests(rows: np.ndarray, s: np.ndarray, c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per look (running): does each hypothesis's support test reject, does its contradiction test;
        ``s``/``c``: the rejected counts that set the levels, per family (rows,) or hypothesis (rows, H)."""
        support_, contra = np.zeros((rows.size, H, L), bool), np.zeros((rows.size, H, L), bool)
        one, two = np.flatnonzero(~eq), np.flatnonzero(eq)
        if one.size:  # superiority and non-inferiority: one bound each way
            low = bounds(rows, one, q_s[s])[0]
            high = bounds(rows, one, q_c[c])[1]
            support_[:, one], contra[:, one] = low > boundary[one, None], high < boundary[one, None]
        if two.size:  # equivalence: TOST, or the interval wholly outside the margins
            low, high = bounds(rows, two, q_s[s])
            support_[:, two] = (low > -margin[two, None]) & (high < margin[two, None])
            low, high = bounds(rows, two, q_h[c])
            contra[:, two] = (low > margin[two, None]) | (high < -margin[two, None])
        here = valid[rows]
        return support_ & here, contra & here

    code = np.zeros((R, H), dtype=int)
    s, c = np.zeros(R, dtype=int), np.zeros(R, dtype=int)
    rows = np.arange(R)  # the families to test again: at first all, then those whose levels rose
    while rows.size:  # to the fixed point: Holm's shortcut, in each family and over all looks so far
        support_, contra = tests(rows, s[rows], c[rows])
        decisive = support_ | contra
        first = decisive.argmax(axis=-1)
        new = (code[rows] == OPEN) & decisive.any(axis=-1)
        supported = new & np.take_along_axis(support_, first[..., None], axis=-1)[..., 0]
        r, h = np.nonzero(new)
        code[rows[r], h] = np.where(supported[r, h], SUPPORTED, CONTRADICTED)
        s[rows] += supported.sum(axis=1)
        c[rows] += (new & ~supported).sum(axis=1)
        rows = rows[new.any(axis=1)]
    # Each claim's tests at the level the final state gives it: an open claim's family level, and a
    # decided claim's as it was with every other rejection of its family made (Holm's level for it,
    # whatever the order of the rejections); its verdict's look is the first decisive one there.
    s_at = s[:, None] - (code == SUPPORTED)
    c_at = c[:, None] - (code == CONTRADICTED)
    support_, contra = tests(np.arange(R), s_at, c_at)
    first = lambda x: np.where(x.any(axis=-1), x.argmax(axis=-1), -1)  # noqa: E731
    look = np.where(code == SUPPORTED, first(support_), np.where(code == CONTRADICTED, first(contra), -1))

    # The decision interval, at the shares held, up to the deciding look (open: the last one reached).
    everything, cols = np.arange(R), np.arange(H)
    last = np.maximum(reached - 1, 0)
    stop = np.where(look >= 0, look, last)[..., None]
    at = lambda x: np.take_along_axis(x, stop, axis=-1)[..., 0]  # noqa: E731
    low_s, high_s = (at(x) for x in bounds(everything, cols, q_s[s_at]))
    high_c = at(bounds(everything, cols, q_c[c_at])[1])
    low_h, high_h = (at(x) for x in bounds(everything, cols, q_h[c_at]))
    low = np.where(eq, np.where(code == SUPPORTED, low_s, np.where(code == CONTRADICTED, low_h,
                                                                    np.minimum(low_s, low_h))), low_s)
    high = np.where(eq, np.where(code == SUPPORTED, high_s, np.where(code == CONTRADICTED, high_h,
                                                                      np.maximum(high_s, high_h))), high_c)
    share_s, share_c = levels_s[s_at], levels_c[c_at]
    level = np.where(eq, np.where(code == SUPPORTED, 2 * share_s, np.where(code == CONTRADICTED, share_c,
                                                                           np.minimum(2 * share_s, share_c))),
                     share_s + share_c)
    # The simultaneous interval: alpha / K two-sided (half on each side), spent over every look reached.
    q_sim = np.broadcast_to(_quantiles(np.array([alpha / (2 * H)]), spend, looks), (R, L))
    sim_low, sim_high = (np.take_along_axis(x, last[..., None], axis=-1)[..., 0]
                         for x in bounds(everything, cols, q_sim))
    looks_arr = np.asarray(looks)
    seeds = np.where(look >= 0, looks_arr[np.maximum(look, 0)], np.where(reached > 0, looks_arr[last], 0))
    shape = (*lead, H)
    return Family(*(x.reshape(shape) for x in (code, look, seeds, low, high, level, share_s, share_c,
                                                sim_low, sim_high)))


def first_look(mean: np.ndarray, sd: np.ndarray, n: np.ndarray, kinds: Sequence[str], margins: Sequence[float],
               side_s: np.ndarray, side_c: np.ndarray, spend: np.ndarray, looks: tuple[int, ...]) -> np.ndarray:
    """The first look after ``n`` seeds at which each hypothesis would be decided if its observed
    ``mean`` and ``sd`` held (0: none would, or they are unknown), shapes (..., H).

    ``side_s``/``side_c``: the one-sided level (before spending over the looks) of the bound that
    decides toward support / toward contradiction.
    """
    mean, sd = np.asarray(mean, dtype=float), np.asarray(sd, dtype=float)
    equivalence = np.array([k == "equivalence" for k in kinds])
    margin = np.asarray(margins, dtype=float)
    boundary = np.where(np.array([k == "non-inferiority" for k in kinds]), -margin, 0.0)
    with np.errstate(invalid="ignore"):
        toward = np.where(equivalence, np.abs(mean) < margin, mean > boundary)
        gap = np.where(equivalence, np.abs(margin - np.abs(mean)), np.abs(mean - boundary))
    side = np.where(toward, side_s, side_c)
    looks_arr = np.asarray(looks, dtype=float)
    unique, where = np.unique(side, return_inverse=True)
    q = _quantiles(unique, np.asarray(spend, dtype=float), looks)[where.reshape(side.shape)]
    with np.errstate(invalid="ignore"):
        half = q * sd[..., None] / np.sqrt(looks_arr)
        ok = (looks_arr > np.asarray(n)[..., None]) & (half < gap[..., None])
    ok &= np.isfinite(mean)[..., None] & np.isfinite(sd)[..., None]
    return np.where(ok.any(axis=-1), looks_arr.astype(int)[ok.argmax(axis=-1)], 0)
