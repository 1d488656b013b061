"""Study files -> StudySpec: the shipped studies, profiles, overrides, hashing, and every user error."""

from __future__ import annotations

import json
import math
import tomllib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ecasweep.engine.config import RuntimeConfig, TrialConfig
from ecasweep.errors import SpecError
from ecasweep.spec import (
    Arm, StudySpec, list_studies, load_study, study_paths,
)

PROFILES = ("quick", "cifar", "imagenet")
SHIPPED = ("kernel-size", "reduction", "interaction", "gamma-beta", "table2", "search")

EXPECTED_ARMS = {
    "kernel-size": ["none", "se(r=16)", "eca(k=3)", "eca(k=5)", "eca(k=7)", "eca(k=9)",
                    "eca(k=adaptive,gamma=2,beta=1)"],
    "reduction": ["none", "se(r=16)", "se(r=4)", "se-var1", "se-var2", "se-var3"],
    "interaction": ["se-var2", "se-var3", "se-gc(groups=16)", "se-gc(group_size=16)", "se-gc(group_size=8)",
                    "eca-ns(k=3)", "eca(k=3)", "ceca(k=3)"],
    "gamma-beta": [f"eca(k=adaptive,gamma={g},beta={b})" for g in (1, 2, 3) for b in (1, 2)],
    "table2": ["none", "se(r=16)", "se-var1", "se-var2", "se-var3", "se-gc(groups=16)",
               "se-gc(group_size=16)", "se-gc(group_size=8)", "eca-ns(k=3)", "eca(k=3)"],
    "search": [],
}
EXPECTED_BASELINE = {"kernel-size": "none", "reduction": "none", "interaction": "se-var2",
                     "gamma-beta": "eca(k=adaptive,gamma=2,beta=1)", "table2": "none", "search": ""}
EXPECTED_PROFILE = {
    "quick": (["resnet-8", "resnet-14"], 2, "fashion-mnist", 2),
    "cifar": (["resnet-56", "resnet-110"], 3, "cifar100", 100),
    "imagenet": (["resnet-50", "resnet-101"], 1, "imagenet", 100),
}


# The shipped studies ----------------------------------------------------------------------------

def test_the_shipped_studies_are_found():
    assert set(SHIPPED) <= set(study_paths())
    assert "_profiles" not in study_paths()
    assert {spec.name for spec in list_studies()} >= set(SHIPPED)


@pytest.mark.parametrize("profile", PROFILES)
@pytest.mark.parametrize("name", SHIPPED)
def test_every_study_loads_under_every_profile(name, profile):
    spec = load_study(name, profile)
    backbones, seeds, dataset, epochs = EXPECTED_PROFILE[profile]
    assert spec.name == name and spec.profile == profile
    assert spec.backbones == backbones and spec.seeds == seeds
    assert spec.data.dataset == dataset and spec.train.epochs == epochs
    assert [arm.id for arm in spec.arms] == EXPECTED_ARMS[name]
    assert spec.baseline == EXPECTED_BASELINE[name]
    aliased = sum(len(aliases) for aliases in spec.aliases().values())  # trained once (test_aliases.py)
    assert len(spec.cells()) == (len(EXPECTED_ARMS[name]) * len(backbones) - aliased) * seeds
    assert spec.description and spec.mirrors
    assert StudySpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec


def test_kernel_size_quick_cells_are_ordered_by_backbone_arm_seed():
    spec = load_study("kernel-size")
    cells = spec.cells()
    assert len(cells) == (7 - 1) * 2 * 2  # the adaptive k is k = 3 on both: an alias (test_aliases.py)
    assert [c.key for c in cells[:3]] == ["resnet-8/none/seed=0", "resnet-8/none/seed=1", "resnet-8/se(r=16)/seed=0"]
    assert cells[-1].key == "resnet-14/eca(k=9)/seed=1"
    assert len({c.key for c in cells}) == len(cells)
    cfg = spec.trial_config(cells[7], RuntimeConfig(device="cpu"))
    assert isinstance(cfg, TrialConfig)
    assert (cfg.model.backbone, cfg.model.attention, cfg.model.attention_kwargs, cfg.seed) == \
        ("resnet-8", "eca", {"k": 5}, 1)
    assert cfg.data == spec.data and cfg.train == spec.train


