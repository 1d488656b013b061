"""Study files -> validated study specs: profiles, overrides, arms, cells.

A study is one ablation of the ECA-Net paper (Wang et al., CVPR 2020, arXiv 1910.03151) written as a
TOML file in ``studies/`` (data, never code). ``load_study`` resolves it for a *profile* (``quick``,
``cifar`` or ``imagenet``) and ``--set`` overrides into a ``StudySpec``: the arms (attention variant
and its arguments), the backbones, the seeds and one ``TrialConfig`` per cell (arm x backbone x
seed). Every problem a user can cause is one ``SpecError`` naming the file, the key and what was
expected.

Study file format
-----------------
Top-level keys (all optional except ``layout`` and the arms)::

    name = "kernel-size"            # default: the file name without .toml
    description = "ECA kernel size k vs. the adaptive k, with SE and no attention as references"
    mirrors = "Figure 4"            # what of the paper it re-runs (for `ecasweep list` and reports)
    layout = "figure4"              # how reports lay it out: table2 | figure4 | gamma-beta | search
    baseline = "none"               # an arm id; default: the first arm
    seeds = 2                       # seeds 0 .. seeds-1 (usually from the profile)
    backbones = ["resnet-8", "resnet-14"]   # (usually from the profile; a single string is allowed)

    [model]                         # model options shared by every arm: `width` (a positive int;
    width = 16                      #   base width of a CIFAR ResNet)
    [data]                          # any field of config.DataConfig (dataset, subset, val_split, ...)
    subset = 12000
    [train]                         # any field of config.TrainConfig (epochs, lr, schedule, ...)
    epochs = 3

    [[arms]]                        # one arm: an attention variant and its arguments
    attention = "none"
    [[arms]]
    attention = "se"
    r = 16                          # arguments: r, groups, group_size, k, gamma, beta, min_k, bias,
    # id = "SE"                     #   round_to (those the variant takes); optional explicit id
    [[grid]]                        # several arms: list-valued keys expand to their product
    attention = "eca"
    k = [3, 5, 7, 9, "adaptive"]

    [profiles.imagenet]             # overrides of any top-level key for one profile
    seeds = 1
    [profiles.imagenet.train]
    epochs = 90

Arms come first in file order of ``[[arms]]``, then the expansion of each ``[[grid]]`` in file order
(the last key varies fastest). ``k`` is an odd int >= 1 or ``"adaptive"`` (Eq. 12 of the paper, with
``gamma`` > 0 and ``beta``); ``gamma``, ``beta`` and ``min_k`` apply only to an adaptive ``k`` (an
error in ``[[arms]]``; in a ``[[grid]]`` they are dropped for the int k's, so ``k = [3, "adaptive"]``
with ``gamma = [1, 2]`` gives three arms). Arguments left at the variant's default are dropped,
except the defining ones (``r`` of se, ``k`` of the ECA family and ``gamma``/``beta`` of an adaptive
k), which are filled in. An arm's id is then canonical and stable: ``none``, ``se(r=16)``,
``se-gc(groups=16)``, ``eca(k=3)``, ``eca(k=adaptive,gamma=2,beta=1)`` (arguments in the order
above). Every arm is built for every stage of every backbone (``backbones.stage_channels``), so an
``r`` that does not divide some stage's channel count is an error before anything trains.

A search study (``layout = "search"``) has no arms but a ``[search]`` table sampled by Optuna; its
objective is the validation top-1, so it needs ``data.val_split > 0``::

    [search]
    n_trials = 12
    sampler = "tpe"                 # tpe | random
    pruner = "median"               # median | hyperband | none
    [search.space]                  # a list: categorical; {low, high[, log]}: float range (gamma,
    attention = ["eca", "eca-ns", "ceca"]   #   beta only); a scalar: fixed
    k = [3, 5, 7, 9, "adaptive"]
    gamma = { low = 1.0, high = 3.0 }       # gamma, beta, min_k are sampled only when k is adaptive
    beta = { low = 0.0, high = 2.0 }

Resolution order: the profile's defaults (``_profiles.toml`` next to the study, else the repo's
``studies/_profiles.toml``; files starting with ``_`` are not studies) -> the study's top level ->
its ``[profiles.<profile>]`` -> ``--set key=value`` overrides. Tables (``data``, ``train``,
``model``, ``search``) merge key by key; everything else, lists included, is replaced. A ``--set``
value is a TOML value (``train.lr=0.05``, ``'backbones=["resnet-20"]'``), or else a bare string
(``data.dataset=synthetic``). ``data.subset``, ``data.data_dir`` and ``model.width`` take ``"none"``
for "not set" (TOML has no null).

Example:
    >>> spec = load_study("kernel-size", "quick", ["train.epochs=1", "seeds=1"])
    >>> [arm.id for arm in spec.arms][:3]
    ['none', 'se(r=16)', 'eca(k=3)']
    >>> spec.cells()[0].key
    'resnet-8/none/seed=0'
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import hashlib
import inspect
import itertools
import json
import math
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import torch

from .attention import ADAPTIVE, KERNEL_VARIANTS, REGISTRY, accepted_arguments, create_attention, resolve_kernel_size
from .backbones import stage_channels
from .config import DataConfig, ModelConfig, RuntimeConfig, TrainConfig, TrialConfig
from .errors import ConfigError, SpecError

LAYOUTS = ("table2", "figure4", "gamma-beta", "search")
SAMPLERS = ("tpe", "random")
PRUNERS = ("median", "hyperband", "none")
DEFAULT_PROFILE = "quick"
PROFILES_FILE = "_profiles.toml"
#: the repository's studies/ (an editable install), else the copy shipped as ecasweep/studies
BUILTIN_STUDIES = next((p for p in (Path(__file__).resolve().parents[1] / "studies",
                                    Path(__file__).resolve().parent / "studies") if p.is_dir()),
                       Path(__file__).resolve().parents[1] / "studies")

#: arm arguments, in the order canonical ids list them
ARM_ARGS = ("r", "groups", "group_size", "k", "gamma", "beta", "min_k", "bias", "round_to")
#: arguments that only matter for k = "adaptive"
ADAPTIVE_ONLY = ("gamma", "beta", "min_k")
#: float-valued arm arguments: the only ones a search space may give as {low, high}
FLOAT_ARGS = ("gamma", "beta")
#: grids larger than this are refused (a typo, not a study)
MAX_ARMS = 10_000

_TABLES = {
    "data": tuple(f.name for f in dataclasses.fields(DataConfig)),
    "train": tuple(f.name for f in dataclasses.fields(TrainConfig)),
    "model": ("width",),
    "search": ("n_trials", "sampler", "pruner", "space"),
}
_SCALARS = ("name", "description", "mirrors", "layout", "seeds", "baseline", "backbones", "arms", "grid")
_LAYER_KEYS = (*_SCALARS, *_TABLES)
_STUDY_KEYS = (*_LAYER_KEYS, "profiles")
_NULLABLE = ("data.subset", "data.data_dir", "model.width")


# The spec ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Arm:
    """One attention configuration: ``create_attention(attention, C, **kwargs)`` in every block."""

    id: str
    attention: str
    kwargs: dict[str, Any] = field(default_factory=dict)

    def __hash__(self) -> int:
        return hash((self.id, self.attention, _canonical_json(self.kwargs)))


@dataclass(frozen=True)
class Cell:
    """One trial of a grid study: an arm on a backbone from a seed; ``key`` is stable across runs."""

    key: str
    arm: Arm
    backbone: str
    seed: int


@dataclass(frozen=True)
class SearchSpec:
    """An Optuna search: ``space`` maps ``attention`` and arm arguments to a list (categorical),
    ``{"low", "high", "log"}`` (float range) or a fixed value."""

    n_trials: int
    sampler: str = "tpe"
    pruner: str = "median"
    space: dict[str, Any] = field(default_factory=dict)

    def suggest(self, trial: Any) -> dict[str, Any]:
        """Sample one point with an ``optuna.Trial``; gamma/beta/min_k only when k is adaptive.

        >>> import optuna
        >>> space = SearchSpec(1, space={"attention": ["eca"], "k": [3, "adaptive"]})
        >>> sorted(space.suggest(optuna.trial.FixedTrial({"attention": "eca", "k": 3})))
        ['attention', 'k']
        """
        params: dict[str, Any] = {}
        for key in ("attention", *ARM_ARGS):
            if key not in self.space:
                continue
            domain = self.space[key]
            if key in ADAPTIVE_ONLY and params.get("k", self.space.get("k")) != ADAPTIVE:
                continue
            if isinstance(domain, list):
                params[key] = trial.suggest_categorical(key, domain)
            elif isinstance(domain, dict):
                params[key] = trial.suggest_float(key, domain["low"], domain["high"], log=domain["log"])
            else:
                params[key] = domain
        return params


@dataclass(frozen=True)
class StudySpec:
    """A resolved, validated study: what to run, for one profile and set of overrides."""

    name: str
    description: str
    mirrors: str
    layout: str
    profile: str
    seeds: int
    baseline: str
    backbones: list[str]
    arms: list[Arm]
    model: dict[str, Any]
    data: DataConfig
    train: TrainConfig
    search: SearchSpec | None
    source: str
    overrides: list[str]

    def cells(self) -> list[Cell]:
        """Every arm on every backbone from every seed, ordered by (backbone, arm, seed).

        A search study has no arms, hence no cells: its trials come from ``search_trial_config``.

        >>> len(load_study("kernel-size").cells())
        28
        """
        return [Cell(f"{backbone}/{arm.id}/seed={seed}", arm, backbone, seed)
                for backbone in self.backbones for arm in self.arms for seed in range(self.seeds)]

    def arm(self, arm_id: str) -> Arm:
        """The arm called ``arm_id``.

        >>> load_study("reduction").arm("se(r=4)").kwargs
        {'r': 4}
        """
        for arm in self.arms:
            if arm.id == arm_id:
                return arm
        raise SpecError(f"{self.source}: no arm {arm_id!r} in study {self.name!r}{_suggest(arm_id, self.arm_ids())}")

    def arm_ids(self) -> list[str]:
        return [arm.id for arm in self.arms]

    def trial_config(self, cell: Cell, runtime: RuntimeConfig) -> TrialConfig:
        """The ``TrialConfig`` of one cell.

        >>> spec = load_study("kernel-size")
        >>> spec.trial_config(spec.cells()[0], RuntimeConfig()).model.backbone
        'resnet-8'
        """
        return self._trial(cell.arm, cell.backbone, cell.seed, runtime)

    def search_trial_config(self, params: Mapping[str, Any], backbone: str, seed: int,
                            runtime: RuntimeConfig) -> TrialConfig:
        """The ``TrialConfig`` of one point of the search space (``SearchSpec.suggest``'s params).

        >>> spec = load_study("search")
        >>> cfg = spec.search_trial_config({"attention": "eca", "k": 5}, "resnet-8", 0, RuntimeConfig())
        >>> cfg.model.attention_kwargs
        {'k': 5}
        """
        if backbone not in self.backbones:
            raise SpecError(f"{self.source}: backbone {backbone!r} is not one of the study's: "
                            f"{', '.join(self.backbones)}")
        return self._trial(self.search_arm(params), backbone, seed, runtime)

    def _trial(self, arm: Arm, backbone: str, seed: int, runtime: RuntimeConfig) -> TrialConfig:
        model = ModelConfig(backbone, arm.attention, dict(arm.kwargs), self.model.get("width"))
        try:
            return TrialConfig(model=model, data=self.data, train=self.train, seed=seed, runtime=runtime)
        except ConfigError as e:
            raise SpecError(f"{self.source}: {e}") from None

    def search_arm(self, params: Mapping[str, Any]) -> Arm:
        """The arm a point of the search space stands for (its id names it in storage and reports).

        >>> load_study("search").search_arm({"attention": "ceca", "k": "adaptive", "gamma": 2, "beta": 1}).id
        'ceca(k=adaptive,gamma=2,beta=1)'
        """
        if self.search is None:
            raise SpecError(f"{self.source}: study {self.name!r} is not a search study (layout {self.layout!r})")
        where = f"{self.source}: search parameters {dict(params)!r}"
        try:
            point = _search_point(self.search.space, params)
            attention = point.pop("attention")
            arm = _make_arm(attention, point, explicit=False)
            _check_on_stages(arm, self.backbones, self.model.get("width"))
        except _Invalid as e:
            raise SpecError(f"{where}: {e.key}: {e.message}") from None
        return arm

    def kernel_sizes(self, arm: Arm, backbone: str) -> list[int] | None:
        """The kernel size of ``arm`` in each stage of ``backbone``; None without a kernel.

        >>> spec = load_study("gamma-beta", "imagenet")
        >>> spec.kernel_sizes(spec.arm(spec.baseline), "resnet-50")
        [5, 5, 5, 7]
        """
        if arm.attention not in KERNEL_VARIANTS:
            return None
        kw = arm.kwargs
        return [resolve_kernel_size(kw.get("k", 3), c, kw.get("gamma", 2.0), kw.get("beta", 1.0), kw.get("min_k", 1))
                for c in stage_channels(backbone, self.model.get("width"))]

    def to_dict(self) -> dict[str, Any]:
        """Everything, JSON-serialisable; ``StudySpec.from_dict`` inverts it.

        >>> spec = load_study("table2")
        >>> StudySpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec
        True
        """
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "StudySpec":
        """Inverse of ``to_dict`` (e.g. a spec stored with a study); a malformed dict is a SpecError."""
        try:
            values = dict(d)
            search = values.get("search")
            values.update(
                backbones=list(values["backbones"]),
                arms=[Arm(a["id"], a["attention"], dict(a["kwargs"])) for a in values["arms"]],
                model=dict(values["model"]),
                data=DataConfig(**values["data"]),
                train=TrainConfig(**values["train"]),
                search=None if search is None else SearchSpec(**search),
                overrides=list(values["overrides"]),
            )
            return cls(**values)
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise SpecError(f"stored study spec is invalid: {type(e).__name__}: {e}") from None

    def results_key(self) -> dict[str, Any]:
        """What changes results: arms, backbones, model, data, recipe, search (not n_trials).

        Not the seeds or the number of search trials (raising them extends a study), nor its name,
        description, mirrors, layout, baseline, profile, data_dir or num_workers. Order-free.
        """
        data = dataclasses.asdict(self.data)
        data.pop("data_dir"), data.pop("num_workers")
        search = None
        if self.search is not None:
            search = {"sampler": self.search.sampler, "pruner": self.search.pruner, "space": self.search.space}
        return {"arms": {arm.id: {"attention": arm.attention, **arm.kwargs} for arm in self.arms},
                "backbones": sorted(self.backbones), "model": dict(self.model), "data": data,
                "train": dataclasses.asdict(self.train), "search": search}

    def results_hash(self) -> str:
        """sha256 (16 hex digits) of ``results_key()``: equal hashes, interchangeable results.

        >>> load_study("table2").results_hash() == load_study("table2", overrides=["seeds=5"]).results_hash()
        True
        """
        return hashlib.sha256(_canonical_json(self.results_key()).encode()).hexdigest()[:16]

    def diff(self, other_dict: Mapping[str, Any]) -> list[str]:
        """What differs in the results-relevant parts, as ``"key: other -> this"`` lines.

        ``other_dict`` is another spec's ``to_dict()`` (e.g. the one stored with a study being resumed).

        >>> old = load_study("table2").to_dict()
        >>> load_study("table2", overrides=["train.epochs=5"]).diff(old)
        ['train.epochs: 3 -> 5']
        """
        other = StudySpec.from_dict(other_dict).results_key()
        mine = self.results_key()
        lines = []
        for arm_id in other["arms"].keys() - mine["arms"].keys():
            lines.append(f"arms: {arm_id} removed")
        for arm_id in mine["arms"].keys() - other["arms"].keys():
            lines.append(f"arms: {arm_id} added")
        for arm_id in mine["arms"].keys() & other["arms"].keys():
            lines += _diff_values(f"arms.{arm_id}", other["arms"][arm_id], mine["arms"][arm_id])
        for key in ("backbones", "model", "data", "train", "search"):
            lines += _diff_values(key, other[key], mine[key])
        return sorted(lines)


def _diff_values(key: str, old: Any, new: Any) -> list[str]:
    if isinstance(old, dict) and isinstance(new, dict):
        return [line for sub in sorted(old.keys() | new.keys(), key=str)
                for line in _diff_values(f"{key}.{sub}", old.get(sub, "(unset)"), new.get(sub, "(unset)"))]
    if _canonical_json(old) == _canonical_json(new):
        return []
    return [f"{key}: {_show(old)} -> {_show(new)}"]


def _show(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


# Finding and loading study files ----------------------------------------------------------------

def study_paths() -> dict[str, Path]:
    """Study name -> file, from ``$ECASWEEP_STUDIES`` (os.pathsep-separated folders; earlier ones
    win) and the repository's ``studies/``. Files whose name starts with ``_`` are not studies.

    >>> study_paths()["kernel-size"].name
    'kernel-size.toml'
    """
    dirs = [Path(p) for p in os.environ.get("ECASWEEP_STUDIES", "").split(os.pathsep) if p]
    paths: dict[str, Path] = {}
    for folder in reversed([*dirs, BUILTIN_STUDIES]):
        if folder.is_dir():
            paths.update((p.stem, p) for p in sorted(folder.glob("*.toml")) if not p.name.startswith("_"))
    return dict(sorted(paths.items()))


def list_studies() -> list[StudySpec]:
    """Every study, loaded with the quick profile (for ``ecasweep list``).

    >>> "kernel-size" in [spec.name for spec in list_studies()]
    True
    """
    return [load_study(str(path)) for path in study_paths().values()]


def load_study(name_or_path: str | os.PathLike, profile: str = DEFAULT_PROFILE,
               overrides: Sequence[str] = ()) -> StudySpec:
    """Load, resolve and validate a study by name (see ``study_paths``) or path to a .toml file.

    >>> spec = load_study("kernel-size", "imagenet", ["seeds=2"])
    >>> spec.backbones, spec.seeds, spec.train.schedule
    (['resnet-50', 'resnet-101'], 2, 'step')
    """
    path = _find(name_or_path)
    study = _read_toml(path)
    profiles_path = path.parent / PROFILES_FILE
    if not profiles_path.is_file():
        profiles_path = BUILTIN_STUDIES / PROFILES_FILE
    defaults = _read_toml(profiles_path) if profiles_path.is_file() else {}
    for name, table in defaults.items():
        if not isinstance(table, dict):
            raise SpecError(f"{profiles_path}: {name}: expected a table [{name}] of profile defaults")
        _check_layer(table, _Layer(profiles_path, f"{name}."))
    if not isinstance(profile, str) or profile not in defaults:
        raise SpecError(f"{path}: unknown profile {profile!r}{_suggest(profile, list(defaults))}; "
                        f"expected one of: {', '.join(defaults) or '(none: no ' + PROFILES_FILE + ')'}")

    _check_layer(study, _Layer(path, ""), allowed=_STUDY_KEYS)
    study_profiles = study.pop("profiles", {})
    if not isinstance(study_profiles, dict):
        raise SpecError(f"{path}: profiles: expected tables [profiles.<name>], one per profile")
    for name, table in study_profiles.items():
        if name not in defaults:
            raise SpecError(f"{path}: profiles.{name}: unknown profile{_suggest(name, list(defaults))}; "
                            f"expected one of: {', '.join(defaults)}")
        if not isinstance(table, dict):
            raise SpecError(f"{path}: profiles.{name}: expected a table [profiles.{name}]")
        _check_layer(table, _Layer(path, f"profiles.{name}."))

    if isinstance(overrides, str) or not isinstance(overrides, Sequence):
        raise SpecError(f"{path}: overrides must be a list of 'key=value' strings, got {overrides!r}")
    layers = [(defaults[profile], _Layer(profiles_path, f"{profile}.")), (study, _Layer(path, "")),
              (study_profiles.get(profile, {}), _Layer(path, f"profiles.{profile}."))]
    layers += [(_parse_override(o, path), _Layer(path, "", override=o)) for o in overrides]
    doc: dict[str, Any] = {}
    origins: dict[str, _Layer] = {}
    for layer_doc, layer in layers:
        _merge(doc, layer_doc, layer, origins)
    return _Resolver(doc, origins, path).spec(profile, [str(o) for o in overrides])


def _find(name_or_path: Any) -> Path:
    if isinstance(name_or_path, os.PathLike):
        name_or_path = os.fspath(name_or_path)
    if not isinstance(name_or_path, str) or not name_or_path:
        raise SpecError(f"expected a study name or a path to a .toml file, got {name_or_path!r}")
    if name_or_path.endswith(".toml") or "/" in name_or_path or os.sep in name_or_path:
        path = Path(name_or_path)
        if not path.is_file():
            raise SpecError(f"{path}: no such study file")
        return path
    paths = study_paths()
    if name_or_path not in paths:
        raise SpecError(f"unknown study {name_or_path!r}{_suggest(name_or_path, list(paths))}; "
                        f"available: {', '.join(paths) or '(none)'}")
    return paths[name_or_path]


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise SpecError(f"{path}: cannot read: {e}") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        where = "" if "line" in str(e) else f" (line {text.count(chr(10)) + 1})"
        raise SpecError(f"{path}: invalid TOML: {e}{where}") from None


def _suggest(word: Any, choices: Iterable[str]) -> str:
    if not isinstance(word, str):
        return ""
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


# Layers: where each value came from -------------------------------------------------------------

@dataclass(frozen=True)
class _Layer:
    """One source of values: a file (at a key prefix inside it) or a ``--set`` override."""

    file: Path
    prefix: str
    override: str | None = None

    def error(self, key: str, message: str) -> SpecError:
        if self.override is not None:
            return SpecError(f"{self.file}: --set {self.override}: {key}: {message}")
        return SpecError(f"{self.file}: {self.prefix}{key}: {message}")


def _check_layer(doc: Mapping[str, Any], layer: _Layer, allowed: Sequence[str] = _LAYER_KEYS) -> None:
    """Unknown keys and non-tables where tables belong, named with the layer's file and prefix."""
    for key, value in doc.items():
        if key not in allowed:
            raise layer.error(key, f"unknown key{_suggest(key, allowed)}; expected one of: {', '.join(allowed)}")
        if key in _TABLES:
            if not isinstance(value, dict):
                raise layer.error(key, f"expected a table [{key}], got {value!r}")
            for sub in value:
                if sub not in _TABLES[key]:
                    raise layer.error(f"{key}.{sub}", f"unknown key{_suggest(sub, _TABLES[key])}; "
                                                      f"expected one of: {', '.join(_TABLES[key])}")


def _parse_override(text: Any, path: Path) -> dict[str, Any]:
    """``"train.epochs=5"`` -> ``{"train": {"epochs": 5}}``; a value that is not TOML is a string."""
    if not isinstance(text, str) or "=" not in text:
        raise SpecError(f"{path}: --set {text!r}: expected key=value, e.g. train.epochs=5")
    key, raw = (part.strip() for part in text.split("=", 1))
    parts = key.split(".")
    if not all(parts):
        raise SpecError(f"{path}: --set {text}: expected a key like train.epochs, got {key!r}")
    try:
        parsed = tomllib.loads(f"v = {raw}")
        value = parsed["v"] if list(parsed) == ["v"] else raw
    except tomllib.TOMLDecodeError:
        value = raw
    for part in reversed(parts):
        value = {part: value}
    _check_layer(value, _Layer(path, "", override=text))
    return value


def _merge(into: dict[str, Any], doc: Mapping[str, Any], layer: _Layer, origins: dict[str, _Layer],
           path: str = "") -> None:
    """Deep-merge tables, replace everything else; remember which layer set each non-table value."""
    for key, value in doc.items():
        dotted = f"{path}{key}"
        if isinstance(value, dict):
            if not isinstance(into.get(key), dict):
                into[key] = {}
            _merge(into[key], value, layer, origins, f"{dotted}.")
            continue
        into[key] = copy.deepcopy(value)
        for stale in [k for k in origins if k.startswith(f"{dotted}.")]:
            del origins[stale]
        origins[dotted] = layer


class _Invalid(Exception):
    """A bad value at ``key`` (relative to what is being validated); becomes a SpecError."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"{key}: {message}")
        self.key, self.message = key, message


# Resolving the merged document ------------------------------------------------------------------

class _Resolver:
    """Validates the merged document of one study and builds its ``StudySpec``."""

    def __init__(self, doc: dict[str, Any], origins: dict[str, _Layer], path: Path) -> None:
        self.doc, self.origins, self.path = doc, origins, path

    def error(self, key: str, message: str) -> SpecError:
        """The error at ``key``, attributed to the layer that set it (the study file if none did)."""
        parts = key.replace("[", ".[").split(".")
        for n in range(len(parts), 0, -1):
            layer = self.origins.get(".".join(parts[:n]).replace(".[", "["))
            if layer is not None:
                return layer.error(key, message)
        return _Layer(self.path, "").error(key, message)

    def spec(self, profile: str, overrides: list[str]) -> StudySpec:
        self._check_finite(self.doc, "")
        layout = self._choice("layout", LAYOUTS, required=True)
        model = self._model()
        backbones = self._backbones(model.get("width"))
        data = self._config(DataConfig, "data")
        search = self._search(layout, data, backbones, model.get("width"))
        arms = [] if search else self._arms(backbones, model.get("width"))
        return StudySpec(
            name=self._string("name", self.path.stem), description=self._string("description", ""),
            mirrors=self._string("mirrors", ""), layout=layout, profile=profile,
            seeds=self._positive_int("seeds", 1), baseline=self._baseline(arms), backbones=backbones,
            arms=arms, model=model, data=data, train=self._config(TrainConfig, "train"), search=search,
            source=str(self.path), overrides=overrides)

    def _check_finite(self, value: Any, key: str) -> None:
        if isinstance(value, float) and not math.isfinite(value):
            raise self.error(key, f"expected a finite number, got {value!r}")
        items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
        for sub, item in items:
            self._check_finite(item, f"{key}[{sub}]" if isinstance(sub, int) else f"{key}.{sub}".lstrip("."))

    def _string(self, key: str, default: str) -> str:
        value = self.doc.get(key, default)
        if not isinstance(value, str):
            raise self.error(key, f"expected a string, got {value!r}")
        return value

    def _choice(self, key: str, choices: Sequence[str], required: bool = False, default: str = "") -> str:
        if key not in self.doc and required:
            raise self.error(key, f"missing; expected one of: {', '.join(choices)}")
        value = self.doc.get(key, default)
        if not isinstance(value, str) or value not in choices:
            raise self.error(key, f"expected one of: {', '.join(choices)}, got {value!r}{_suggest(value, choices)}")
        return value

    def _positive_int(self, key: str, default: int, table: Mapping[str, Any] | None = None) -> int:
        value = (self.doc if table is None else table).get(key.rsplit(".", 1)[-1], default)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise self.error(key, f"expected an integer >= 1, got {value!r}")
        return value

    def _model(self) -> dict[str, Any]:
        model = dict(self.doc.get("model", {}))
        if _null(model.get("width")):
            model.pop("width")
        if "width" in model:
            self._positive_int("model.width", 0, model)
        return model

    def _backbones(self, width: int | None) -> list[str]:
        if "backbones" not in self.doc:
            raise self.error("backbones", "missing; expected a list of backbone names")
        value = self.doc["backbones"]
        names = [value] if isinstance(value, str) else value
        if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
            raise self.error("backbones", f"expected a non-empty list of backbone names, got {value!r}")
        for name in names:
            if names.count(name) > 1:
                raise self.error("backbones", f"{name!r} is listed twice")
            try:
                stage_channels(name)
            except ValueError as e:
                raise self.error("backbones", str(e)) from None
            try:
                stage_channels(name, width)
            except ValueError as e:
                raise self.error("model.width", f"{name}: {e}") from None
        return list(names)

    def _config(self, kind: type, section: str) -> Any:
        values = dict(self.doc.get(section, {}))
        defaults = {f.name: f.default for f in dataclasses.fields(kind)}
        for key, value in list(values.items()):
            if f"{section}.{key}" in _NULLABLE and _null(value):
                values[key] = None
            elif isinstance(defaults[key], float) and isinstance(value, int) and not isinstance(value, bool):
                values[key] = float(value)  # train.lr = 1 and = 1.0 are one recipe (and one hash)
        if values.get("data_dir") is not None and not isinstance(values["data_dir"], str):
            raise self.error(f"{section}.data_dir", f"expected a path (a string), got {values['data_dir']!r}")
        try:
            return kind(**values)
        except ConfigError as e:
            message = str(e).removeprefix(f"{e.field}: ")
            raise self.error(e.field, message) from None

    def _arms(self, backbones: list[str], width: int | None) -> list[Arm]:
        arms: list[tuple[Arm, str]] = []
        for section in ("arms", "grid"):
            tables = self.doc.get(section, [])
            if not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
                raise self.error(section, f"expected an array of tables [[{section}]], got {tables!r}")
            for i, table in enumerate(tables):
                key = f"{section}[{i}]"
                try:
                    new = [_arm_from_table(table)] if section == "arms" else _arms_from_grid(table)
                except _Invalid as e:
                    raise self.error(f"{key}.{e.key}".rstrip("."), e.message) from None
                arms += [(arm, key) for arm in new]
        if not arms:
            raise self.error("arms", "no arms; add [[arms]] or [[grid]] tables (e.g. attention = \"eca\")")
        if len(arms) > MAX_ARMS:
            raise self.error("grid", f"{len(arms)} arms; at most {MAX_ARMS}")
        ids: dict[str, str] = {}
        configs: dict[tuple[str, str], str] = {}
        for arm, key in arms:
            config = (arm.attention, _canonical_json(arm.kwargs))
            previous = ids.get(arm.id) or configs.get(config)
            if previous is not None:
                raise self.error(key, f"duplicate arm {arm.id!r}: the same as an arm of {previous}")
            ids[arm.id] = configs[config] = key
            try:
                _check_on_stages(arm, backbones, width)
            except _Invalid as e:
                raise self.error(key, e.message) from None
        return [arm for arm, _ in arms]

    def _baseline(self, arms: list[Arm]) -> str:
        ids = [arm.id for arm in arms]
        if not arms:
            if "baseline" in self.doc:
                raise self.error("baseline", "a search study has no arms, hence no baseline; remove it")
            return ""
        value = self.doc.get("baseline", ids[0])
        if value not in ids:
            raise self.error("baseline", f"expected an arm id, got {value!r}{_suggest(value, ids)}; "
                                         f"arms: {', '.join(ids)}")
        return value

    def _search(self, layout: str, data: DataConfig, backbones: list[str], width: int | None) -> SearchSpec | None:
        table = self.doc.get("search")
        if layout != "search":
            if table is not None:
                raise self.error("search", "only a study with layout = \"search\" takes a [search] table")
            return None
        if table is None:
            raise self.error("search", "layout = \"search\" needs a [search] table with n_trials and space")
        for key in ("arms", "grid"):
            if key in self.doc:
                raise self.error(key, "a search study samples its arms from [search.space]; remove them")
        if data.val_split < 1:
            raise self.error("data.val_split", "a search optimises validation top-1 (never test): "
                                               f"expected an integer > 0, got {data.val_split!r}")
        n_trials = self._positive_int("search.n_trials", None, table)
        sampler = table.get("sampler", "tpe")
        pruner = table.get("pruner", "median")
        for key, value, choices in (("sampler", sampler, SAMPLERS), ("pruner", pruner, PRUNERS)):
            if not isinstance(value, str) or value not in choices:
                raise self.error(f"search.{key}", f"expected one of: {', '.join(choices)}, got {value!r}")
        try:
            space = _search_space(table.get("space"))
            points = _space_points(space)
            for point in points:
                arm = _make_arm(point.pop("attention"), point, explicit=False)
                _check_on_stages(arm, backbones, width)
        except _Invalid as e:
            raise self.error(f"search.space.{e.key}".rstrip("."), e.message) from None
        return SearchSpec(n_trials, sampler, pruner, space)


def _null(value: Any) -> bool:
    return isinstance(value, str) and value.lower() == "none"


# Arms -------------------------------------------------------------------------------------------

def _arm_from_table(table: Mapping[str, Any]) -> Arm:
    _check_keys(table, ("id", "attention", *ARM_ARGS))
    if "attention" not in table:
        raise _Invalid("attention", f"missing; expected one of: {', '.join(REGISTRY)}")
    arm_id = table.get("id")
    if arm_id is not None and (not isinstance(arm_id, str) or not arm_id.strip() or "/" in arm_id):
        raise _Invalid("id", f"expected a non-empty string without '/', got {arm_id!r}")
    return _make_arm(table["attention"], {k: v for k, v in table.items() if k in ARM_ARGS},
                     explicit=True, arm_id=arm_id)


def _arms_from_grid(table: Mapping[str, Any]) -> list[Arm]:
    if "id" in table:
        raise _Invalid("id", "grid arms get generated ids; give an id in an [[arms]] table instead")
    _check_keys(table, ("attention", *ARM_ARGS))
    if "attention" not in table:
        raise _Invalid("attention", f"missing; expected one of: {', '.join(REGISTRY)}")
    axes = {key: value if isinstance(value, list) else [value] for key, value in table.items()}
    size = 1
    for key, values in axes.items():
        if not values:
            raise _Invalid(key, "empty axis; give at least one value")
        frozen = [_canonical_json(v) for v in values]
        if len(set(frozen)) < len(frozen):
            raise _Invalid(key, f"a value is listed twice in {values!r}")
        size *= len(values)
        if size > MAX_ARMS:
            raise _Invalid("", f"the grid expands to more than {MAX_ARMS} arms")
    arms: dict[str, Arm] = {}
    for combo in itertools.product(*axes.values()):
        point = dict(zip(axes, combo))
        arm = _make_arm(point.pop("attention"), point, explicit=False)
        arms.setdefault(arm.id, arm)  # int k's collapse over the gamma/beta axes
    return list(arms.values())


def _check_keys(table: Mapping[str, Any], allowed: Sequence[str]) -> None:
    for key in table:
        if key not in allowed:
            raise _Invalid(key, f"unknown key{_suggest(key, allowed)}; expected one of: {', '.join(allowed)}")


def _make_arm(attention: Any, args: Mapping[str, Any], explicit: bool, arm_id: str | None = None) -> Arm:
    """A normalised arm: arguments checked, defaults of defining arguments filled, others dropped.

    ``explicit``: an adaptive-only argument with an int k is an error (an [[arms]] table) rather
    than dropped (a [[grid]] point).
    """
    if not isinstance(attention, str) or attention not in REGISTRY:
        raise _Invalid("attention", f"unknown attention {attention!r}{_suggest(attention, REGISTRY)}; "
                                    f"expected one of: {', '.join(REGISTRY)}")
    accepted = accepted_arguments(attention)
    for key in args:
        if key not in accepted:
            raise _Invalid(key, f"attention {attention!r} does not take {key}; "
                                f"it takes: {', '.join(accepted) or 'no arguments'}")
    kwargs = {key: _check_arg(key, args[key]) for key in ARM_ARGS if key in args}
    defaults = {name: p.default for name, p in inspect.signature(REGISTRY[attention].__init__).parameters.items()}
    defining = {"se": ("r",)}.get(attention, ())
    if attention in KERNEL_VARIANTS:
        kwargs.setdefault("k", defaults["k"])
        defining = ("k", "gamma", "beta") if kwargs["k"] == ADAPTIVE else ("k",)
        if kwargs["k"] != ADAPTIVE:
            for key in ADAPTIVE_ONLY:
                if key in kwargs and explicit:
                    raise _Invalid(key, f"applies only when k = \"adaptive\" (k is {kwargs['k']})")
                kwargs.pop(key, None)
    if attention == "se-gc" and ("groups" in kwargs) == ("group_size" in kwargs):
        raise _Invalid("groups", "se-gc takes exactly one of groups (SE-GC1: 16) or group_size (SE-GC2: 16, SE-GC3: 8)")
    for key in defining:
        value = kwargs.get(key, defaults[key])
        kwargs[key] = float(value) if key in FLOAT_ARGS else value
    kwargs = {key: kwargs[key] for key in ARM_ARGS
              if key in kwargs and (key in defining or kwargs[key] != defaults.get(key))}
    return Arm(arm_id or _arm_id(attention, kwargs), attention, kwargs)


def _check_arg(key: str, value: Any) -> Any:
    is_int = isinstance(value, int) and not isinstance(value, bool)
    is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if key == "k":
        if value != ADAPTIVE and not (is_int and value >= 1 and value % 2 == 1):
            raise _Invalid(key, f"expected an odd integer >= 1 or \"adaptive\", got {value!r}")
        return value
    if key == "gamma":
        if not is_number or not value > 0:
            raise _Invalid(key, f"expected a number > 0, got {value!r}")
        return float(value)
    if key == "beta":
        if not is_number:
            raise _Invalid(key, f"expected a number, got {value!r}")
        return float(value)
    if key == "bias":
        if not isinstance(value, bool):
            raise _Invalid(key, f"expected true or false, got {value!r}")
        return value
    if not is_int or value < 1:
        raise _Invalid(key, f"expected an integer >= 1, got {value!r}")
    return value


def _arm_id(attention: str, kwargs: Mapping[str, Any]) -> str:
    if not kwargs:
        return attention
    return f"{attention}({','.join(f'{key}={_format(value)}' for key, value in kwargs.items())})"


def _format(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _check_on_stages(arm: Arm, backbones: Sequence[str], width: int | None) -> None:
    """Build the arm's module for every stage (on the meta device: no memory) to let it validate."""
    for backbone in backbones:
        where = backbone if width is None else f"{backbone} (model.width = {width})"
        for stage, channels in enumerate(stage_channels(backbone, width), 1):
            try:
                with torch.device("meta"):
                    create_attention(arm.attention, channels, **arm.kwargs)
            except (ValueError, TypeError, OverflowError, RuntimeError) as e:
                raise _Invalid("", f"arm {arm.id!r} on {where} stage {stage} (C={channels}): {e}") from None


# Search spaces ----------------------------------------------------------------------------------

def _search_space(space: Any) -> dict[str, Any]:
    """The normalised space: lists (categorical), {low, high, log} (float ranges), fixed values."""
    if not isinstance(space, dict) or not space:
        raise _Invalid("", f"expected a table [search.space] (attention = [...], k = [...], ...), got {space!r}")
    _check_keys(space, ("attention", *ARM_ARGS))
    if "attention" not in space:
        raise _Invalid("attention", f"missing; expected a list of: {', '.join(REGISTRY)}")
    normalised: dict[str, Any] = {}
    for key in ("attention", *ARM_ARGS):
        if key not in space:
            continue
        domain = space[key]
        if isinstance(domain, list):
            frozen = [_canonical_json(v) for v in domain]
            if not domain or len(set(frozen)) < len(frozen):
                raise _Invalid(key, f"expected a non-empty list of distinct values, got {domain!r}")
            if not all(v is None or isinstance(v, (bool, int, float, str)) for v in domain):
                raise _Invalid(key, f"expected numbers or strings, got {domain!r}")
        elif isinstance(domain, dict):
            domain = _float_range(key, domain)
        normalised[key] = domain
    attentions = normalised["attention"] if isinstance(normalised["attention"], list) else [normalised["attention"]]
    for attention in attentions:
        _make_arm(attention, {}, explicit=False)  # the name must exist
        for key in normalised:
            if key != "attention" and key not in accepted_arguments(attention):
                raise _Invalid(key, f"attention {attention!r} does not take {key}; every attention of "
                                    f"the space must take every argument of it")
    return normalised


def _float_range(key: str, domain: Mapping[str, Any]) -> dict[str, Any]:
    if key not in FLOAT_ARGS:
        raise _Invalid(key, f"a range {{low, high}} is only for {', '.join(FLOAT_ARGS)}; give a list of values")
    _check_keys(domain, ("low", "high", "log"))
    bounds = [domain.get("low"), domain.get("high")]
    if not all(isinstance(b, (int, float)) and not isinstance(b, bool) for b in bounds) or not bounds[0] < bounds[1]:
        raise _Invalid(key, f"expected {{low = <number>, high = <larger number>}}, got {dict(domain)!r}")
    log = domain.get("log", False)
    if not isinstance(log, bool) or (log and bounds[0] <= 0):
        raise _Invalid(f"{key}.log", f"expected true (with low > 0) or false, got {log!r}")
    return {"low": float(bounds[0]), "high": float(bounds[1]), "log": log}


def _space_points(space: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Every categorical combination, with both ends of each range: enough to validate the space."""
    axes = {key: domain if isinstance(domain, list) else [domain["low"], domain["high"]]
            if isinstance(domain, dict) else [domain] for key, domain in space.items()}
    if math.prod(len(values) for values in axes.values()) > MAX_ARMS:
        raise _Invalid("", f"the space has more than {MAX_ARMS} categorical combinations")
    return [dict(zip(axes, combo)) for combo in itertools.product(*axes.values())]


def _search_point(space: Mapping[str, Any], params: Mapping[str, Any]) -> dict[str, Any]:
    """Check sampled ``params`` against ``space`` and fill in its fixed values."""
    if not isinstance(params, Mapping):
        raise _Invalid("", f"expected a mapping of parameters, got {params!r}")
    _check_keys(params, list(space))
    point: dict[str, Any] = {}
    for key, domain in space.items():
        if key not in params:
            if isinstance(domain, (list, dict)) and key not in ADAPTIVE_ONLY:
                raise _Invalid(key, "missing; the space samples it")
            if not isinstance(domain, (list, dict)):
                point[key] = domain
            continue
        value = params[key]
        if isinstance(domain, list):
            ok = any(_canonical_json(value) == _canonical_json(v) for v in domain)
        elif isinstance(domain, dict):
            number = isinstance(value, (int, float)) and not isinstance(value, bool)
            ok = number and domain["low"] <= value <= domain["high"]
        else:
            ok = _canonical_json(value) == _canonical_json(domain)
        if not ok:
            raise _Invalid(key, f"{value!r} is outside the space's {domain!r}")
        point[key] = value
    return point
