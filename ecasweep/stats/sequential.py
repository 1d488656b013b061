"""Claims about arms, decided over seeds with error control that survives adding seeds.

A claim compares arm A with arm B on one backbone through the paired differences d_i = A_i - B_i
over the seeds both ran (mean difference mu, in percentage points):

- superiority (A > B): supported when the interval lies above 0, contradicted when below 0;
- non-inferiority (A > B - margin): supported when the interval lies above -margin, contradicted
  when below it;
- equivalence (|A - B| < margin): supported when the interval lies inside (-margin, margin), i.e.
  both one-sided tests of TOST (Schuirmann 1987) reject; contradicted when it lies wholly outside.

Otherwise the claim is open. Verdicts are taken only at the looks ``LOOKS`` (6, 8, 12, 16, ... 64
seeds), on the first n seeds in seed order, by a group-sequential design with alpha spending (Lan &
DeMets 1983, "Discrete sequential boundaries for clinical trials", Biometrika 70(3):659-663) whose
looks are exact t bounds of the paired differences, combined by the Bonferroni inequality (in place
of the exact joint distribution of the look statistics, which for a t statistic with unknown
variance has no convenient form). A study names its ``Design`` (``design_of``):

- ``holm`` with a spending function (the default, ``DEFAULT``; ``recycling``): alpha shared between
  the study's hypotheses by Holm's procedure per direction of verdict, a decided claim's share passing
  to the open ones, each share spent over the looks by the spending function (``spending``);
- ``bonferroni-even`` (``LEGACY``, the design of every study stored before designs were named):
  each look of each of the K hypotheses spends ``alpha / (K x looks)`` as a two-sided t interval, and
  the interval of a claim is the running intersection of its looks' intervals. Every wrong verdict
  needs an interval that misses the true mu, so the family-wise error is at most the chance that any
  interval ever misses, alpha.

Both bound the family-wise error by ``alpha`` whatever the dependence between claims sharing an arm,
however seeds are added and whenever the table is read: a look depends only on the first n seeds in
seed order, never on when they were looked at (docs/claims.md has the argument, the simulated error
rates and the seeds used). ``decide_family`` decides any list of hypotheses under a design;
``sequential`` is the legacy design's test of one claim.

Example:
    >>> import numpy as np
    >>> d = np.array([0.9, 1.3, 0.7, 1.1, 1.0, 0.8, 1.2, 0.9])   # A - B over 8 seeds (pp)
    >>> v = sequential(d, "superiority", 0.0, look_alphas(0.05))
    >>> VERDICTS[int(v.verdict)], int(v.seeds)
    ('supported', 6)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np
from scipy import stats

from ..spec.claims import DESIGNS as PROCEDURES, KINDS  # noqa: F401  (re-exported)
from . import spending
from .recycling import CONTRADICTED, OPEN, SUPPORTED, Family, LookStats, first_look, holm, look_stats  # noqa: F401
#: verdict code -> name
VERDICTS = {OPEN: "open", SUPPORTED: "supported", CONTRADICTED: "contradicted"}
#: the seed counts at which verdicts are taken (the design's looks)
LOOKS = (6, 8, 12, 16, 24, 32, 48, 64)
ALPHA = 0.05


def family_alpha(n_claims: int, alpha: float = ALPHA) -> float:
    """The error rate one claim may spend: Bonferroni over the study's (claim, backbone) pairs.

    >>> family_alpha(10)
    0.005
    """
    return alpha / max(1, n_claims)


def look_alphas(claim_alpha: float, looks: tuple[int, ...] = LOOKS) -> np.ndarray:
    """The two-sided level spent at each look: ``claim_alpha`` split evenly over the looks.

    >>> look_alphas(0.05, (6, 8)).tolist()
    [0.025, 0.025]
    """
    return np.full(len(looks), claim_alpha / len(looks))


def naive_alphas(claim_alpha: float, looks: tuple[int, ...] = LOOKS) -> np.ndarray:
    """Every look at the full ``claim_alpha``: re-testing as if each look were the only one.

    Not a valid design (tests/test_claims.py shows its error exceeding alpha); here to compare.
    """
    return np.full(len(looks), claim_alpha)


def t_interval(diffs: np.ndarray, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """Two-sided ``1 - alpha`` t interval of the mean over the last axis (>= 2 values).

    >>> lo, hi = t_interval(np.array([1.0, 2.0, 3.0]), 0.05)
    >>> round(float(lo), 3), round(float(hi), 3)
    (-0.484, 4.484)
    """
    n = diffs.shape[-1]
    mean = diffs.mean(axis=-1)
    half = stats.t.isf(alpha / 2, n - 1) * diffs.std(axis=-1, ddof=1) / np.sqrt(n)
    return mean - half, mean + half


def verdict(low: np.ndarray, high: np.ndarray, kind: str, margin: float) -> np.ndarray:
    """The verdict codes an interval gives a claim of ``kind`` (vectorised).

    >>> verdict(np.array([0.2, -0.3, -1.0]), np.array([0.9, 0.4, -0.6]), "superiority", 0.0).tolist()
    [1, 0, -1]
    """
    if kind == "superiority":
        return np.where(low > 0, SUPPORTED, np.where(high < 0, CONTRADICTED, OPEN))
    if kind == "non-inferiority":
        return np.where(low > -margin, SUPPORTED, np.where(high < -margin, CONTRADICTED, OPEN))
    if kind == "equivalence":
        inside = (low > -margin) & (high < margin)
        outside = (low > margin) | (high < -margin)
        return np.where(inside, SUPPORTED, np.where(outside, CONTRADICTED, OPEN))
    raise ValueError(f"unknown claim kind {kind!r}; expected one of: {', '.join(KINDS)}")


@dataclass(frozen=True)
class Sequential:
    """Where the looks of one claim (or of many, as arrays) ended."""

    verdict: np.ndarray  # code at the first decisive look, else OPEN
    seeds: np.ndarray    # seeds at that look, else the last look reached (0 before the first)
    low: np.ndarray      # the running interval there (-inf/inf before the first look)
    high: np.ndarray


def sequential(diffs: np.ndarray, kind: str, margin: float, alphas: np.ndarray,
               looks: tuple[int, ...] = LOOKS) -> Sequential:
    """Take the looks ``looks`` that ``diffs`` (..., n seeds in seed order) reaches, each at its
    level in ``alphas``; stop at the first decisive one. Shapes (...): many claims or simulations
    at once.

    >>> d = np.zeros(8) + np.array([0.1, -0.1] * 4)
    >>> VERDICTS[int(sequential(d, "equivalence", 0.5, look_alphas(0.05)).verdict)]
    'supported'
    """
    diffs = np.asarray(diffs, dtype=float)
    ns = [n for n in looks if n <= diffs.shape[-1]]
    mean = np.full((*diffs.shape[:-1], len(looks)), np.nan)
    sd = np.full_like(mean, np.nan)
    for k, n in enumerate(ns):  # the looks reached: the first n seeds
        mean[..., k], sd[..., k] = diffs[..., :n].mean(axis=-1), diffs[..., :n].std(axis=-1, ddof=1)
    return sequential_at(LookStats(mean, sd, len(ns)), kind, margin, alphas, looks)


def sequential_at(stats_: LookStats, kind: str, margin: float, alphas: np.ndarray,
                  looks: tuple[int, ...] = LOOKS) -> Sequential:
    """``sequential`` on the differences' statistics at the looks rather than the differences
    themselves (same arithmetic, hence the same numbers); ``stats_.reached`` may differ between
    elements (simulated studies whose claims reached different looks)."""
    mean, sd = np.asarray(stats_.mean, dtype=float), np.asarray(stats_.sd, dtype=float)
    shape = mean.shape[:-1]
    reached = np.broadcast_to(np.asarray(stats_.reached), shape)
    code = np.zeros(shape, dtype=int)
    seeds = np.zeros(shape, dtype=int)
    low, high = np.full(shape, -np.inf), np.full(shape, np.inf)
    for k, (n, alpha) in enumerate(zip(looks, alphas)):
        here = reached > k
        if not here.any():
            break
        undecided = (code == OPEN) & here
        if alpha <= 0:  # a look that spends nothing bounds nothing
            seeds = np.where(undecided, n, seeds)
            continue
        with np.errstate(invalid="ignore"):
            half = stats.t.isf(alpha / 2, n - 1) * sd[..., k] / np.sqrt(n)
            lo, hi = mean[..., k] - half, mean[..., k] + half
        low = np.where(undecided, np.maximum(low, lo), low)
        high = np.where(undecided, np.minimum(high, hi), high)
        now = verdict(low, high, kind, margin)
        seeds = np.where(undecided, n, seeds)
        code = np.where(undecided, now, code)
    return Sequential(code, seeds, low, high)


# Designs ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Design:
    """How a study's claims are decided: the procedure sharing alpha between hypotheses, and the
    spending function (``spending``) sharing each hypothesis's level between the looks.

    >>> LEGACY.name, DEFAULT.name
    ('bonferroni-even', 'holm-power-0.7-after-8')
    """

    procedure: str = "bonferroni"
    spending: str = spending.LEGACY

    def __post_init__(self) -> None:
        if self.procedure not in PROCEDURES:
            raise ValueError(f"expected one of: {', '.join(PROCEDURES)}, got {self.procedure!r}")
        spending.check(self.spending)

    @property
    def name(self) -> str:
        return f"{self.procedure}-{self.spending}"

    def spend(self, looks: tuple[int, ...] = LOOKS) -> np.ndarray:
        """The fraction of a hypothesis's level each look spends."""
        return spending.increments(self.spending, looks)