def test_imagenet_profile_is_the_papers_recipe():
    train = load_study("table2", "imagenet").train
    assert (train.batch_size, train.lr, train.schedule, train.step_size, train.step_gamma, train.weight_decay) == \
        (256, 0.1, "step", 30, 0.1, 1e-4)


def test_gamma_beta_kernel_sizes():
    spec = load_study("gamma-beta", "imagenet")
    assert spec.kernel_sizes(spec.arm(spec.baseline), "resnet-50") == [5, 5, 5, 7]
    assert spec.kernel_sizes(spec.arm("eca(k=adaptive,gamma=1,beta=1)"), "resnet-50") == [9, 11, 11, 13]
    quick = load_study("gamma-beta")
    assert quick.kernel_sizes(quick.arm("eca(k=adaptive,gamma=3,beta=1)"), "resnet-8") == [1, 3, 3]
    assert quick.kernel_sizes(Arm("se(r=16)", "se", {"r": 16}), "resnet-8") is None


def test_search_study():
    spec = load_study("search")
    assert spec.search.n_trials == 12 and spec.search.sampler == "tpe" and spec.search.pruner == "median"
    assert spec.data.val_split > 0 and spec.cells() == []
    assert load_study("search", "cifar").search.n_trials == 40
    params = {"attention": "eca-ns", "k": "adaptive", "gamma": 1.5, "beta": 0.25}
    cfg = spec.search_trial_config(params, "resnet-14", 1, RuntimeConfig())
    assert cfg.model.attention_kwargs == {"k": "adaptive", "gamma": 1.5, "beta": 0.25} and cfg.seed == 1
    assert spec.search_arm({"attention": "eca", "k": 7}).id == "eca(k=7)"
    for bad in ({"attention": "se", "k": 3}, {"attention": "eca", "k": 4}, {"attention": "eca", "k": 3, "r": 2},
                {"attention": "eca", "k": "adaptive", "gamma": 9.0, "beta": 1.0}):
        with pytest.raises(SpecError):
            spec.search_trial_config(bad, "resnet-14", 0, RuntimeConfig())
    with pytest.raises(SpecError, match="resnet-50"):
        spec.search_trial_config({"attention": "eca", "k": 3}, "resnet-50", 0, RuntimeConfig())


def test_search_suggest_samples_gamma_and_beta_only_for_adaptive_k():
    optuna = pytest.importorskip("optuna")
    space = load_study("search").search
    fixed = optuna.trial.FixedTrial({"attention": "eca", "k": 5})
    assert space.suggest(fixed) == {"attention": "eca", "k": 5}
    adaptive = optuna.trial.FixedTrial({"attention": "ceca", "k": "adaptive", "gamma": 2.5, "beta": 0.5})
    assert space.suggest(adaptive) == {"attention": "ceca", "k": "adaptive", "gamma": 2.5, "beta": 0.5}


# Overrides, hashing, diff -----------------------------------------------------------------------

def test_overrides():
    spec = load_study("kernel-size", overrides=["data.dataset=synthetic", "train.epochs=1", "seeds=1"])
    assert (spec.data.dataset, spec.train.epochs, spec.seeds) == ("synthetic", 1, 1)
    assert spec.overrides == ["data.dataset=synthetic", "train.epochs=1", "seeds=1"]
    assert len(spec.cells()) == (7 - 1) * 2
    two = load_study("table2", overrides=['backbones=["resnet-20","resnet-56"]'])
    assert two.backbones == ["resnet-20", "resnet-56"]
    assert load_study("table2", overrides=["backbones=resnet-20"]).backbones == ["resnet-20"]
    spec = load_study("table2", overrides=["data.subset=500", "data.data_dir=/tmp/x", "train.lr=0.05",
                                           "train.batch_size=64", "model.width=32", "baseline=se(r=16)"])
    assert (spec.data.subset, spec.data.data_dir, spec.train.lr, spec.train.batch_size) == (500, "/tmp/x", 0.05, 64)
    assert spec.model == {"width": 32} and spec.baseline == "se(r=16)"
    assert load_study("table2", overrides=["data.subset=none"]).data.subset is None
    # --set comes after the profile: it wins
    assert load_study("table2", "imagenet", overrides=["train.epochs=2"]).train.epochs == 2


