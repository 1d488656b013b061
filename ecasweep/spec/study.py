"""The resolved study: ``StudySpec`` and its ``Cell``s, its trial configs, hashing and diffs."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Mapping

from ..models.catalogue import KERNEL_VARIANTS, resolve_kernel_size
from ..models.shapes import stage_channels
from ..engine.config import DataConfig, ModelConfig, RuntimeConfig, TrainConfig, TrialConfig
from ..errors import ConfigError, SpecError
from .arms import Arm, _check_on_stages, _make_arm
from .claims import ClaimSpec
from .schema import _Invalid, _canonical_json, _suggest
from .search import SearchSpec, _search_point


@dataclass(frozen=True)
class Cell:
    """One trial of a grid study: an arm on a backbone from a seed; ``key`` is stable across runs."""

    key: str
    arm: Arm
    backbone: str
    seed: int


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
    #: the claims the study tests (``[[claims]]``), one per pair of arms; decided by ecasweep.claims
    claims: list[ClaimSpec] = field(default_factory=list)
    #: "backbone/arm" -> seeds that arm runs there when more than ``seeds`` (rounds of --until-resolved)
    extra_seeds: dict[str, int] = field(default_factory=dict)
    #: launcher defaults, e.g. {"slurm": {"partition": "gpu"}} from [launcher.slurm]; not part of results
    launcher: dict[str, Any] = field(default_factory=dict)
    #: how the claims are decided (``stats.sequential.Design``): the procedure sharing alpha between the
    #: hypotheses and the spending function sharing each one's level between the looks. The defaults
    #: here are the legacy design, which a spec stored before designs were named (issue 22) is read
    #: with; a study file that names none gets ``stats.sequential.DEFAULT`` (``resolve``).
    design: str = "bonferroni"
    spending: str = "even"
    #: users' modules the arms name (``models.user``): resolved reference -> where the code is, its
    #: sha256 and version; part of the results (a changed module is another study)
    code: dict[str, dict[str, Any]] = field(default_factory=dict)

    def cells(self) -> list[Cell]:
        """Every arm on every backbone from every seed, ordered by (backbone, arm, seed).

        A search study has no arms, hence no cells: its trials come from ``search_trial_config``.

        An arm that builds the same model as an earlier one on a backbone (``aliases``) has no cells
        there: the earlier arm's cells are trained once and reported under both labels.

        >>> len(load_study("kernel-size").cells())  # 28 less adaptive k = k 3 on both backbones
        24
        """
        aliases = self.aliases()
        return [Cell(f"{backbone}/{arm.id}/seed={seed}", arm, backbone, seed)
                for backbone in self.backbones for arm in self.arms if arm.id not in aliases.get(backbone, {})
                for seed in range(max(self.seeds, self.extra_seeds.get(f"{backbone}/{arm.id}", 0)))]

    def cell_counts(self) -> dict[str, int]:
        """How the cells add up: arms x backbones x seeds (``planned``), less the cells of aliases
        (``aliased``), plus the seeds rounds added (``added``).

        >>> load_study("kernel-size").cell_counts()
        {'cells': 24, 'planned': 28, 'aliased': 4, 'added': 0}
        """
        cells = len(self.cells())
        planned = len(self.arms) * len(self.backbones) * self.seeds
        aliased = sum(len(a) for a in self.aliases().values()) * self.seeds
        return {"cells": cells, "planned": planned, "aliased": aliased, "added": cells + aliased - planned}

    def cell(self, key: str) -> Cell:
        """The cell named ``key`` (``backbone/arm/seed=N``); a SpecError naming the closest ones when
        the study has none by that name.

        >>> load_study("kernel-size").cell("resnet-8/none/seed=1").seed
        1
        """
        if self.search is not None:
            raise SpecError(f"{self.name} is a search study; its trials are not cells")
        cells = {c.key: c for c in self.cells()}
        if key not in cells:
            raise SpecError(f"no cell {key!r} in {self.name}{_suggest(key, list(cells))}; cells look like "
                            f"{next(iter(cells))!r} (see `ecasweep run {self.name} --dry-run`)")
        return cells[key]

    def aliases(self) -> dict[str, dict[str, str]]:
        """Per backbone, each arm that builds the same model as an earlier arm -> that arm: the same
        variant with the same kernel size in every stage (and the same other arguments); with the
        same seed and recipe, the same trial.

        >>> load_study("kernel-size").aliases()["resnet-8"]
        {'eca(k=adaptive,gamma=2,beta=1)': 'eca(k=3)'}
        """
        out: dict[str, dict[str, str]] = {}
        for backbone in self.backbones:
            first: dict[tuple, str] = {}
            for arm in self.arms:
                model = self._model_key(arm, backbone)
                if model in first:
                    out.setdefault(backbone, {})[arm.id] = first[model]
                else:
                    first[model] = arm.id
        return out

    def _model_key(self, arm: Arm, backbone: str) -> tuple:
        ks = self.kernel_sizes(arm, backbone)
        if ks is None:
            return arm.attention, _canonical_json(arm.kwargs)
        others = {k: v for k, v in arm.kwargs.items() if k not in ("k", "gamma", "beta", "min_k")}
        return arm.attention, tuple(ks), _canonical_json(others)

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
        if arm.attention not in KERNEL_VARIANTS or backbone in self.code:  # a user's network: stages its own
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
        return {**dataclasses.asdict(self), "aliases": self.aliases()}  # aliases: for reports (derived)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "StudySpec":
        """Inverse of ``to_dict`` (e.g. a spec stored with a study); a malformed dict is a SpecError."""
        try:
            values = dict(d)
            values.pop("aliases", None)
            search = values.get("search")
            values.update(
                backbones=list(values["backbones"]),
                arms=[Arm(a["id"], a["attention"], dict(a["kwargs"])) for a in values["arms"]],
                model=dict(values["model"]),
                data=DataConfig(**values["data"]),
                train=TrainConfig(**values["train"]),
                search=None if search is None else SearchSpec(**search),
                overrides=list(values["overrides"]),
                claims=[ClaimSpec(**c) for c in values.get("claims", [])],
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
        key = {"arms": {arm.id: {"attention": self._written(arm.attention), **arm.kwargs} for arm in self.arms},
               "backbones": sorted(self._written(b) for b in self.backbones), "model": dict(self.model), "data": data,
               "train": dataclasses.asdict(self.train), "search": search}
        if self.code:  # users' modules: their source's hash and version, not where they are
            key["code"] = {r["source"]: {"sha256": r["sha256"], "version": r["version"]} for r in self.code.values()}
        return key

    def _written(self, attention: str) -> str:
        """A user's module as the study names it (a file relative to it), so that moving the study's
        folder keeps its results hash; a built-in as it is."""
        return self.code[attention]["source"] if attention in self.code else attention

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
        ['train.epochs: 2 -> 5']
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
        for key in ("backbones", "model", "data", "train", "search", "code"):
            lines += _diff_values(key, other.get(key, {}), mine.get(key, {}))
        return sorted(lines)


def alias_notes(spec: StudySpec) -> list[str]:
    """What ``show`` and ``--dry-run`` say about aliased arms (empty without any).

    >>> alias_notes(load_study("kernel-size"))[1]
    'on resnet-8: eca(k=adaptive,gamma=2,beta=1) is eca(k=3) (k 3/3/3)'
    """
    aliases = spec.aliases()
    if not aliases:
        return []
    cells = sum(len(a) for a in aliases.values()) * spec.seeds
    lines = [f"aliases: {cells} cell{'s' if cells != 1 else ''} build the same model as another arm's; "
             "trained once, reported under each label:"]
    for backbone, pairs in aliases.items():
        for alias, arm in pairs.items():
            ks = spec.kernel_sizes(spec.arm(alias), backbone)
            lines.append(f"on {backbone}: {alias} is {arm}" + (f" (k {'/'.join(map(str, ks))})" if ks else ""))
    return lines


def _diff_values(key: str, old: Any, new: Any) -> list[str]:
    if isinstance(old, dict) and isinstance(new, dict):
        return [line for sub in sorted(old.keys() | new.keys(), key=str)
                for line in _diff_values(f"{key}.{sub}", old.get(sub, "(unset)"), new.get(sub, "(unset)"))]
    if _canonical_json(old) == _canonical_json(new):
        return []
    return [f"{key}: {_show(old)} -> {_show(new)}"]


def _show(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)
