"""ecasweep.claims: verdicts, and the error rates of the sequential design, in simulated studies.

The simulations run the built-in kernel-size study's own claims (13 per backbone, 2 backbones)
through ``claims.sequential``, the code that decides real claims, with paired differences spread
like the quick profile's seeds (0.3-0.6 percentage points). docs/claims.md reports the same numbers.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as sst
from typer.testing import CliRunner

from ecasweep import claims
from ecasweep.cli import app
from ecasweep.errors import SpecError
from ecasweep.spec import load_study

ALPHA = 0.05
SIMS = 2000
N_MAX = claims.LOOKS[-1]


def _wrong(kind: str, mu: float, margin: float, verdict: np.ndarray) -> np.ndarray:
    """Verdicts that are false when the true mean difference is ``mu``."""
    truth = claims.verdict(np.array(mu), np.array(mu), kind, margin)  # open on a boundary: both are false
    return (verdict != claims.OPEN) & (verdict != truth)


def simulate(alphas_for, sd_diff: float, seed: int, boundary: bool = False, effect: float = 0.0):
    """``SIMS`` kernel-size studies; per simulation, whether any claim got a false verdict, plus the
    verdicts and seeds of the superiority claims.

    Every arm's value on a seed is a seed effect shared by all arms (what pairing removes) plus
    arm noise of SD sd_diff / sqrt(2); the ECA arms are ``effect`` points above the others.
    ``boundary``: each claim's differences are instead shifted to the least favourable true value
    (superiority 0, non-inferiority -margin, equivalence +margin), where false verdicts are likeliest.
    """
    spec = load_study("kernel-size")
    rng = np.random.default_rng(seed)
    arms = spec.arm_ids()
    shape = (SIMS, len(spec.backbones), len(arms), N_MAX)
    values = rng.normal(0.0, sd_diff / np.sqrt(2), shape) + rng.normal(0.0, 1.0, (*shape[:2], 1, N_MAX))
    values[:, :, [i for i, a in enumerate(arms) if a.startswith("eca")]] += effect
    alphas = alphas_for(claims.family_alpha(len(spec.claims) * len(spec.backbones), ALPHA))
    wrong = np.zeros(SIMS, dtype=bool)
    superiority = []
    for c in spec.claims:
        d = values[:, :, arms.index(c.a)] - values[:, :, arms.index(c.b)]
        mu = effect * (c.a.startswith("eca") - c.b.startswith("eca"))
        if boundary:
            mu = {"superiority": 0.0, "non-inferiority": -c.margin, "equivalence": c.margin}[c.kind]
            d = d + mu  # the arms are equal: E[d] was 0
        result = claims.sequential(d, c.kind, c.margin, alphas)
        wrong |= _wrong(c.kind, mu, c.margin, result.verdict).any(axis=1)
        if c.kind == "superiority":
            superiority.append(result)
    return wrong, superiority


def _at_most_alpha(wrong: np.ndarray) -> bool:
    """The false-verdict rate is not above ALPHA beyond binomial error (one-sided test, 1%)."""
    return sst.binomtest(int(wrong.sum()), wrong.size, ALPHA, alternative="greater").pvalue > 0.01


def _above_alpha(wrong: np.ndarray) -> bool:
    return sst.binomtest(int(wrong.sum()), wrong.size, ALPHA, alternative="greater").pvalue < 1e-4


@pytest.mark.parametrize("sd_diff", [0.3, 0.6])
def test_null_family_wise_error_held_and_naive_retesting_exceeds_it(sd_diff):
    wrong, _ = simulate(claims.look_alphas, sd_diff, seed=1)
    naive, _ = simulate(claims.naive_alphas, sd_diff, seed=1)
    assert _at_most_alpha(wrong), wrong.mean()
    assert _above_alpha(naive), naive.mean()


@pytest.mark.parametrize("sd_diff", [0.3, 0.6])
def test_least_favourable_family_wise_error_held_and_naive_exceeds_it(sd_diff):
    wrong, _ = simulate(claims.look_alphas, sd_diff, seed=2, boundary=True)
    naive, _ = simulate(claims.naive_alphas, sd_diff, seed=2, boundary=True)
    assert _at_most_alpha(wrong), wrong.mean()
    assert _above_alpha(naive), naive.mean()


def test_power_and_seeds_under_a_one_point_effect():
    wrong, superiority = simulate(claims.look_alphas, 0.5, seed=3, effect=1.0)
    assert _at_most_alpha(wrong)  # the true claims' verdicts are right; nothing else decided wrongly
    verdicts = np.stack([r.verdict for r in superiority])
    seeds = np.stack([r.seeds for r in superiority])
    power = (verdicts == claims.SUPPORTED).mean()
    assert power > 0.99, power  # 1 point at SD 0.5 is found by 64 seeds
    assert 8 <= np.median(seeds) <= 16, np.median(seeds)


def test_verdicts_and_sequential_stopping():
    lo, hi = np.array([0.2, -0.8, -0.3, 0.6]), np.array([0.4, -0.6, 0.3, 0.9])
    assert claims.verdict(lo, hi, "non-inferiority", 0.5).tolist() == [1, -1, 1, 1]
    assert claims.verdict(lo, hi, "equivalence", 0.5).tolist() == [1, -1, 1, -1]
    with pytest.raises(ValueError, match="unknown claim kind"):
        claims.verdict(lo, hi, "better", 0.5)
    d = np.full(64, 1.0) + np.tile([0.3, -0.3], 32)
    result = claims.sequential(d, "superiority", 0.0, claims.look_alphas(0.05))
    assert (int(result.verdict), int(result.seeds)) == (claims.SUPPORTED, 6)
    short = claims.sequential(d[:5], "superiority", 0.0, claims.look_alphas(0.05))  # before the first look
    assert (int(short.verdict), int(short.seeds), float(short.low)) == (claims.OPEN, 0, -np.inf)
    # the interval at a look matches scipy's t interval at the look's level
    x = np.random.default_rng(0).normal(0.3, 0.5, 8)
    lo, hi = claims.t_interval(x, 0.01)
    ref = sst.ttest_1samp(x, 0.0).confidence_interval(0.99)
    assert (lo, hi) == pytest.approx((ref.low, ref.high))


def test_seeds_to_decide():
    alpha = claims.family_alpha(26)
    assert claims.seeds_to_decide(1.0, 0.5, "superiority", 0.0, alpha) == 12
    assert claims.seeds_to_decide(1.0, 0.5, "superiority", 0.0, alpha, after=12) == 16
    assert claims.seeds_to_decide(0.0, 0.5, "superiority", 0.0, alpha) is None  # nothing to find
    assert claims.seeds_to_decide(0.0, 0.5, "equivalence", 0.5, alpha) == 24
    assert claims.seeds_to_decide(None, None, "superiority", 0.0, alpha) is None


# --- claims in study files -----------------------------------------------------------------------------

STUDY = """
layout = "table2"
backbones = ["resnet-8"]
margin = 0.4
[[arms]]
attention = "none"
[[arms]]
attention = "se"
r = 4
[[grid]]
attention = "eca"
k = [3, 5]
[[claims]]
kind = "non-inferiority"
a = "eca(k=3)"
b = ["se(r=4)", "none"]
[[claims]]
kind = "equivalence"
a = "eca(k=5)"
b = "eca(k=3)"
margin = 0.2
words = "k does not matter"
"""


def _write(tmp_path, extra: str = "", study: str = STUDY):
    path = tmp_path / "s.toml"
    path.write_text(study + extra)
    return str(path)


def test_claims_parsed_with_default_and_own_margins(tmp_path):
    spec = load_study(_write(tmp_path))
    assert [(c.kind, c.a, c.b, c.margin) for c in spec.claims] == [
        ("non-inferiority", "eca(k=3)", "se(r=4)", 0.4), ("non-inferiority", "eca(k=3)", "none", 0.4),
        ("equivalence", "eca(k=5)", "eca(k=3)", 0.2)]
    assert spec.claims[2].words == "k does not matter"
    overridden = load_study(_write(tmp_path), overrides=["margin=0.25"])
    assert [c.margin for c in overridden.claims] == [0.25, 0.25, 0.2]  # a claim's own margin stays
    assert type(spec).from_dict(spec.to_dict()) == spec


@pytest.mark.parametrize("extra, needle", [
    ('[[claims]]\nkind = "better"\na = "none"\nb = "eca(k=3)"\n', "claims[2].kind: expected one of"),
    ('[[claims]]\nkind = "superiority"\na = "eca(k=7)"\nb = "none"\n', "claims[2].a: no arm 'eca(k=7)'"),
    ('[[claims]]\nkind = "superiority"\na = "none"\nb = "se(r=16)"\n', "claims[2].b: no arm 'se(r=16)'"),
    ('[[claims]]\nkind = "equivalence"\na = "none"\nb = "eca(k=3)"\nmargin = 0\n', "claims[2].margin: expected"),
    ('[[claims]]\nkind = "equivalence"\na = "none"\nb = "eca(k=3)"\nmargin = -1\n', "claims[2].margin"),
    ('[[claims]]\nkind = "superiority"\na = "none"\nb = "eca(k=3)"\nmargin = 1\n', "takes no margin"),
    ('[[claims]]\nkind = "superiority"\na = "none"\nb = "none"\n', "with itself"),
    ('[[claims]]\nkind = "superiority"\na = "none"\n', "claims[2].b: missing"),
    ('[[claims]]\nkind = "superiority"\na = "none"\nb = "eca(k=3)"\nsize = 1\n', "claims[2].size: unknown key"),
])
def test_bad_claims_are_one_spec_error(tmp_path, extra, needle):
    with pytest.raises(SpecError, match=None) as e:
        load_study(_write(tmp_path, extra))
    assert needle in str(e.value) and "\n" not in str(e.value), str(e.value)


def test_margin_override_checked_and_needed(tmp_path):
    with pytest.raises(SpecError, match=r"--set margin=0: margin: expected a number of percentage points > 0"):
        load_study(_write(tmp_path), overrides=["margin=0"])
    no_margin = STUDY.replace("margin = 0.4\n", "")
    with pytest.raises(SpecError, match=r"claims\[0\].margin: a non-inferiority claim needs a margin"):
        load_study(_write(tmp_path, study=no_margin))


def test_bad_claim_through_the_cli_is_exit_2_and_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ECASWEEP_STORAGE", f"sqlite:///{tmp_path / 'default.db'}")
    path = _write(tmp_path, '[[claims]]\nkind = "superiority"\na = "eca(k=9)"\nb = "none"\n')
    result = CliRunner().invoke(app, ["run", path, "--set", "data.dataset=synthetic"])
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "claims[2].a: no arm 'eca(k=9)'" in lines[0], result.output
    assert not list(tmp_path.glob("*.db"))


def test_builtin_studies_declare_the_papers_claims():
    counts = {name: len(load_study(name).claims) for name in ("kernel-size", "reduction", "interaction", "table2",
                                                              "gamma-beta", "search")}
    assert counts == {"kernel-size": 13, "reduction": 3, "interaction": 4, "table2": 7, "gamma-beta": 5, "search": 0}