def test_results_hash_ignores_seeds_but_not_the_recipe():
    base = load_study("table2")
    assert base.results_hash() == load_study("table2", overrides=["seeds=7"]).results_hash()
    assert base.results_hash() == load_study("table2", overrides=["data.data_dir=/elsewhere"]).results_hash()
    assert base.results_hash() == load_study("table2", overrides=["train.lr=0.15"]).results_hash()
    assert base.results_hash() == load_study("table2", overrides=["description=x"]).results_hash()
    assert base.results_hash() != load_study("table2", overrides=["train.epochs=5"]).results_hash()
    assert base.results_hash() != load_study("table2", "cifar").results_hash()
    assert len(base.results_hash()) == 16 and int(base.results_hash(), 16) >= 0


def test_diff_names_what_changed():
    old = load_study("table2").to_dict()
    assert load_study("table2", overrides=["seeds=5"]).diff(old) == []
    assert load_study("table2", overrides=["train.epochs=5"]).diff(old) == ["train.epochs: 2 -> 5"]
    lines = load_study("reduction", overrides=["data.dataset=synthetic"]).diff(old)
    assert "data.dataset: fashion-mnist -> synthetic" in lines
    assert any("se-gc(groups=16)" in line and "removed" in line for line in lines)
    assert any("se(r=4)" in line and "added" in line for line in lines)
    with pytest.raises(SpecError):
        load_study("table2").diff({"name": "broken"})


def test_a_path_to_a_toml_file(tmp_path):
    path = tmp_path / "mine.toml"
    path.write_text('layout = "table2"\n[[arms]]\nattention = "eca"\nk = 5\n')
    spec = load_study(str(path))
    assert spec.name == "mine" and spec.source == str(path) and spec.baseline == "eca(k=5)"
    assert load_study(path).arms == spec.arms


def test_studies_from_env_dirs(tmp_path, monkeypatch):
    (tmp_path / "extra.toml").write_text('layout = "table2"\n[[arms]]\nattention = "se-var1"\n')
    (tmp_path / "_ignored.toml").write_text("not a study")
    monkeypatch.setenv("ECASWEEP_STUDIES", str(tmp_path))
    assert study_paths()["extra"] == tmp_path / "extra.toml" and "_ignored" not in study_paths()
    assert load_study("extra").arms == [Arm("se-var1", "se-var1", {})]


def test_normalised_arm_ids(tmp_path):
    path = tmp_path / "ids.toml"
    path.write_text('layout = "table2"\n'
                    '[[arms]]\nattention = "se"\n'                              # r filled in
                    '[[arms]]\nattention = "eca"\nbias = false\n'               # default dropped
                    '[[arms]]\nattention = "eca"\nk = "adaptive"\ngamma = 1.5\n'
                    '[[arms]]\nattention = "ceca"\nk = 5\nbias = true\n'
                    '[[arms]]\nid = "GC1"\nattention = "se-gc"\ngroups = 16\n'
                    '[[grid]]\nattention = "eca-ns"\nk = [3, "adaptive"]\ngamma = [1, 2]\n')
    ids = [arm.id for arm in load_study(str(path)).arms]
    assert ids == ["se(r=16)", "eca(k=3)", "eca(k=adaptive,gamma=1.5,beta=1)", "ceca(k=5,bias=true)", "GC1",
                   "eca-ns(k=3)", "eca-ns(k=adaptive,gamma=1,beta=1)", "eca-ns(k=adaptive,gamma=2,beta=1)"]


# Every user error is one SpecError naming the file and the key ----------------------------------

