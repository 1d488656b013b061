"""The claims designs of issue 22: Holm recycling per direction of verdict, spending functions, the
legacy design kept for stored studies, and the family-wise error simulated through the code that
decides real claims, with seeds added round by round as ``run --until-resolved`` adds them.

Each simulation is the built-in kernel-size study at the quick profile (22 distinct hypotheses).
The assertions allow the binomial error: a rate is held when it is at most alpha + 3 standard
errors of a rate alpha over the simulated studies. docs/claims.md has the larger runs
(benchmarks/design_simulation.py).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sst

from ecasweep.report.verdicts import build_claims, build_family, hypotheses
from ecasweep.spec import StudySpec, load_study
from ecasweep.errors import SpecError
from ecasweep.stats import recycling, simulation as sim, spending
from ecasweep.stats import sequential as claims

ALPHA = claims.ALPHA
KERNEL = hypotheses(load_study("kernel-size").to_dict())
ARMS = sim.arms_of(KERNEL)


def _held(wrong: np.ndarray) -> tuple[bool, str]:
    rate, n = float(wrong.mean()), wrong.size
    bound = ALPHA + 3 * math.sqrt(ALPHA * (1 - ALPHA) / n)
    se = math.sqrt(rate * (1 - rate) / n)
    return rate <= bound, f"FWER {rate:.4f} ± {se:.4f} over {n} studies (bound {bound:.4f})"


# --- the family-wise error, simulated ----------------------------------------------------------------------

@pytest.mark.parametrize("noise", ["normal", "heavy", "skewed"])
@pytest.mark.parametrize("config", sim.CONFIGS)
def test_family_wise_error_held_with_seeds_added_round_by_round(config, noise):
    rng = np.random.default_rng(10 * sim.CONFIGS.index(config) + sim.NOISES.index(noise))
    out = sim.simulate(sim.noise(rng, (3000, len(ARMS), 64), 0.5, noise), KERNEL, ARMS, claims.DEFAULT,
                       shift=sim.shifts(config, KERNEL, 0.5))
    ok, said = _held(out.wrong)
    assert ok, said
    assert out.rounds.max() >= 2  # seeds were added in rounds, as --until-resolved adds them


@pytest.mark.parametrize("noise", ["normal", "skewed"])
def test_family_wise_error_held_on_a_full_sample(noise):
    for config in ("boundary", "recycling"):
        rng = np.random.default_rng(7)
        out = sim.simulate(sim.noise(rng, (4000, len(ARMS), 64), 0.8, noise), KERNEL, ARMS, claims.DEFAULT,
                           shift=sim.shifts(config, KERNEL, 0.8), rounds=False)
        ok, said = _held(out.wrong)
        assert ok, f"{config}: {said}"


def test_recycling_makes_more_verdicts_with_fewer_seeds_than_the_legacy_design():
    """ECA 1 point above SE and vanilla, SD 0.5: the same studies under both designs."""
    eff = np.array([1.0 if arm.startswith("eca") else 0.0 for _, arm in ARMS])
    seeds = {}
    for design in (claims.LEGACY, claims.DEFAULT):
        rng = np.random.default_rng(3)
        out = sim.simulate(sim.noise(rng, (400, len(ARMS), 64), 0.5), KERNEL, ARMS, design, effects=eff)
        assert not out.wrong.any()
        seeds[design.name] = np.where(out.first > 0, out.first, 64).mean()
    assert seeds[claims.DEFAULT.name] < 0.92 * seeds[claims.LEGACY.name], seeds


# --- the procedure ------------------------------------------------------------------------------------------

def _stats(diffs):
    return claims.look_stats([np.asarray(d, dtype=float) for d in diffs], claims.LOOKS)


def _series(mean, sd, n, seed):
    return np.random.default_rng(seed).normal(mean, sd, n)


def test_legacy_design_is_the_old_code():
    rng = np.random.default_rng(0)
    kinds = ["superiority", "non-inferiority", "equivalence"] * 4
    margins = [0.0, 0.5, 0.5] * 4
    diffs = [rng.normal(rng.uniform(-1, 1.5), rng.uniform(0.2, 1.0), n) for n in (2, 6, 8, 12, 16, 24, 32, 48, 64, 64,
                                                                                     5, 30)]
    family = claims.decide_family(_stats(diffs), kinds, margins, claims.LEGACY)
    claim_alpha = claims.family_alpha(len(diffs))
    sds = [d.std(ddof=1) if d.size > 1 else None for d in diffs]
    need = claims.needed(np.array([d.mean() for d in diffs]), np.array([np.nan if s is None else s for s in sds]),
                         np.array([d.size for d in diffs]), family, kinds, margins, claims.LEGACY)
    for h, d in enumerate(diffs):
        old = claims.sequential(d, kinds[h], margins[h], claims.look_alphas(claim_alpha))
        assert (family.verdict[h], family.seeds[h]) == (int(old.verdict), int(old.seeds))
        assert (family.low[h], family.high[h]) == (float(old.low), float(old.high))  # the very same numbers
        expected = claims.seeds_to_decide(float(d.mean()), sds[h], kinds[h], margins[h], claim_alpha, after=d.size)
        assert (int(need[h]) or None) == expected


def _threshold(level: float, n_max: int) -> float:
    """The least mean difference that ``_zigzag`` data (SD 1 in every even prefix, up to ``n_max``
    seeds) need for a superiority claim tested at ``level`` to be supported."""
    spend = claims.DEFAULT.spend()
    return min(sst.t.isf(level * spend[k], n - 1) / math.sqrt(n - 1)
               for k, n in enumerate(claims.LOOKS) if n <= n_max and spend[k] > 0)


def _zigzag(mean: float, n: int) -> np.ndarray:
    """mean +- 1 alternately: every even prefix has mean ``mean`` and SD sqrt(n / (n - 1))."""
    return mean + np.tile([1.0, -1.0], n // 2)


def test_a_decided_claims_share_passes_to_the_open_ones():
    strong = [_zigzag(8.0, 64) for _ in (1, 2)]
    null = [_zigzag(0.0, 64) for _ in (4, 5)]
    moderate = _zigzag((_threshold(ALPHA / 2, 24) + _threshold(ALPHA / 6, 24)) / 2, 24)  # decided at alpha/2 only
    kinds, margins = ["superiority"] * 3, [0.0] * 3
    spend = claims.DEFAULT.spend()
    alone = recycling.holm(_stats([*null, moderate]), kinds, margins, ALPHA, spend, claims.LOOKS)
    helped = recycling.holm(_stats([*strong, moderate]), kinds, margins, ALPHA, spend, claims.LOOKS)
    assert alone.verdict.tolist() == [0, 0, 0]
    assert helped.verdict.tolist() == [1, 1, 1]
    # the third claim is tested at the whole support family's level once the two are supported
    assert helped.share_s.tolist() == pytest.approx([ALPHA / 2] * 3)  # each: with the other two rejected
    assert helped.share_c.tolist() == pytest.approx([ALPHA / 2 / 3] * 3)  # contradiction family: untouched
    assert alone.share_s[2] == pytest.approx(ALPHA / 2 / 3)
    # its decision interval is at the share it held; the simultaneous one at alpha / K stays wider
    assert helped.low[2] > 0 and helped.sim_low[2] < helped.low[2]


def test_a_contradicted_claim_frees_only_its_contradiction_share():
    diffs = [_zigzag(-8.0, 64), _zigzag(0.0, 64)]
    family = recycling.holm(_stats(diffs), ["superiority"] * 2, [0.0] * 2, ALPHA, claims.DEFAULT.spend(),
                            claims.LOOKS)
    assert family.verdict[0] == claims.CONTRADICTED
    assert family.share_c[1] == pytest.approx(ALPHA / 2) and family.share_s[1] == pytest.approx(ALPHA / 4)


def test_the_family_is_decided_whatever_the_order_of_its_hypotheses():
    rng = np.random.default_rng(4)
    kinds = ["superiority", "non-inferiority", "equivalence", "superiority", "equivalence", "non-inferiority"]
    margins = [0.0, 0.5, 0.5, 0.0, 0.5, 0.5]
    diffs = [rng.normal(m, 0.5, 48) for m in (1.0, 0.3, 0.1, 0.6, 0.9, -0.2)]
    family = recycling.holm(_stats(diffs), kinds, margins, ALPHA, claims.DEFAULT.spend(), claims.LOOKS)
    order = [3, 5, 0, 4, 1, 2]
    again = recycling.holm(_stats([diffs[i] for i in order]), [kinds[i] for i in order], [margins[i] for i in order],
                           ALPHA, claims.DEFAULT.spend(), claims.LOOKS)
    for field in ("verdict", "seeds", "low", "high", "share_s", "share_c"):
        assert getattr(again, field).tolist() == getattr(family, field)[order].tolist(), field


def test_more_seeds_never_take_a_verdict_back():
    rng = np.random.default_rng(6)
    kinds, margins = ["superiority", "equivalence", "non-inferiority", "superiority"], [0.0, 0.5, 0.5, 0.0]
    full = [rng.normal(m, 0.6, 64) for m in (0.9, 0.0, 0.1, 0.4)]
    before = None
    for n in claims.LOOKS:
        now = claims.decide_family(_stats([d[:n] for d in full]), kinds, margins, claims.DEFAULT)
        if before is not None:
            kept = before.verdict != claims.OPEN
            assert (now.verdict[kept] == before.verdict[kept]).all()
            assert (now.seeds[kept] <= before.seeds[kept]).all()  # recycled alpha may decide an earlier look
        before = now
    assert (before.verdict != claims.OPEN).sum() >= 2


def test_the_decision_and_simultaneous_intervals_are_the_t_intervals_of_the_looks():
    d = _series(0.4, 0.5, 32, 9)
    family = claims.decide_family(_stats([d]), ["superiority"], [0.0], claims.DEFAULT)
    spend = claims.DEFAULT.spend()
    lows, highs = [], []
    for k, n in enumerate(claims.LOOKS[:6]):
        if spend[k] > 0:  # a look that spends nothing bounds nothing
            lo, hi = claims.t_interval(d[:n], ALPHA * spend[k])  # one family: alpha/2 a side
            lows.append(lo)
            highs.append(hi)
    assert float(family.sim_low[0]) == pytest.approx(max(lows))
    assert float(family.sim_high[0]) == pytest.approx(min(highs))
    if family.verdict[0] == claims.OPEN:  # one hypothesis holds the whole of both families
        assert (float(family.low[0]), float(family.high[0])) == pytest.approx((max(lows), min(highs)))
        assert float(family.level[0]) == pytest.approx(ALPHA)


# --- spending functions -------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["even", "power-1", "power-2", "pocock", "obf", "power-0.5-after-8", spending.DEFAULT])
def test_spending_functions_spend_at_most_the_level(name):
    spend = spending.increments(name, claims.LOOKS)
    assert (spend >= 0).all() and spend.sum() == pytest.approx(1.0)


def test_spending_after_n_spends_nothing_up_to_n_and_bad_names_are_refused():
    assert spending.increments("power-1-after-8", claims.LOOKS)[:2].tolist() == [0.0, 0.0]
    for bad in ("fast", "power-0", "power--1", "power-1-after-64", 3):
        with pytest.raises(ValueError, match="expected one of"):
            spending.check(bad)


# --- the design in the study spec ---------------------------------------------------------------------------

def test_a_new_study_gets_the_default_design_and_may_name_another():
    spec = load_study("kernel-size")
    assert (spec.design, spec.spending) == (claims.DEFAULT.procedure, claims.DEFAULT.spending)
    other = load_study("kernel-size", overrides=["design=bonferroni", "spending=pocock"])
    assert claims.design_of(other.to_dict()).name == "bonferroni-pocock"
    assert StudySpec.from_dict(other.to_dict()) == other
    with pytest.raises(SpecError, match=r"design: expected one of: holm, bonferroni, got 'holmes'"):
        load_study("kernel-size", overrides=["design=holmes"])
    with pytest.raises(SpecError, match=r"spending: expected one of: even, power-RHO"):
        load_study("kernel-size", overrides=["spending=power-0"])


def test_a_spec_stored_without_a_design_is_read_as_the_legacy_design():
    stored = load_study("kernel-size").to_dict()
    del stored["design"], stored["spending"]
    assert claims.design_of(stored) == claims.LEGACY
    spec = StudySpec.from_dict(stored)
    assert (spec.design, spec.spending) == ("bonferroni", "even")


ARMS_SPEC = [{"id": "none", "attention": "none", "kwargs": {}},
             {"id": "se(r=16)", "attention": "se", "kwargs": {"r": 16}},
             {"id": "eca(k=3)", "attention": "eca", "kwargs": {"k": 3}}]


def _records(values: dict[str, list[float]], spec: dict):
    import optuna

    from ecasweep.store.results import SPEC_ATTR, cell_attrs, read_records

    study = optuna.create_study(direction="maximize")
    study.set_user_attr(SPEC_ATTR, spec)
    for arm in spec["arms"]:
        params = {"attention": arm["attention"], **arm["kwargs"]}
        for seed, value in enumerate(values[arm["id"]]):
            attrs = cell_attrs(f"resnet-8/{arm['id']}/seed={seed}", arm["id"], "resnet-8", seed, params)
            study.add_trial(optuna.trial.create_trial(state=optuna.trial.TrialState.COMPLETE, value=value,
                                                      user_attrs={**attrs, "top1": value}))
    return read_records(study)


def test_a_stored_study_keeps_its_verdicts_and_a_new_one_gets_recycling():
    """Two claims: a strong one, decided at once, and a weaker one that only the recycled alpha decides."""
    base = 85 + np.random.default_rng(21).normal(0, 1.0, 16)  # the seed effect, shared by the arms
    legacy = min(sst.t.isf(a / 2, n - 1) / math.sqrt(n - 1)
                 for a, n in zip(claims.look_alphas(claims.family_alpha(2)), claims.LOOKS) if n <= 16)
    weak = (_threshold(ALPHA / 2, 16) + legacy) / 2  # decided at the support family's whole level only
    assert _threshold(ALPHA / 2, 16) < weak < legacy
    values = {"none": list(base), "se(r=16)": list(base + 0.3 * _zigzag(weak, 16)),
              "eca(k=3)": list(base + _zigzag(8.0, 16))}
    declared = [{"kind": "superiority", "a": "eca(k=3)", "b": "none", "margin": 0.0, "words": "", "evidence": ""},
                {"kind": "superiority", "a": "se(r=16)", "b": "none", "margin": 0.0, "words": "", "evidence": ""}]
    old = {"name": "claims", "layout": "table2", "seeds": 16, "backbones": ["resnet-8"], "arms": ARMS_SPEC,
           "claims": declared}  # as stored before designs were named: no design, no spending
    records = _records(values, old)
    table = build_claims(old, records)
    assert table.design == "bonferroni-even" and table.to_dict()["design"] == "bonferroni-even"
    d = [np.subtract(values[c["a"]], values[c["b"]]) for c in declared]
    for row, diff in zip(table.rows, d):
        expected = claims.sequential(diff, "superiority", 0.0, claims.look_alphas(claims.family_alpha(2)))
        assert (row.verdict, row.decided_at) == (claims.VERDICTS[int(expected.verdict)],
                                                 int(expected.seeds) if int(expected.verdict) else None)
        assert (row.low, row.high) == (float(expected.low), float(expected.high))
    new = build_claims({**old, "design": "holm", "spending": claims.DEFAULT.spending}, records)
    assert new.design == claims.DEFAULT.name and "Holm" in new.caption
    assert [r.verdict for r in table.rows] == ["supported", "open"], [(r.low, r.high) for r in table.rows]
    assert [r.verdict for r in new.rows] == ["supported", "supported"], [(r.low, r.high, r.level) for r in new.rows]
    assert new.rows[1].level == pytest.approx(ALPHA / 2 + ALPHA / 4)  # all the support family, half the other
    assert new.rows[1].sim_low < 0 < new.rows[1].low  # simultaneous at 1 - alpha: not decisive on its own


def test_resuming_a_study_keeps_the_design_it_was_stored_with():
    from ecasweep.sweep.study import extended

    stored = load_study("kernel-size").to_dict()
    del stored["design"], stored["spending"]  # stored before designs were named
    resumed = extended(load_study("kernel-size", overrides=["seeds=4"]), StudySpec.from_dict(stored))
    assert (resumed.design, resumed.spending, resumed.seeds) == ("bonferroni", "even", 4)
    new = extended(load_study("kernel-size"), load_study("kernel-size", overrides=["design=bonferroni"]))
    assert new.design == "bonferroni"  # the stored choice wins over the file's default


def test_rounds_go_from_one_deciding_look_to_the_next():
    assert claims.round_looks(claims.DEFAULT) == (12, 16, 24, 32, 48, 64)
    assert claims.round_looks(claims.LEGACY) == claims.LOOKS
    plan = claims.plan_round([("resnet-8", "a", "b", 2, 16)], 64, claims.round_looks(claims.DEFAULT))
    assert plan.targets == {("resnet-8", "a"): 12, ("resnet-8", "b"): 12}


# --- one family across studies (a report, reproduce) -----------------------------------------------------

#: the hypotheses of the paper's four studies at the quick profile, as one report decides them: one
#: family; an arm two studies share (the same backbone and model under one recipe) is one set of seeds,
#: as a cell one study finished is read by the others (sweep.reuse)
PAPER = [h for name in ("kernel-size", "table2", "gamma-beta", "methods") for h in hypotheses(load_study(name).to_dict())]
PAPER_ARMS = sim.arms_of(PAPER)


@pytest.mark.parametrize("noise", ["normal", "skewed"])
@pytest.mark.parametrize("config", ["boundary", "recycling"])
def test_family_wise_error_held_over_the_claims_of_several_studies(config, noise):
    """Every claim of the four studies on its boundary (or every other one decided early, its α passed
    on): the chance of any wrong verdict in the whole report, seeds added round by round."""
    assert len(PAPER) > 2 * len(KERNEL) and len(PAPER_ARMS) < sum(len(sim.arms_of(hypotheses(load_study(n).to_dict())))
                                                                  for n in ("kernel-size", "table2", "gamma-beta",
                                                                            "methods"))  # arms are shared
    rng = np.random.default_rng(40 + 10 * sim.CONFIGS.index(config) + sim.NOISES.index(noise))
    out = sim.simulate(sim.noise(rng, (2000, len(PAPER_ARMS), 64), 0.5, noise), PAPER, PAPER_ARMS, claims.DEFAULT,
                       shift=sim.shifts(config, PAPER, 0.5))
    ok, said = _held(out.wrong)
    assert ok, said
    assert out.rounds.max() >= 2


def test_a_family_of_studies_is_decided_as_one_holm_family_and_mixed_designs_split_alpha():
    """``build_family`` decides the hypotheses of both studies together (what the simulation above
    decides); a study stored under the legacy design beside a new one is its own family at its share."""
    base = 85 + np.random.default_rng(5).normal(0, 1.0, 16)
    values = {"none": list(base), "se(r=16)": list(base + _zigzag(0.9, 16) + 0.05),
              "eca(k=3)": list(base + _zigzag(6.0, 16))}
    declared = [{"kind": "superiority", "a": "eca(k=3)", "b": "none", "margin": 0.0, "words": "", "evidence": ""},
                {"kind": "superiority", "a": "se(r=16)", "b": "none", "margin": 0.0, "words": "", "evidence": ""}]
    spec = {"name": "one", "layout": "table2", "seeds": 16, "backbones": ["resnet-8"], "arms": ARMS_SPEC,
            "claims": declared, "design": "holm", "spending": claims.DEFAULT.spending}
    other = {**spec, "name": "two", "claims": declared[1:]}
    records = _records(values, spec)
    one, two = build_family([(spec, records), (other, records)])
    assert (one.family, one.studies, two.studies) == (3, ["one", "two"], ["one", "two"])
    d = [np.subtract(values[c["a"]], values[c["b"]]) for c in declared + declared[1:]]
    expected = claims.decide_family(claims.look_stats(d, claims.LOOKS), ["superiority"] * 3, [0.0] * 3, claims.DEFAULT)
    got = [r.verdict for r in one.rows + two.rows]
    assert got == [claims.VERDICTS[int(v)] for v in expected.verdict]
    assert [r.level for r in one.rows + two.rows] == pytest.approx(list(expected.level))
    alone = build_claims(spec, records)
    assert alone.family == 2 and alone.studies == [] and "studies one, two together" in one.caption

    legacy = {k: v for k, v in other.items() if k not in ("design", "spending")}
    mixed = build_family([(spec, records), (legacy, records)])
    assert [t.alpha for t in mixed] == pytest.approx([ALPHA * 2 / 3, ALPHA / 3])
    assert [t.design for t in mixed] == [claims.DEFAULT.name, claims.LEGACY.name]
    assert mixed[0].to_dict()["rows"] == build_claims(spec, records, alpha=ALPHA * 2 / 3).to_dict()["rows"]


def test_the_real_run_comparison_decides_one_set_of_seeds_under_both_designs():
    """``benchmarks/design_on_real_run.py`` gives each design's verdicts on the same records, and the
    minute of a verdict is when the last cell of its look completed (an alias's cells are its arm's)."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "design_on_real_run.py"
    module_spec = importlib.util.spec_from_file_location("design_on_real_run", path)
    script = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(script)
    base = 85 + np.random.default_rng(21).normal(0, 1.0, 16)
    values = {"none": list(base), "se(r=16)": list(base + 0.3 * _zigzag(0.7, 16)),
              "eca(k=3)": list(base + _zigzag(8.0, 16))}
    declared = [{"kind": "superiority", "a": "eca(k=adaptive)", "b": "none", "margin": 0.0, "words": "w",
                 "evidence": ""},
                {"kind": "superiority", "a": "se(r=16)", "b": "none", "margin": 0.0, "words": "", "evidence": ""}]
    spec = {"name": "claims", "layout": "table2", "seeds": 16, "backbones": ["resnet-8"], "arms": ARMS_SPEC,
            "claims": declared, "aliases": {"resnet-8": {"eca(k=adaptive)": "eca(k=3)"}},
            "design": "holm", "spending": claims.DEFAULT.spending}
    records = _records(values, spec)
    done = {("resnet-8", arm, seed): float(seed + (arm == "none")) for arm in values for seed in range(16)}
    for design in (claims.DEFAULT.name, claims.LEGACY.name):
        procedure, _, spending_ = design.partition("-")
        table = build_claims({**spec, "design": procedure, "spending": spending_}, records)
        rows = script.decided(spec, records, design, done)
        assert list(rows) == [("resnet-8", "eca(k=3)", "none", "superiority"),
                              ("resnet-8", "se(r=16)", "none", "superiority")]
        assert [(r["verdict"], r["seeds"]) for r in rows.values()] == [(r.verdict, r.decided_at) for r in table.rows]
        first = next(iter(rows.values()))
        assert first["seeds"] is not None and first["minutes"] == first["seeds"]  # seed n-1 of "none", at minute n
