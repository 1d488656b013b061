"""Aggregation and tests over seeds, with ``scipy.stats`` doing the statistics.

Every number a report shows comes from here: an arm's mean, standard deviation and confidence
interval over seeds (``summarize_arm``), the comparison of two arms (``compare``: a paired test over
the seeds both arms ran, Welch's t-test when fewer than two seeds are shared), the Holm correction
over a family of comparisons (``holm``), the seeds a comparison would need (``seeds_needed``), and
which arms are within noise of the best one (``tied_with_best``).

Outputs are NaN-free: what cannot be computed (the spread of one value, a test on one seed) is
``None``, and degenerate inputs (identical values) are handled before scipy sees them, so no
``RuntimeWarning`` escapes.

Example:
    >>> s = summarize_arm([91.2, 91.5, 91.4])
    >>> round(s.mean, 2), s.n
    (91.37, 3)
    >>> c = compare({0: 91.2, 1: 91.5, 2: 91.4}, {0: 90.9, 1: 91.0, 2: 91.3})
    >>> c.test, c.n
    ('paired t', 3)
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np
from scipy import stats

TESTS = ("t", "wilcoxon")
ALPHA = 0.05


@dataclass(frozen=True)
class ArmStats:
    """Summary of one arm's values over seeds. ``None`` where ``n`` is too small to tell."""

    n: int
    mean: float | None
    std: float | None  # sample standard deviation (ddof = 1)
    ci_low: float | None  # t-distribution confidence interval of the mean
    ci_high: float | None
    confidence: float = 0.95
    boot_low: float | None = None  # bootstrap (BCa) interval of the mean, when asked for
    boot_high: float | None = None


@dataclass(frozen=True)
class Comparison:
    """Arm A against arm B. ``delta`` = mean(A) - mean(B); ``None`` where it cannot be computed.

    ``p_a_beats_b`` is the posterior-predictive probability that A beats B on a new seed (see
    ``compare``); ``n`` is the number of paired seeds (0 for Welch's test).
    """

    test: str  # "paired t", "wilcoxon signed-rank", "Welch t" or "none"
    paired: bool
    n: int
    n_a: int
    n_b: int
    delta: float | None
    p_value: float | None
    ci_low: float | None
    ci_high: float | None
    p_a_beats_b: float | None
    sd_diff: float | None  # spread of a difference: paired SD, or sqrt(var_a + var_b) for Welch
    confidence: float = 0.95


def _f(x: object) -> float | None:
    """A plain float, or None for NaN / infinity."""
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


def _t_interval(mean: float, se: float, df: float, confidence: float) -> tuple[float, float]:
    if se == 0:  # scipy warns on a zero scale; the interval is the point itself
        return mean, mean
    low, high = stats.t.interval(confidence, df, loc=mean, scale=se)
    return float(low), float(high)


def summarize_arm(values: Sequence[float], confidence: float = 0.95, bootstrap: bool = False,
                  seed: int = 0, n_resamples: int = 9999) -> ArmStats:
    """Mean, SD (ddof = 1) and t confidence interval of ``values``; optionally a bootstrap interval.

    The t interval is ``scipy.stats.t.interval`` at ``mean`` with scale ``sem``; the bootstrap one
    is ``scipy.stats.bootstrap`` (BCa, ``n_resamples``, seeded with ``seed``). With one value the
    SD and the intervals are ``None``; with none, everything but ``n`` is.

    >>> summarize_arm([1.0]).std is None
    True
    """
    x = np.asarray(values, dtype=float)
    n = int(x.size)
    if n == 0:
        return ArmStats(0, None, None, None, None, confidence)
    mean = float(x.mean())
    if n == 1:
        return ArmStats(1, mean, None, None, None, confidence)
    std = float(x.std(ddof=1))
    low, high = _t_interval(mean, float(stats.sem(x)), n - 1, confidence)
    boot_low = boot_high = None
    if bootstrap:
        boot_low, boot_high = _bootstrap_ci(x, confidence, seed, n_resamples)
    return ArmStats(n, mean, std, low, high, confidence, boot_low, boot_high)


