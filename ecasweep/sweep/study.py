"""Opening a study: created with its spec, or loaded and checked against the spec it was run with.

A study stores the resolved spec it was created with (``store.stored_spec``) and the hash of what
changes results; resuming with another recipe is refused with the differences named, and raising
the number of seeds extends the plan (a plan never shrinks).
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import optuna
from optuna.storages import BaseStorage

from ..errors import EcasweepError, SpecError
from ..models import user
from ..spec import StudySpec
from ..store.locking import study_lock
from ..store.results import HASH_ATTR, SPEC_ATTR
from ..store.storage import mask_url
from ..store.stored_spec import read_spec, write_spec


def open_study(spec: StudySpec, storage: BaseStorage, name: str | None = None, url: str = "") -> optuna.Study:
    """Create the study, or load it and check it was run with the same recipe.

    Raising the number of seeds extends a study; any other difference in what changes results is
    refused with the differences named, unless another study name is given.
    """
    name = name or spec.name
    study = optuna.create_study(storage=storage, study_name=name, direction="maximize",
                                load_if_exists=True, **_search_strategy(spec))
    # The spec is several attributes written one by one: a process that read them while another
    # writes would see half a spec. Writers and readers take the study's lock (``locking``).
    with study_lock(study):
        _check_or_write_spec(study, spec, name, url)
    return study


def _check_or_write_spec(study: optuna.Study, spec: StudySpec, name: str, url: str) -> None:
    stored = check_recipe(study.user_attrs, spec, name, url)
    if stored is None:  # new, or its creator was killed before the hash: written again, whole
        write_spec(study, spec.to_dict())
        study.set_user_attr(HASH_ATTR, spec.results_hash())  # last: the mark of a whole spec
        return
    # Seeds only grow; what does not change results (claims, margins, descriptions) follows the
    # study file, so that `table` shows the claims as they now read.
    merged = extended(spec, StudySpec.from_dict(stored))
    if _canonical(merged.to_dict()) != _canonical(stored):
        write_spec(study, merged.to_dict())


def check_recipe(attrs: dict[str, Any], spec: StudySpec, name: str, url: str = "") -> dict[str, Any] | None:
    """The whole spec stored in a study's attributes (None when there is none yet), refused with the
    differences named when it was run with another recipe than ``spec``'s."""
    stored = complete_spec(attrs)
    if stored is None or attrs.get(HASH_ATTR) == spec.results_hash():
        return stored
    where = f" in {mask_url(url)}" if url else ""
    change = user.changed(stored.get("code"), spec.code)
    if change:  # a user's module edited since: which file, in one line
        raise SpecError(f"study {name!r}{where}: {change}; results of two versions of a module never "
                        "meet in one study: restore it, or start a new study with --name")
    differences = "; ".join(spec.diff(stored)) or "the recipe"
    raise SpecError(f"study {name!r}{where} was run with another recipe ({differences}); "
                    f"resume with the same settings, or start a new study with --name")


def extended(spec: StudySpec, stored: StudySpec) -> StudySpec:
    """``spec`` with the seeds of ``stored`` where it had more (a plan never shrinks a study), and with
    the claims' design it was created with: a design is chosen before the data, never switched after
    a look (a study stored before designs were named keeps the legacy one, and so its verdicts).

    >>> from ecasweep.spec import load_study
    >>> small, big = load_study("table2", overrides=["seeds=1"]), load_study("table2", overrides=["seeds=3"])
    >>> extended(small, big).seeds
    3
    """
    extra = dict(stored.extra_seeds)
    for key, n in spec.extra_seeds.items():
        extra[key] = max(n, extra.get(key, 0))
    return dataclasses.replace(spec, seeds=max(spec.seeds, stored.seeds), extra_seeds=extra,
                               design=stored.design, spending=stored.spending)


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def complete_spec(attrs: dict[str, Any]) -> dict[str, Any] | None:
    """The spec stored in a study's attributes when it was written whole; None when there is none or
    only part of one. Its creator writes the results hash after the spec's sections, so sections
    without the hash are those of a creator killed while writing them (``open_study`` writes them
    again); a spec in the one attribute of earlier versions was written in one write."""
    return read_spec(attrs) if HASH_ATTR in attrs or SPEC_ATTR in attrs else None


def spec_of(study: optuna.Study, attrs: dict[str, Any]) -> StudySpec:
    """The stored spec in ``attrs`` (a study's user attributes, read under its lock), or one clear
    error: the study is not ecasweep's, or its creation was interrupted before its spec was whole."""
    stored = complete_spec(attrs)
    if stored is not None:
        return StudySpec.from_dict(stored)
    if read_spec(attrs) is not None:
        raise EcasweepError(f"study {study.study_name!r} was interrupted while it was being created (its spec is "
                            "not whole): run its study file again (ecasweep run) to create it")
    raise EcasweepError(f"study {study.study_name!r} was not created by ecasweep (no spec stored)")


def stored_spec(study: optuna.Study) -> StudySpec:
    """The spec a study was created with (how workers on other machines learn the recipe)."""
    with study_lock(study):  # never half of a spec another process is writing
        attrs = study.user_attrs
    return spec_of(study, attrs)


def _search_strategy(spec: StudySpec) -> dict[str, Any]:
    if spec.search is None:
        return {}
    sampler = optuna.samplers.TPESampler(constant_liar=True) if spec.search.sampler == "tpe" \
        else optuna.samplers.RandomSampler()
    pruner = optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=1) \
        if spec.search.pruner == "median" else optuna.pruners.NopPruner()
    return {"sampler": sampler, "pruner": pruner}
