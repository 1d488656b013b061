"""Finding and reading study files and their profiles: ``study_paths``, ``load_study``."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any, Sequence

from ..models.catalogue import MissingTimmError
from ..errors import SpecError
from .layers import _Layer, _check_layer, _merge, _parse_override
from .resolve import _Resolver
from .schema import _STUDY_KEYS, _suggest
from .study import StudySpec


DEFAULT_PROFILE = "quick"
PROFILES_FILE = "_profiles.toml"
#: the repository's studies/ (an editable install), else the copy shipped as ecasweep/studies
BUILTIN_STUDIES = next((p for p in (Path(__file__).resolve().parents[2] / "studies",
                                    Path(__file__).resolve().parents[1] / "studies") if p.is_dir()),
                       Path(__file__).resolve().parents[2] / "studies")


def study_paths() -> dict[str, Path]:
    """Study name -> file, from ``$ECASWEEP_STUDIES`` (os.pathsep-separated folders; earlier ones
    win) and the repository's ``studies/``. Files whose name starts with ``_`` are not studies.

    >>> study_paths()["kernel-size"].name
    'kernel-size.toml'
    """
    dirs = [Path(p) for p in os.environ.get("ECASWEEP_STUDIES", "").split(os.pathsep) if p]
    for folder in dirs:  # a folder that is not there is said, never skipped in silence
        if not folder.is_dir():
            state = "is a file" if folder.exists() else "does not exist"
            raise SpecError(f"ECASWEEP_STUDIES: {folder} {state}; expected folders of study files (.toml), "
                            f"separated by {os.pathsep!r} (a study file itself is given by its path)")
    paths: dict[str, Path] = {}
    for folder in reversed([*dirs, BUILTIN_STUDIES]):
        if folder.is_dir():
            paths.update((p.stem, p) for p in sorted(folder.glob("*.toml")) if not p.name.startswith("_"))
    return dict(sorted(paths.items()))


def list_studies(check_models: bool | None = True) -> list[StudySpec]:
    """Every study, loaded with the quick profile (for ``ecasweep list``); a study whose arms need
    an optional extra that is not installed (timm) is left out. ``check_models``: as for ``load_study``.

    >>> "kernel-size" in [spec.name for spec in list_studies()]
    True
    """
    specs = []
    for path in study_paths().values():
        try:
            specs.append(load_study(str(path), check_models=check_models))
        except MissingTimmError:
            continue
    return specs


#: override keys that change which modules a study builds (so a shipped study's checks no longer cover it)
MODEL_KEYS = ("arms", "grid", "backbones", "model", "search")


def load_study(name_or_path: str | os.PathLike, profile: str = DEFAULT_PROFILE,
               overrides: Sequence[str] = (), check_models: bool | None = True) -> StudySpec:
    """Load, resolve and validate a study by name (see ``study_paths``) or path to a .toml file.

    ``check_models``: also build every arm for every stage of every backbone, and with a
    ``model.width`` the model itself, on the meta device, which catches what only the modules know
    (an ``r`` that does not divide a stage's channels, an extent that is no power of two, a model
    too large). It imports torch (about 3 s). ``None`` (``list``, ``show``): only where the input
    can be wrong there, i.e. not for a shipped study (the tests build all of them under every
    profile) unless an override changes its ``arms``, ``grid``, ``backbones``, ``model`` or
    ``search``. Every command that trains or plans (``run``, ``--dry-run``, ``worker``, ``submit``)
    checks it all.

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
    override_docs = [_parse_override(o, path) for o in overrides]
    layers += [(o_doc, _Layer(path, "", override=o)) for o_doc, o in zip(override_docs, overrides)]
    doc: dict[str, Any] = {}
    origins: dict[str, _Layer] = {}
    for layer_doc, layer in layers:
        _merge(doc, layer_doc, layer, origins)
    if check_models is None:
        shipped = path.resolve().parent == BUILTIN_STUDIES.resolve() and profiles_path.resolve().parent == \
            BUILTIN_STUDIES.resolve()
        changed = any(key in MODEL_KEYS for o_doc in override_docs for key in o_doc)
        check_models = not shipped or changed
    return _Resolver(doc, origins, path, check_models).spec(profile, [str(o) for o in overrides])


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