def _bootstrap_ci(x: np.ndarray, confidence: float, seed: int, n_resamples: int) -> tuple[float | None, float | None]:
    if np.ptp(x) == 0:
        return float(x[0]), float(x[0])
    with warnings.catch_warnings():
        # Few seeds make BCa degenerate at times; that comes back as NaN, reported as None.
        warnings.simplefilter("ignore")
        res = stats.bootstrap((x,), np.mean, confidence_level=confidence, n_resamples=n_resamples,
                              rng=np.random.default_rng(seed))
    return _f(res.confidence_interval.low), _f(res.confidence_interval.high)


def compare(a_by_seed: Mapping[int, float], b_by_seed: Mapping[int, float], test: str = "t",
            confidence: float = 0.95) -> Comparison:
    """Compare arm A with arm B, each given as ``{seed: value}``.

    With >= 2 seeds in common the comparison is paired over those seeds: ``scipy.stats.ttest_rel``
    (``test="t"``) or ``scipy.stats.wilcoxon`` (``test="wilcoxon"``); ``delta`` is the mean paired
    difference and the interval is the paired t interval of that mean (also for Wilcoxon, which has
    no interval of its own in scipy). Otherwise the arms are compared as independent samples with
    Welch's ``scipy.stats.ttest_ind(equal_var=False)`` over all their values, ``delta`` is the
    difference of means and the interval is Welch's.

    ``p_a_beats_b`` = P(d_new > 0), the posterior-predictive probability (flat prior) that A beats
    B on a new seed: for paired data d_new ~ mean_d + sd_d * sqrt(1 + 1/n) * T_{n-1}; for Welch,
    d_new ~ delta + sqrt(s_a^2 (1 + 1/n_a) + s_b^2 (1 + 1/n_b)) * T_df with Welch's df. Identical
    differences (zero spread) give p = 1 and P = 0.5 when they are all 0, p = 0 and P = 0 or 1
    otherwise.

    >>> compare({0: 1.0, 1: 2.0}, {0: 1.0, 1: 2.0}).p_value
    1.0
    """
    if test not in TESTS:
        raise ValueError(f"unknown test {test!r}; expected one of: {', '.join(TESTS)}")
    common = sorted(set(a_by_seed) & set(b_by_seed))
    if len(common) >= 2:
        a = np.array([a_by_seed[s] for s in common], dtype=float)
        b = np.array([b_by_seed[s] for s in common], dtype=float)
        return _paired(a, b, test, confidence, len(a_by_seed), len(b_by_seed))
    return _welch(np.array(list(a_by_seed.values()), dtype=float),
                  np.array(list(b_by_seed.values()), dtype=float), confidence)


def _paired(a: np.ndarray, b: np.ndarray, test: str, confidence: float, n_a: int, n_b: int) -> Comparison:
    d = a - b
    n = int(d.size)
    mean, sd = float(d.mean()), float(d.std(ddof=1))
    name = "paired t" if test == "t" else "wilcoxon signed-rank"
    low, high = _t_interval(mean, sd / math.sqrt(n), n - 1, confidence)
    if sd == 0:
        p, beats = (1.0, 0.5) if mean == 0 else (0.0, float(mean > 0))
    else:
        if test == "t":
            p = float(stats.ttest_rel(a, b).pvalue)
        elif not np.any(d):
            p = 1.0
        else:
            with warnings.catch_warnings():  # zeros among the differences: scipy notes it, we accept it
                warnings.simplefilter("ignore")
                p = float(stats.wilcoxon(a, b).pvalue)
        beats = float(stats.t.sf(0.0, n - 1, loc=mean, scale=sd * math.sqrt(1 + 1 / n)))
    return Comparison(name, True, n, n_a, n_b, mean, _f(p), low, high, _f(beats), sd, confidence)


def _welch(a: np.ndarray, b: np.ndarray, confidence: float) -> Comparison:
    n_a, n_b = int(a.size), int(b.size)
    if n_a == 0 or n_b == 0:
        return Comparison("none", False, 0, n_a, n_b, None, None, None, None, None, None, confidence)
    delta = float(a.mean() - b.mean())
    if n_a < 2 or n_b < 2:  # no spread on one side: nothing to test
        return Comparison("none", False, 0, n_a, n_b, delta, None, None, None, None, None, confidence)
    va, vb = float(a.var(ddof=1)), float(b.var(ddof=1))
    sd = math.sqrt(va + vb)
    if va == 0 and vb == 0:
        p, beats = (1.0, 0.5) if delta == 0 else (0.0, float(delta > 0))
        return Comparison("Welch t", False, 0, n_a, n_b, delta, p, delta, delta, beats, 0.0, confidence)
    res = stats.ttest_ind(a, b, equal_var=False)
    ci = res.confidence_interval(confidence)
    scale = math.sqrt(va * (1 + 1 / n_a) + vb * (1 + 1 / n_b))
    beats = stats.t.sf(0.0, float(res.df), loc=delta, scale=scale)
    return Comparison("Welch t", False, 0, n_a, n_b, delta, _f(res.pvalue), _f(ci.low), _f(ci.high),
                      _f(beats), sd, confidence)