GOOD_ARMS = '[[arms]]\nattention = "none"\n[[arms]]\nattention = "se"\nr = 16\n'
BAD_FILES = [
    ("malformed TOML", 'layout = "table2"\nseeds = [1,\n', "line"),
    ("malformed TOML inside", 'layout = "table2"\nseeds = 1 2\n' + GOOD_ARMS, "line 2"),
    ("unknown top-level key", 'layout = "table2"\nepochz = 3\n' + GOOD_ARMS, "epochz"),
    ("unknown key in data", 'layout = "table2"\n' + GOOD_ARMS + "[data]\nsubsett = 5\n", "data.subsett"),
    ("unknown key in train", 'layout = "table2"\n' + GOOD_ARMS + "[train]\nepoch = 5\n", "train.epoch"),
    ("unknown key in an arm", 'layout = "table2"\n' + GOOD_ARMS + '[[arms]]\nattention = "eca"\nkk = 3\n',
     "arms[2].kk"),
    ("unknown key in a profile", 'layout = "table2"\n' + GOOD_ARMS + "[profiles.quick]\nseedz = 1\n",
     "profiles.quick.seedz"),
    ("unknown profile table", 'layout = "table2"\n' + GOOD_ARMS + "[profiles.tiny]\nseeds = 1\n", "profiles.tiny"),
    ("wrong type in train", 'layout = "table2"\n' + GOOD_ARMS + '[train]\nepochs = "three"\n', "train.epochs"),
    ("wrong type in data", 'layout = "table2"\n' + GOOD_ARMS + "[data]\nsubset = -1\n", "data.subset"),
    ("non-finite lr", 'layout = "table2"\n' + GOOD_ARMS + "[train]\nlr = nan\n", "train.lr"),
    ("data_dir not a string", 'layout = "table2"\n' + GOOD_ARMS + "[data]\ndata_dir = 3\n", "data.data_dir"),
    ("data not a table", 'layout = "table2"\ndata = 3\n' + GOOD_ARMS, "data"),
    ("wrong type of seeds", 'layout = "table2"\nseeds = 0\n' + GOOD_ARMS, "seeds"),
    ("missing layout", GOOD_ARMS, "layout"),
    ("unknown layout", 'layout = "figure5"\n' + GOOD_ARMS, "layout"),
    ("empty arm list", 'layout = "table2"\n', "arms"),
    ("empty axis", 'layout = "table2"\n[[grid]]\nattention = "eca"\nk = []\n', "grid[0].k"),
    ("duplicate axis value", 'layout = "table2"\n[[grid]]\nattention = "eca"\nk = [3, 3]\n', "grid[0].k"),
    ("duplicate arms", 'layout = "table2"\n' + GOOD_ARMS + '[[arms]]\nattention = "se"\n', "arms[2]"),
    ("duplicate ids", 'layout = "table2"\n' + GOOD_ARMS + '[[arms]]\nid = "none"\nattention = "se-var1"\n',
     "arms[2]"),
    ("duplicate across a grid", 'layout = "table2"\n' + GOOD_ARMS + '[[grid]]\nattention = "se"\nr = [4, 16]\n',
     "grid[0]"),
    ("even k", 'layout = "table2"\n[[arms]]\nattention = "eca"\nk = 4\n', "arms[0].k"),
    ("k < 1", 'layout = "table2"\n[[arms]]\nattention = "eca"\nk = -1\n', "arms[0].k"),
    ("gamma <= 0", 'layout = "table2"\n[[arms]]\nattention = "eca"\nk = "adaptive"\ngamma = 0\n', "arms[0].gamma"),
    ("gamma with an int k", 'layout = "table2"\n[[arms]]\nattention = "eca"\nk = 3\ngamma = 2\n', "arms[0].gamma"),
    ("unknown attention", 'layout = "table2"\n[[arms]]\nattention = "eca2"\n', "arms[0].attention"),
    ("argument the variant does not take", 'layout = "table2"\n[[arms]]\nattention = "se"\nk = 3\n', "arms[0].k"),
    ("se-gc with both", 'layout = "table2"\n[[arms]]\nattention = "se-gc"\ngroups = 4\ngroup_size = 4\n',
     "arms[0].groups"),
    ("unknown backbone", 'layout = "table2"\nbackbones = ["resnet-9"]\n' + GOOD_ARMS, "backbones"),
    ("empty backbones", 'layout = "table2"\nbackbones = []\n' + GOOD_ARMS, "backbones"),
    ("r not dividing a stage", 'layout = "table2"\n[[arms]]\nattention = "se"\nr = 32\n', "arms[0]"),
    ("groups not dividing a stage", 'layout = "table2"\n[[arms]]\nattention = "se-gc"\ngroups = 32\n', "arms[0]"),
    ("group_size not dividing a stage", 'layout = "table2"\n[[arms]]\nattention = "se-gc"\ngroup_size = 24\n',
     "arms[0]"),
    ("width breaks r", 'layout = "table2"\n[model]\nwidth = 8\n' + GOOD_ARMS, "arms[1]"),
    ("baseline not an arm", 'layout = "table2"\nbaseline = "se(r=8)"\n' + GOOD_ARMS, "baseline"),
    ("grid with an id", 'layout = "table2"\n[[grid]]\nid = "x"\nattention = "eca"\n', "grid[0].id"),
    ("search without val_split", 'layout = "search"\n[search]\nn_trials = 3\n[search.space]\nattention = "eca"\n',
     "data.val_split"),
    ("search space argument not taken", 'layout = "search"\n[data]\nval_split = 10\n[search]\nn_trials = 3\n'
     '[search.space]\nattention = ["eca", "se"]\nk = [3]\n', "search.space.k"),
    ("search range for k", 'layout = "search"\n[data]\nval_split = 10\n[search]\nn_trials = 3\n'
     '[search.space]\nattention = "eca"\nk = {low = 1, high = 5}\n', "search.space.k"),
    ("search without n_trials", 'layout = "search"\n[data]\nval_split = 10\n[search]\n'
     '[search.space]\nattention = "eca"\n', "search.n_trials"),
    ("search with arms", 'layout = "search"\n' + GOOD_ARMS + '[data]\nval_split = 10\n[search]\nn_trials = 3\n'
     '[search.space]\nattention = "eca"\n', "arms"),
    ("search table in a grid study", 'layout = "table2"\n' + GOOD_ARMS + "[search]\nn_trials = 3\n", "search"),
]