#: the design of studies stored before designs were named (issue 22): their verdicts read as they did
LEGACY = Design("bonferroni", spending.LEGACY)
#: the design of a new study that names none (docs/claims.md: chosen by simulation)
DEFAULT = Design("holm", spending.DEFAULT)


def round_looks(design: Design, looks: tuple[int, ...] = LOOKS) -> tuple[int, ...]:
    """The looks at which ``design`` can decide anything (those its spending gives a share): rounds of
    seeds go from one to the next and skip the others, where seeds would buy no verdict.

    >>> round_looks(DEFAULT)[:2], round_looks(LEGACY)[:2]
    ((12, 16), (6, 8))
    """
    return tuple(n for n, share in zip(looks, design.spend(looks)) if share > 0) or looks


def design_of(spec: Mapping) -> Design:
    """The design a study spec (dict) states; a spec stored without one has the legacy design.

    >>> design_of({}).name, design_of({"design": "holm", "spending": "pocock"}).name
    ('bonferroni-even', 'holm-pocock')
    """
    return Design(spec.get("design") or LEGACY.procedure, spec.get("spending") or LEGACY.spending)


def decide_family(stats_: LookStats, kinds: Sequence[str], margins: Sequence[float], design: Design = DEFAULT,
                  alpha: float = ALPHA, looks: tuple[int, ...] = LOOKS) -> Family:
    """Decide a family of hypotheses (a study's distinct (claim, backbone) pairs, or those of several
    studies) under ``design``; leading axes of ``stats_`` are independent families (simulations).

    ``bonferroni``: each of the K hypotheses spends alpha / K over the looks as two-sided t intervals
    (``sequential``); ``holm``: ``recycling.holm``.
    """
    kinds, margins = list(kinds), [float(m) for m in margins]
    spend = design.spend(looks)
    if not kinds:  # nothing to decide
        empty = np.zeros(np.shape(stats_.mean)[:-1])
        return Family(empty.astype(int), empty.astype(int) - 1, empty.astype(int), *([empty] * 7))
    if design.procedure == "holm":
        return holm(stats_, kinds, margins, alpha, spend, looks)
    mean = np.asarray(stats_.mean, dtype=float)
    H = mean.shape[-2]
    reached = np.broadcast_to(np.asarray(stats_.reached), mean.shape[:-1])
    claim_alpha = family_alpha(H, alpha)
    alphas = look_alphas(claim_alpha, looks) if design.spending == "even" else claim_alpha * spend
    parts = []
    for h in range(H):
        one = LookStats(mean[..., h, :], np.asarray(stats_.sd, dtype=float)[..., h, :], reached[..., h])
        parts.append(sequential_at(one, kinds[h], margins[h], alphas, looks))
    code, seeds, low, high = (np.stack([getattr(p, f) for p in parts], axis=-1)
                              for f in ("verdict", "seeds", "low", "high"))
    look = np.where(code != OPEN, np.searchsorted(np.asarray(looks), seeds), -1)
    sim_low, sim_high = _every_look(mean, np.asarray(stats_.sd, dtype=float), reached, alphas, looks)
    half = np.full(code.shape, claim_alpha / 2)
    return Family(code, look, seeds, low, high, np.full(code.shape, claim_alpha), half, half, sim_low, sim_high)