def holm(p_values: Sequence[float | None]) -> list[float | None]:
    """Holm's step-down adjustment of a family of p-values (``None`` entries are left out).

    scipy has no Holm (``scipy.stats.false_discovery_control`` offers only Benjamini-Hochberg and
    -Yekutieli, which control the false discovery rate, not the family-wise error rate that "tied
    with the best" needs) and statsmodels is not a dependency, so here are its few lines:
    sort ascending, multiply the i-th smallest (0-based) by m - i, take the running maximum, cap at 1.

    >>> holm([0.01, 0.04, 0.03])
    [0.03, 0.06, 0.06]
    """
    present = [(p, i) for i, p in enumerate(p_values) if p is not None]
    m = len(present)
    adjusted: list[float | None] = [None] * len(p_values)
    running = 0.0
    for rank, (p, i) in enumerate(sorted(present)):
        running = max(running, min(1.0, (m - rank) * p))
        adjusted[i] = round(running, 15)
    return adjusted


def paired_power(n: int, delta: float, sd: float, alpha: float = ALPHA) -> float:
    """Power of a two-sided paired t-test with ``n`` pairs, true mean difference ``delta`` and SD
    of the differences ``sd``: P(|T'| > t_crit) with T' ~ noncentral t (``scipy.stats.nct``),
    df = n - 1, noncentrality delta / sd * sqrt(n).

    >>> round(paired_power(10, 1.0, 1.0), 3)
    0.803
    """
    if n < 2:
        return 0.0
    if sd == 0:
        return 1.0 if delta else alpha
    df, nc = n - 1, abs(delta) / sd * math.sqrt(n)
    crit = stats.t.isf(alpha / 2, df)
    return float(stats.nct.sf(crit, df, nc) + stats.nct.cdf(-crit, df, nc))


def seeds_needed(delta: float | None, sd: float | None, alpha: float = ALPHA, power: float = 0.8,
                 max_n: int = 100_000) -> int | None:
    """Smallest number of seeds per arm (= pairs) for which a paired t-test at ``alpha`` detects a
    true difference ``delta`` with SD of differences ``sd`` with probability ``power``.

    ``None`` when ``delta`` is 0 or unknown, ``sd`` unknown, or more than ``max_n`` would be needed.

    >>> seeds_needed(1.0, 1.0)
    10
    >>> seeds_needed(0.0, 1.0) is None
    True
    """
    if delta is None or sd is None or delta == 0:
        return None
    if paired_power(max_n, delta, sd, alpha) < power:
        return None
    low, high = 1, 2  # power(low) < target <= power(high), by doubling then bisection
    while paired_power(high, delta, sd, alpha) < power:
        low, high = high, high * 2
    while high - low > 1:
        mid = (low + high) // 2
        low, high = (mid, high) if paired_power(mid, delta, sd, alpha) < power else (low, mid)
    return high


def best_arm(means: Mapping[str, float | None], lower_is_better: bool = False) -> str | None:
    """The key with the best mean (highest, or lowest for a loss); None when no mean is known."""
    known = {k: v for k, v in means.items() if v is not None}
    if not known:
        return None
    return (min if lower_is_better else max)(known, key=known.__getitem__)


def tied_with_best(adjusted_p_vs_best: Mapping[str, float | None], alpha: float = ALPHA) -> dict[str, bool]:
    """Which arms are within noise of the best: Holm-adjusted p vs the best >= ``alpha``.

    An arm that could not be tested (``None``: one seed, say) counts as tied: there is no evidence
    that it is worse. The best arm itself is passed with p = 1.0 or ``None`` and is tied too.

    >>> tied_with_best({"a": 0.01, "b": 0.2, "c": None})
    {'a': False, 'b': True, 'c': True}
    """
    return {k: p is None or p >= alpha for k, p in adjusted_p_vs_best.items()}
