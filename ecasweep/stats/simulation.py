"""Simulated studies decided by the code that decides real claims, with seeds added round by round as
``run --until-resolved`` adds them: the error rates and the seeds of a design (tests/test_claims.py,
tests/test_design.py, benchmarks/design_simulation.py).

A simulated study is a set of arms (one per backbone and model) with a value on each seed 0..63 (the
*potential* outcomes: what that arm would score on that seed), and a list of hypotheses, each
``(backbone, a, b, kind, margin)`` as ``report.verdicts.hypotheses`` derives them from a study.
``simulate`` starts every arm at ``initial`` seeds, then repeats what ``sweep.rounds`` does: decide
the family (``sequential.decide_family``), project the seeds each open claim needs
(``sequential.needed``), ask ``sequential.plan_round`` for the next round's targets and give those
arms their seeds, until ``plan_round`` says stop. Every round's verdicts count: a verdict that is
wrong at any round is an error, as if the table had been read then.

Example:
    >>> rng = np.random.default_rng(0)
    >>> hyps = [("r8", "eca", "se", "superiority", 0.0), ("r8", "eca", "none", "superiority", 0.0)]
    >>> arms = arms_of(hyps)
    >>> out = simulate(noise(rng, (100, len(arms), 64), 0.5), hyps, arms, DEFAULT, effects=[1.0, 0.0, 0.0])
    >>> bool((out.verdict == SUPPORTED).mean() > 0.9), bool(out.wrong.mean() < 0.05)
    (True, True)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from .sequential import (ALPHA, DEFAULT, LOOKS, OPEN, SUPPORTED, Design, LookStats, decide_family,  # noqa: F401
                         needed, plan_round, round_looks, verdict)

NOISES = ("normal", "heavy", "skewed", "very-skewed", "exponential")
#: the gamma shape of each skewed noise
SHAPES = {"skewed": 4.0, "very-skewed": 2.0, "exponential": 1.0}
#: configurations of true differences for error rates (``shifts``)
CONFIGS = ("all-null", "boundary", "recycling")


def arms_of(hypotheses: Sequence[tuple]) -> list[tuple[str, str]]:
    """The (backbone, arm) pairs the hypotheses compare, in first-seen order."""
    arms: list[tuple[str, str]] = []
    for backbone, a, b, *_ in hypotheses:
        for arm in (a, b):
            if (backbone, arm) not in arms:
                arms.append((backbone, arm))
    return arms


def noise(rng: np.random.Generator, shape: tuple[int, ...], sd_diff: float, kind: str = "normal") -> np.ndarray:
    """Arm noise (mean 0) whose paired differences between two arms have SD ``sd_diff``.

    ``normal``; ``heavy``: Student t with 3 degrees of freedom (infinite kurtosis); ``skewed``: a
    centred gamma of shape 4 (skewness 1) whose sign alternates between arms (axis -2), so that the
    differences of two arms of opposite signs have skewness 0.71 and those of the same sign are
    symmetric with heavier tails than normal; ``very-skewed``: the same with shape 2 (arm skewness
    1.41, differences 1.0); ``exponential``: shape 1 (2 and 1.41) -- the last two are stress tests
    beyond what the t test is good for at these levels, whatever the design (docs/claims.md).
    """
    scale = sd_diff / np.sqrt(2)
    if kind == "normal":
        return rng.normal(0.0, scale, shape)
    if kind == "heavy":
        return rng.standard_t(3, shape) * scale / np.sqrt(3.0)
    if kind in SHAPES:
        k = SHAPES[kind]
        sign = np.where(np.arange(shape[-2]) % 2 == 0, 1.0, -1.0)[:, None]
        return (rng.gamma(k, 1.0, shape) - k) / np.sqrt(k) * sign * scale
    raise ValueError(f"unknown noise {kind!r}; expected one of: {', '.join(NOISES)}")


def boundary(kind: str, margin: float) -> float:
    """The true difference on the claim's least favourable boundary (superiority 0, non-inferiority
    -margin, equivalence +margin): both verdicts are wrong there, and each as likely as it can be."""
    return {"superiority": 0.0, "non-inferiority": -margin, "equivalence": margin}[kind]


def shifts(config: str, hypotheses: Sequence[tuple], sd_diff: float) -> np.ndarray:
    """The true difference of each hypothesis (arms equal otherwise) in a configuration of ``CONFIGS``.

    ``all-null``: every difference 0. ``boundary``: every claim on its boundary. ``recycling``: every
    other claim (the first, third, ...) 6 SDs past its boundary, decided within the first looks (the
    superiority and non-inferiority ones supported, the equivalence ones contradicted), so that their
    shares of alpha pass to the rest, which sit on their boundaries: the configuration where the
    recycled alpha can do the most harm.
    """
    if config not in CONFIGS:
        raise ValueError(f"unknown configuration {config!r}; expected one of: {', '.join(CONFIGS)}")
    out = []
    for i, (_, _, _, kind, margin) in enumerate(hypotheses):
        if config == "all-null":
            out.append(0.0)
        elif config == "boundary" or i % 2:
            out.append(boundary(kind, float(margin)))
        else:
            out.append(boundary(kind, float(margin)) + 6 * sd_diff)
    return np.array(out)


@dataclass(frozen=True)
class Outcome:
    """Per simulated study (axis 0) and hypothesis (axis 1): the last table's verdicts and seeds at
    the verdict (``Family.seeds``, the deciding look); ``first``: the seeds the hypothesis had when a
    verdict first appeared in a table (0: never), the seeds it cost; ``wrong``: some verdict was wrong at
    some round; ``cells``: the seeds trained over all arms; ``rounds``: the rounds run."""

    verdict: np.ndarray
    seeds: np.ndarray
    first: np.ndarray
    wrong: np.ndarray
    cells: np.ndarray
    rounds: np.ndarray


def _grid_stats(d: np.ndarray, ns: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """Mean and SD (ddof = 1) of the first n differences for each n of ``ns``: (..., len(ns))."""
    mean = np.stack([d[..., :n].mean(axis=-1) for n in ns], axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        sd = np.stack([d[..., :n].std(axis=-1, ddof=1) if n > 1 else np.full(d.shape[:-1], np.nan)
                       for n in ns], axis=-1)
    return mean, sd


def simulate(noise_: np.ndarray, hypotheses: Sequence[tuple], arms: Sequence[tuple[str, str]], design: Design,
             effects: Sequence[float] | None = None, shift: Sequence[float] | None = None, alpha: float = ALPHA,
             initial: int = 2, max_seeds: int = LOOKS[-1], rounds: bool = True,
             looks: tuple[int, ...] = LOOKS) -> Outcome:
    """Run simulated studies: arm ``a`` scores ``effects[a] + noise_[:, a, seed]`` (``noise_``: studies,
    arms, seeds, mean 0), the ``arms`` as ``arms_of`` lists them; ``shift`` moves each hypothesis's
    differences (and its true mean difference) by its value, e.g. onto its boundary.

    ``rounds=False``: every arm has all its seeds at once (a full sample, no rounds).
    """
    hypotheses = list(hypotheses)
    R, A, N = noise_.shape
    effects = np.zeros(A) if effects is None else np.asarray(effects, dtype=float)
    index = {arm: i for i, arm in enumerate(arms)}
    pa = np.array([index[(h[0], h[1])] for h in hypotheses])
    pb = np.array([index[(h[0], h[2])] for h in hypotheses])
    kinds = [h[3] for h in hypotheses]
    margins = [float(h[4]) for h in hypotheses]
    shift = np.zeros(len(hypotheses)) if shift is None else np.asarray(shift, dtype=float)
    truth = effects[pa] - effects[pb] + shift
    d = noise_[:, pa, :] - noise_[:, pb, :] + truth[None, :, None]  # (R, H, N)
    right = np.array([int(verdict(np.array(mu), np.array(mu), k, m)) for mu, k, m in zip(truth, kinds, margins)])
    grid = sorted({initial, *[n for n in looks if n <= N]})
    g_mean, g_sd = _grid_stats(d, grid)
    at_look = [grid.index(n) for n in looks]
    stats_mean, stats_sd = g_mean[..., at_look], g_sd[..., at_look]
    seeds = np.full((R, A), N if not rounds else initial, dtype=int)
    active = np.ones(R, dtype=bool)
    wrong = np.zeros(R, dtype=bool)
    n_rounds = np.zeros(R, dtype=int)
    first = np.zeros((R, len(hypotheses)), dtype=int)
    looks_arr = np.asarray(looks)
    while True:
        n = np.minimum(seeds[:, pa], seeds[:, pb])
        reached = np.searchsorted(looks_arr, n, side="right")
        family = decide_family(LookStats(stats_mean, stats_sd, reached), kinds, margins, design, alpha, looks)
        wrong |= ((family.verdict != OPEN) & (family.verdict != right[None, :])).any(axis=1)
        first = np.where((first == 0) & (family.verdict != OPEN), n, first)
        if not rounds or not active.any():
            break
        where = np.searchsorted(np.asarray(grid), n)  # n is the initial seeds or a look
        now_mean = np.take_along_axis(g_mean, where[..., None], axis=-1)[..., 0]
        now_sd = np.take_along_axis(g_sd, where[..., None], axis=-1)[..., 0]
        need = needed(now_mean, now_sd, n, family, kinds, margins, design, looks)
        for r in np.flatnonzero(active):
            open_claims = [(hypotheses[h][0], pa[h], pb[h], int(n[r, h]), int(need[r, h]) or None)
                           for h in np.flatnonzero(family.verdict[r] == OPEN)]
            plan = plan_round(open_claims, max_seeds, round_looks(design, looks))
            if plan.stop:
                active[r] = False
                continue
            for (_, arm), target in plan.targets.items():
                seeds[r, arm] = max(seeds[r, arm], target)
            n_rounds[r] += 1
    return Outcome(family.verdict, family.seeds, first, wrong, seeds.sum(axis=1), n_rounds)