def _every_look(mean: np.ndarray, sd: np.ndarray, reached: np.ndarray, alphas: np.ndarray,
                looks: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """The running intersection of the two-sided intervals over every look reached."""
    low, high = np.full(reached.shape, -np.inf), np.full(reached.shape, np.inf)
    for k, (n, alpha) in enumerate(zip(looks, alphas)):
        if alpha <= 0:
            continue
        with np.errstate(invalid="ignore"):
            half = stats.t.isf(alpha / 2, n - 1) * sd[..., k] / np.sqrt(n)
        here = reached > k
        low = np.where(here, np.maximum(low, mean[..., k] - half), low)
        high = np.where(here, np.minimum(high, mean[..., k] + half), high)
    return low, high


def needed(mean: np.ndarray, sd: np.ndarray, n: np.ndarray, family: Family, kinds: Sequence[str],
           margins: Sequence[float], design: Design = DEFAULT, looks: tuple[int, ...] = LOOKS) -> np.ndarray:
    """For each hypothesis, the first look after its ``n`` seeds that would decide it at the shares it
    holds if the observed ``mean`` and ``sd`` (over those n seeds) held; 0 when none would.

    Under ``bonferroni-even`` this is ``seeds_to_decide``; under ``holm`` the shares are the ones the
    claim holds now (recycling may raise them later: the projection is conservative).
    """
    equivalence = np.array([k == "equivalence" for k in kinds])
    side_c = np.where(equivalence, family.share_c / 2, family.share_c) if design.procedure == "holm" \
        else family.share_c
    return first_look(mean, sd, n, kinds, margins, family.share_s, side_c, design.spend(looks), looks)


def distance(mean: float, kind: str, margin: float) -> float:
    """How far the mean difference is from the boundary a verdict must clear (pp)."""
    if kind == "superiority":
        return abs(mean)
    if kind == "non-inferiority":
        return abs(mean + margin)
    return abs(margin - abs(mean))


def seeds_to_decide(mean: float | None, sd: float | None, kind: str, margin: float, alpha: float,
                    after: int = 0, looks: tuple[int, ...] = LOOKS) -> int | None:
    """The first look after ``after`` seeds at which a claim would be decided if the observed mean
    difference and spread held; None when none would (or they are unknown).

    >>> seeds_to_decide(1.0, 0.5, "superiority", 0.0, family_alpha(26))
    12
    """
    if mean is None or sd is None:
        return None
    gap = distance(mean, kind, margin)
    alphas = look_alphas(alpha, looks)
    for n, a in zip(looks, alphas):
        if n > after and stats.t.isf(a / 2, n - 1) * sd / np.sqrt(n) < gap:
            return n
    return None


@dataclass(frozen=True)
class Round:
    """What the next round of ``run --until-resolved`` should do.

    ``targets``: (backbone, arm) -> seeds it should reach; ``futile``: indices of open claims that no
    look within ``max_seeds`` would decide at the observed spread; ``stop``: why no round is needed
    ("resolved": no claim open; "futility": every open claim is futile; "" when ``targets`` is not empty).
    """

    targets: dict[tuple[str, str], int]
    futile: list[int]
    stop: str


def plan_round(open_claims: list[tuple[str, str, str, int, int | None]], max_seeds: int,
               looks: tuple[int, ...] = LOOKS) -> Round:
    """The next round for the open claims, each ``(backbone, a, b, n, seeds_needed)``: both arms of
    every claim that can still be decided within ``max_seeds`` go to the next look after ``n``
    (one look at a time: verdicts change only at looks, and each look may end the claim).

    >>> plan_round([("resnet-8", "eca", "se", 6, 16), ("resnet-8", "eca", "none", 6, None)], 32)
    Round(targets={('resnet-8', 'eca'): 8, ('resnet-8', 'se'): 8}, futile=[1], stop='')
    >>> plan_round([], 32).stop
    'resolved'
    """
    targets: dict[tuple[str, str], int] = {}
    futile = []
    for i, (backbone, a, b, n, needed) in enumerate(open_claims):
        step = next((look for look in looks if look > n), None)
        if needed is None or needed > max_seeds or step is None or step > max_seeds:
            futile.append(i)
            continue
        for arm in (a, b):
            targets[(backbone, arm)] = max(targets.get((backbone, arm), 0), step)
    stop = "" if targets else ("futility" if futile else "resolved")
    return Round(targets, futile, stop)