@pytest.mark.parametrize("body,key", [(b, k) for _, b, k in BAD_FILES], ids=[t for t, _, _ in BAD_FILES])
def test_bad_files_raise_one_spec_error_naming_file_and_key(tmp_path, body, key):
    path = tmp_path / "bad.toml"
    path.write_text(body)
    with pytest.raises(SpecError) as info:
        load_study(str(path))
    message = str(info.value)
    assert str(path) in message and key in message


def test_stage_errors_name_the_arm_the_backbone_and_the_stage(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text('layout = "table2"\nbackbones = ["resnet-20"]\n[[arms]]\nattention = "se"\nr = 32\n')
    with pytest.raises(SpecError, match=r"se\(r=32\).*resnet-20 stage 1 \(C=16\)"):
        load_study(str(path))


BAD_OVERRIDES = [
    (["seeds"], "seeds"),
    (["train.epoch=3"], "train.epoch"),
    (["train.epochs=abc"], "train.epochs"),
    (["train.epochs=0"], "train.epochs"),
    (["data.dataset=mnist"], "data.dataset"),
    (["backbones=resnet-9"], "backbones"),
    (["model.width=8"], "se(r=16)' on resnet-8 (model.width = 8) stage 1"),
    (["baseline=eca(k=3)"], "baseline"),
    (["profiles.quick.seeds=1"], "profiles"),
    ([".x=1"], ".x"),
]


@pytest.mark.parametrize("overrides,key", BAD_OVERRIDES, ids=[o[0] for o, _ in BAD_OVERRIDES])
def test_bad_overrides(overrides, key):
    with pytest.raises(SpecError) as info:
        load_study("reduction", overrides=overrides)
    assert key in str(info.value) and "reduction.toml" in str(info.value)


def test_unknown_names():
    with pytest.raises(SpecError, match=r"kernel-sise.*did you mean 'kernel-size'.*available: .*table2"):
        load_study("kernel-sise")
    with pytest.raises(SpecError, match="nope.toml"):
        load_study("nope.toml")
    with pytest.raises(SpecError, match=r"unknown profile 'quik'.*quick"):
        load_study("table2", "quik")
    with pytest.raises(SpecError, match="--set model.width=8: model.width: resnet-50"):
        load_study("table2", "imagenet", overrides=["model.width=8"])


# Property: anything a user can write is a StudySpec or a SpecError ------------------------------

VOCAB = ["name", "description", "mirrors", "layout", "seeds", "baseline", "backbones", "data", "train", "model",
         "arms", "grid", "search", "profiles", "quick", "cifar", "imagenet", "dataset", "subset", "val_split",
         "data_dir", "epochs", "lr", "batch_size", "schedule", "width", "attention", "id", "r", "groups",
         "group_size", "k", "gamma", "beta", "min_k", "bias", "round_to", "n_trials", "sampler", "pruner", "space",
         "low", "high", "log"]
WORDS = ["eca", "se", "se-gc", "ceca", "eca-ns", "none", "adaptive", "resnet-8", "resnet-50", "mobilenet-v2",
         "table2", "search", "figure4", "synthetic", "cifar100", "tpe", "median", "step", "cosine"]

keys = st.sampled_from(VOCAB) | st.text(max_size=6)
scalars = (st.integers(-3, 40) | st.integers() | st.floats(allow_nan=False) | st.booleans()
           | st.text(max_size=8) | st.sampled_from(WORDS))
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=4),
                      max_leaves=12)


