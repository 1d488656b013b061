"""Resolving the merged document of a study into a validated ``StudySpec``."""

from __future__ import annotations

import copy
import dataclasses
import math
from pathlib import Path
from typing import Any, Mapping, Sequence

from ..models.shapes import stage_channels
from ..engine.config import DataConfig, TrainConfig
from ..errors import ConfigError, SpecError
from .arms import Arm, _arm_from_table, _arms_from_grid, _check_on_stages, _is_user_backbone, _make_arm, _user_backbone
from .claims import DESIGNS, SPENDING, ClaimSpec, check_margin, check_spending, claims_from_tables
from .layers import _Layer
from .schema import LAYOUTS, MAX_ARMS, PRUNERS, SAMPLERS, _Invalid, _NULLABLE, _canonical_json, _suggest
from .search import SearchSpec, _search_space, _space_points
from .study import StudySpec


#: a study of more cells (or search trials) than this is refused: a typo in seeds, not a plan
MAX_CELLS = 100_000


class _Resolver:
    """Validates the merged document of one study and builds its ``StudySpec``."""

    def __init__(self, doc: dict[str, Any], origins: dict[str, _Layer], path: Path, check_models: bool = True) -> None:
        self.doc, self.origins, self.path = doc, origins, path
        self.check_models = check_models  # build each arm and model on the meta device (imports torch)
        self.code: dict[str, dict[str, Any]] = {}  # users' modules the arms name: resolved reference -> identity

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
        self._check_size(len(arms), backbones, search, model.get("width"))
        return StudySpec(
            claims=self._claims(arms), extra_seeds=self._extra_seeds(arms, backbones), **self._design(),
            name=self._string("name", self.path.stem), description=self._string("description", ""),
            mirrors=self._string("mirrors", ""), layout=layout, profile=profile,
            seeds=self._positive_int("seeds", 1), baseline=self._baseline(arms), backbones=backbones,
            arms=arms, model=model, data=data, train=self._config(TrainConfig, "train"), search=search,
            source=str(self.path), overrides=overrides, launcher=copy.deepcopy(self.doc.get("launcher", {})),
            code=dict(self.code))

    def _check_size(self, n_arms: int, backbones: list[str], search: SearchSpec | None, width: int | None) -> None:
        """Refuse absurd sizes before anything enumerates cells or allocates a model (typos, not studies)."""
        if search is None:
            seeds = self._positive_int("seeds", 1)
            cells = n_arms * len(backbones) * seeds
            if cells > MAX_CELLS:
                raise self.error("seeds", f"{seeds:,} gives {cells:,} cells (one per arm, backbone and seed); "
                                          f"at most {MAX_CELLS:,}")
        elif search.n_trials > MAX_CELLS:
            raise self.error("search.n_trials", f"{search.n_trials:,} trials; at most {MAX_CELLS:,}")
        for name in backbones if width is not None and self.check_models else ():
            from ..models.backbones import check_model_size

            try:
                check_model_size(name, width=width)
            except ConfigError as e:
                raise self.error(e.field, str(e).removeprefix(f"{e.field}: ")) from None

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
        resolved = []
        for name in names:
            if names.count(name) > 1:
                raise self.error("backbones", f"{name!r} is listed twice")
            if _is_user_backbone(name):  # a user's network (models.user): resolved, imported, identified
                try:
                    resolved.append(_user_backbone(name, self.path.parent, self.code))
                except _Invalid as e:
                    raise self.error("backbones", e.message) from None
                if width is not None:
                    raise self.error("model.width", f"{name}: width applies to ecasweep's backbones, not a user's")
                continue
            try:
                stage_channels(name)
            except ValueError as e:
                raise self.error("backbones", str(e)) from None
            try:
                stage_channels(name, width)
            except ValueError as e:
                raise self.error("model.width", f"{name}: {e}") from None
            resolved.append(name)
        return resolved

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
                    new = [_arm_from_table(table, self.path.parent, self.code)] if section == "arms" else \
                        _arms_from_grid(table, self.path.parent, self.code)  # code: users' modules, identified
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
                if self.check_models:
                    _check_on_stages(arm, backbones, width)
            except _Invalid as e:
                raise self.error(key, e.message) from None
        return [arm for arm, _ in arms]

    def _extra_seeds(self, arms: list[Arm], backbones: list[str]) -> dict[str, int]:
        value = self.doc.get("extra_seeds", {})
        cells = [f"{b}/{arm.id}" for b in backbones for arm in arms]
        if not isinstance(value, dict):
            raise self.error("extra_seeds", f"expected a table {{\"backbone/arm\" = seeds}}, got {value!r}")
        for key, seeds in value.items():
            if key not in cells:
                raise self.error(f"extra_seeds.{key}", f"no arm on a backbone by that name{_suggest(key, cells)}")
            if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1:
                raise self.error(f"extra_seeds.{key}", f"expected an integer >= 1, got {seeds!r}")
        return dict(value)

    def _claims(self, arms: list[Arm]) -> list[ClaimSpec]:
        margin = self.doc.get("margin")
        if margin is not None:
            try:
                margin = check_margin(margin)
            except _Invalid as e:
                raise self.error("margin", e.message) from None
        if "claims" in self.doc and not arms:
            raise self.error("claims", "a search study has no arms to make claims about; remove them")
        try:
            return claims_from_tables(self.doc.get("claims", []), [arm.id for arm in arms], margin)
        except _Invalid as e:
            raise self.error(f"claims{e.key}", e.message) from None

    def _design(self) -> dict[str, str]:
        """``design`` and ``spending``: how the claims are decided (docs/claims.md); by default the
        design the simulation chose (``holm`` with ``claims.SPENDING``)."""
        design = self._choice("design", DESIGNS, default=DESIGNS[0])
        value = self.doc.get("spending", SPENDING)
        try:
            check_spending(value)
        except ValueError as e:
            raise self.error("spending", str(e)) from None
        return {"design": design, "spending": value}

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
                if self.check_models:
                    _check_on_stages(arm, backbones, width)
        except _Invalid as e:
            raise self.error(f"search.space.{e.key}".rstrip("."), e.message) from None
        return SearchSpec(n_trials, sampler, pruner, space)


def _null(value: Any) -> bool:
    return isinstance(value, str) and value.lower() == "none"
