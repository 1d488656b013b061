"""ecasweep.stats.sequential: verdicts, and the error rates of the sequential design, in simulated studies.

The simulations run the built-in kernel-size study's own claims (13 per backbone, 2 backbones)
through ``claims.sequential``, the legacy design's test (``bonferroni-even``: the design of studies
stored before designs were named, which ``build_claims`` still reads them with), with paired
differences spread like the quick profile's seeds (0.3-0.6 percentage points). docs/claims.md
reports the same numbers. tests/test_design.py simulates the default design (Holm recycling).
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as sst
from typer.testing import CliRunner

from ecasweep.stats import sequential as claims
from ecasweep.cli.app import app
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


# --- the Claims table ------------------------------------------------------------------------------------

ARMS = [{"id": "none", "attention": "none", "kwargs": {}}, {"id": "se(r=16)", "attention": "se", "kwargs": {"r": 16}},
        {"id": "eca(k=3)", "attention": "eca", "kwargs": {"k": 3}}]


def _claims_study(values: dict[str, list[float]], claims_: list[dict], storage: str | None = None,
                  spec: dict | None = None):
    """An Optuna study (in memory, or in ``storage``) holding ``values`` (arm -> top-1 by seed) on resnet-8."""
    import optuna

    from ecasweep.store.results import SPEC_ATTR, cell_attrs, read_records

    spec = spec or {"name": "claims", "layout": "table2", "seeds": 8, "backbones": ["resnet-8"], "arms": ARMS,
                    "claims": claims_}
    arms = spec["arms"]
    study = optuna.create_study(direction="maximize", storage=storage, study_name="claims")
    study.set_user_attr(SPEC_ATTR, spec)
    for arm in arms:
        params = {"attention": arm["attention"], **arm["kwargs"]}
        for seed, value in enumerate(values[arm["id"]]):
            attrs = cell_attrs(f"resnet-8/{arm['id']}/seed={seed}", arm["id"], "resnet-8", seed, params)
            study.add_trial(optuna.trial.create_trial(state=optuna.trial.TrialState.COMPLETE, value=value,
                                                      user_attrs={**attrs, "top1": value}))
    return spec, read_records(study)


def test_claims_table_decides_each_claim_and_renders_in_every_format():
    import csv
    import io
    import json

    from rich.console import Console

    from ecasweep.report import build_claims, render_claims

    rng = np.random.default_rng(5)
    base = 85 + rng.normal(0, 1.0, 12)
    values = {"none": list(base + rng.normal(0, 0.3, 12)), "se(r=16)": list(base + rng.normal(0, 0.3, 12)),
              "eca(k=3)": list(base + 1.5 + rng.normal(0, 0.3, 12))}
    declared = [{"kind": "superiority", "a": "eca(k=3)", "b": "se(r=16)", "margin": 0.0, "words": "ECA beats SE",
                 "evidence": "Table 2"},
                {"kind": "equivalence", "a": "se(r=16)", "b": "none", "margin": 0.05, "words": "", "evidence": ""}]
    spec, records = _claims_study(values, declared)
    table = build_claims(spec, records)
    assert table.family == 2 and [r.n for r in table.rows] == [12, 12]
    sup, eq = table.rows
    # the verdict is the first look whose t interval (scipy's, at that look's level) clears 0
    d = np.subtract(values["eca(k=3)"], values["se(r=16)"])
    level = 1 - claims.family_alpha(2) / len(claims.LOOKS)
    first = next(n for n in claims.LOOKS if sst.ttest_1samp(d[:n], 0).confidence_interval(level).low > 0)
    assert (sup.verdict, sup.decided_at) == ("supported", first)
    assert sup.effect == pytest.approx(d.mean())
    assert sup.paper.startswith("77.43 vs 76.71 (+0.72") and sup.paper.endswith("Table 2")
    assert eq.verdict == "open" and eq.decided_at is None  # a 0.05-point margin needs far more seeds
    assert eq.seeds_needed is None or eq.seeds_needed > 12

    doc = json.loads(render_claims(table, "json"))
    assert doc["schema"] == "ecasweep.claims/1" and doc["rows"][0]["verdict"] == "supported"
    rows = list(csv.DictReader(io.StringIO(render_claims(table, "csv"))))
    assert [r["verdict"] for r in rows] == ["supported", "open"]
    assert "| ECA beats SE: ECA (k=3) > SE (r=16) |" in render_claims(table, "markdown")
    assert r"\begin{tabular}" in render_claims(table, "latex")
    console = Console(record=True, width=160)
    console.print(render_claims(table, "rich"))
    assert "supported (" in console.export_text()
    # At 80 columns the verdict and the interval take a second line, each whole: no number is cut.
    console = Console(record=True, width=80)
    console.print(render_claims(table, "rich"))
    text = console.export_text()
    assert f"{sup.effect:+.2f}" in text and f"[{sup.ci_low:+.2f}, {sup.ci_high:+.2f}]" in text, text
    assert f"({sup.decided_at} seeds)" in text and max(map(len, text.splitlines())) <= 80
    lines = text.splitlines()
    assert "ECA beats SE (Table 2)" in lines  # the claim's words span the width, above its rows
    assert any(line.startswith("  ECA (k=3) > SE (r=16) ") for line in lines)


def test_claims_table_without_seeds_is_open():
    from ecasweep.report import build_claims

    declared = [{"kind": "superiority", "a": "eca(k=3)", "b": "none", "margin": 0.0, "words": "w", "evidence": ""}]
    spec, records = _claims_study({"none": [85.0], "se(r=16)": [85.0], "eca(k=3)": [86.0]}, declared)
    (row,) = build_claims(spec, records).rows
    assert (row.n, row.verdict, row.low, row.seeds_needed) == (1, "open", None, None)


def test_table_command_prints_the_claims(tmp_path):
    import json

    spec = load_study(_write(tmp_path), overrides=["name=claims"]).to_dict()
    values = {"none": [85.0, 85.2, 84.9], "se(r=4)": [85.1, 85.0, 85.3], "eca(k=3)": [86.0, 86.1, 85.8],
              "eca(k=5)": [86.1, 86.0, 85.7]}
    url = f"sqlite:///{tmp_path / 'c.db'}"
    _claims_study(values, [], url, spec)
    run = CliRunner()
    markdown = run.invoke(app, ["table", "claims", "--storage", url, "-f", "markdown"])
    assert markdown.exit_code == 0, markdown.output
    assert "| k does not matter: \\|ECA (k=5) − ECA (k=3)\\| < 0.2 | resnet-8 |" in markdown.output
    assert "open (" in markdown.output
    doc = json.loads(run.invoke(app, ["table", "claims", "--storage", url, "-f", "json"]).output)
    assert [r["n"] for r in doc["claims"]["rows"]] == [3, 3, 3] and doc["rows"]  # the study table and its claims
    only = run.invoke(app, ["table", "claims", "--storage", url, "-f", "csv", "--claims"])
    assert only.output.splitlines()[0].startswith("words,kind,a,b,") and len(only.output.splitlines()) == 4


def test_plan_round_adds_seeds_to_open_claims_only_and_stops():
    alpha = claims.family_alpha(2)
    open_claims = [("resnet-8", "eca(k=3)", "se(r=16)", 6, claims.seeds_to_decide(0.8, 0.6, "superiority", 0.0, alpha, 6)),
                   ("resnet-8", "none", "se(r=16)", 6, claims.seeds_to_decide(0.0, 0.6, "superiority", 0.0, alpha, 6))]
    plan = claims.plan_round(open_claims, max_seeds=32)
    assert plan.targets == {("resnet-8", "eca(k=3)"): 8, ("resnet-8", "se(r=16)"): 8} and plan.futile == [1]
    assert claims.plan_round(open_claims, max_seeds=6).stop == "futility"  # no look left within 6 seeds
    assert claims.plan_round(open_claims[1:], max_seeds=64).stop == "futility"
    assert claims.plan_round([], max_seeds=64).stop == "resolved"


# --- run --until-resolved ---------------------------------------------------------------------------------

UNTIL = """
layout = "table2"
backbones = ["resnet-8"]
seeds = 2
# every look spends (the default spends nothing before 12 seeds): the first look, 6 seeds, settles the claim
spending = "even"
[data]
dataset = "synthetic"
synthetic_size = 256
subset = "none"
[train]
epochs = 1
batch_size = 64
[[arms]]
attention = "none"
[[arms]]
attention = "se"
r = 4
[[arms]]
attention = "eca"
k = 3
[[claims]]
kind = "equivalence"
a = "eca(k=3)"
b = "none"
margin = 60
"""


@pytest.mark.slow
def test_until_resolved_adds_seeds_to_open_arms_only_and_stops(tmp_path, monkeypatch):
    import optuna

    from ecasweep.store.results import read_records

    monkeypatch.chdir(tmp_path)
    path = tmp_path / "until.toml"
    path.write_text(UNTIL)
    url = f"sqlite:///{tmp_path / 'u.db'}"
    args = ["run", str(path), "--storage", url, "--workers", "1", "--until-resolved", "--max-seeds", "8"]
    # a plain run ends naming the command that would settle the open claim
    plain = CliRunner().invoke(app, args[:6])
    assert plain.exit_code == 0, plain.output
    said = " ".join(plain.output.split())
    assert "1 claim(s) open" in said and f"ecasweep run {path} --until-resolved --storage {url}" in said
    # a budget no round fits in: no seeds added, and the reason said
    first = CliRunner().invoke(app, [*args, "--budget", "0.01s"])
    assert first.exit_code == 0, first.output
    said = " ".join(first.output.split())  # the console wraps lines
    assert "ended after 0 rounds" in said and "would overrun the budget" in said
    # resumed without a budget: one round takes the claim's two arms to the first look (6 seeds)
    second = CliRunner().invoke(app, args)
    assert second.exit_code == 0, second.output
    said = " ".join(second.output.split())
    assert "ended after 1 round " in said and "every claim has a verdict" in said
    records = read_records(optuna.load_study(study_name="until", storage=url))
    seeds = {arm: sorted(r.seed for r in records if r.arm == arm and r.complete)
             for arm in ("none", "se(r=4)", "eca(k=3)")}
    assert seeds == {"none": list(range(6)), "se(r=4)": [0, 1], "eca(k=3)": list(range(6))}
    again = CliRunner().invoke(app, ["table", "until", "--storage", url, "--claims", "-f", "json"])
    assert '"verdict": "supported"' in again.output
    table = CliRunner().invoke(app, ["table", "until", "--storage", url, "-f", "markdown"])
    assert "the p-values and ties here are descriptive" in " ".join(table.output.split())


@pytest.mark.slow
def test_until_resolved_killed_mid_round_resumes_the_round_and_ends_as_an_uninterrupted_run(tmp_path):
    import os
    import subprocess
    import sys

    import optuna

    from ecasweep.store.results import read_records

    path = tmp_path / "until.toml"
    path.write_text(UNTIL)
    url = f"sqlite:///{tmp_path / 'u.db'}"
    command = [sys.executable, "-m", "ecasweep", "run", str(path), "--storage", url, "--workers", "1",
               "--until-resolved", "--max-seeds", "8", "--no-table"]
    env = dict(os.environ, ECASWEEP_CHECKPOINTS=str(tmp_path / "ckpt"), ECASWEEP_HEARTBEAT="1")
    # 6 planned cells, then a round of 8 (seeds 2-5 of both arms of the claim): killed storing the
    # 8th result, i.e. with 6 + 1 cells done and one RUNNING
    killed = subprocess.run(command, env={**env, "ECASWEEP_FAULT": "store-result:8"}, capture_output=True,
                            text=True, timeout=300)
    assert killed.returncode == -9, killed.stderr
    records = read_records(optuna.load_study(study_name="until", storage=url))
    assert sum(r.complete for r in records) == 7 and max(r.seed for r in records) >= 2
    resumed = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert "every claim has a verdict" in " ".join(resumed.stdout.split())
    records = read_records(optuna.load_study(study_name="until", storage=url))
    seeds = {arm: sorted(r.seed for r in records if r.arm == arm and r.complete)
             for arm in ("none", "se(r=4)", "eca(k=3)")}
    assert seeds == {"none": list(range(6)), "se(r=4)": [0, 1], "eca(k=3)": list(range(6))}


def test_budget_parsing():
    from ecasweep.errors import EcasweepError
    from ecasweep.sweep.rounds import parse_duration

    assert parse_duration("2h") == 7200 and parse_duration("1h30m") == 5400 and parse_duration("45s") == 45
    for bad in ("soon", "", "0m", "-5m"):
        with pytest.raises(EcasweepError, match="--budget"):
            parse_duration(bad)


def test_show_lists_every_declared_claim_with_its_pairs():
    spec = load_study("kernel-size")
    result = CliRunner().invoke(app, ["show", "kernel-size"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    text = result.output
    assert f"claims: {len(spec.claims)} pairs of arms" in text
    for claim in spec.claims:
        assert claim.words in text
        relation = {"superiority": ">", "non-inferiority": ">=", "equivalence": "≈"}[claim.kind]
        assert f"{claim.a} {relation} {claim.b}" in text
    assert "(equivalence, margin 0.5 points)" in text and "(superiority)" in text
    search = CliRunner().invoke(app, ["show", "search"])
    assert search.exit_code == 0 and "claims:" not in search.output