def toml_string(text: str) -> str:
    escaped = "".join(c if c >= " " and c not in '"\\\x7f' else f"\\u{ord(c):04x}" for c in text)
    return f'"{escaped}"'


def toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return ("inf" if value > 0 else "-inf") if math.isinf(value) else repr(value)
    if isinstance(value, str):
        return toml_string(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return "{" + ", ".join(f"{toml_string(k)} = {toml_value(v)}" for k, v in value.items()) + "}"


def toml_document(doc: dict) -> str:
    return "".join(f"{toml_string(k)} = {toml_value(v)}\n" for k, v in doc.items())


def shipped_documents() -> list[dict]:
    return [tomllib.loads(path.read_text()) for name, path in sorted(study_paths().items()) if name in SHIPPED]


@st.composite
def mutated_studies(draw) -> dict:
    """A shipped study with a few keys set to random values or deleted, at random depths."""
    doc = json.loads(json.dumps(draw(st.sampled_from(shipped_documents()))))
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.lists(keys | st.integers(0, 2), min_size=1, max_size=3))
        node = doc
        for part in path[:-1]:
            child = node[part] if isinstance(node, list) and isinstance(part, int) and part < len(node) \
                else node.get(part) if isinstance(node, dict) else None
            if not isinstance(child, (dict, list)):
                break
            node = child
        last = path[-1]
        if isinstance(node, dict) and isinstance(last, str):
            if draw(st.booleans()) and last in node:
                del node[last]
            else:
                node[last] = draw(values)
        elif isinstance(node, list) and isinstance(last, int) and last < len(node):
            node[last] = draw(values)
    return doc


override_strings = st.lists(
    st.text(max_size=12) | st.builds(lambda k, v: f"{k}={v}", st.lists(st.sampled_from(VOCAB), min_size=1,
                                                                        max_size=3).map(".".join),
                                     st.sampled_from(WORDS) | values.map(toml_value) | st.text(max_size=6)),
    max_size=3)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(doc=st.dictionaries(keys, values, max_size=8) | mutated_studies(),
       profile=st.sampled_from([*PROFILES, "nope"]), overrides=override_strings)
def test_any_document_gives_a_spec_or_a_spec_error(tmp_path_factory, doc, profile, overrides):
    text = toml_document(doc)
    assert tomllib.loads(text) == doc  # the emitter round-trips
    path = tmp_path_factory.getbasetemp() / "random-study.toml"
    path.write_text(text, encoding="utf-8")
    try:
        spec = load_study(str(path), profile, overrides)
    except SpecError:
        return
    assert StudySpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec
    assert len(spec.results_hash()) == 16 and spec.diff(spec.to_dict()) == []
    for cell in spec.cells()[:3]:
        assert isinstance(spec.trial_config(cell, RuntimeConfig()), TrialConfig)
        spec.kernel_sizes(cell.arm, cell.backbone)
