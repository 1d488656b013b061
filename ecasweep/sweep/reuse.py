"""A cell trained once for every study that has it: results read from another study's finished trial.

Vanilla, SE (r=16) and ECA appear in several studies (kernel-size, table2, methods) under the same
recipe, data and seeds. Training is deterministic given a trial's configuration, so a cell whose
configuration identity (``TrialConfig.identity``: model, data, recipe, seed and amp) matches a
trial another study of the same storage finished is not trained again: its metrics are copied
into this study's trial, which records where they came from (``reused_from``: ``study#trial``).
Every trial records its identity (``identity``) when it is claimed, so later studies can find it.

Not reused: a trial that was itself read from elsewhere (its source is found instead), duplicates,
and cells of users' modules (the identity names the module's file, not its source, which a study
checks by hash on its own: docs/user-modules.md).

Example:
    >>> index = Finished.of(study)                             # doctest: +SKIP
    >>> index.find(config)                                     # doctest: +SKIP
    ('kernel-size', 17, {...}, 91.2)
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import optuna
from optuna.trial import TrialState

from ..errors import EcasweepError
from ..models.user import is_reference
from ..store.results import CELL_ATTRS, DUPLICATE_OF

#: ``0``: train every cell, even one another study finished (``1``, the default: read it)
ENV = "ECASWEEP_REUSE"
IDENTITY_ATTR = "identity"
REUSED_ATTR = "reused_from"
#: attributes that belong to the trial that ran, not to its results
_OWN = (*CELL_ATTRS, IDENTITY_ATTR, REUSED_ATTR, DUPLICATE_OF, "worker", "epoch", "stale_trial",
        "slurm_job", "slurm_node", "slurm_array_task", "slurm_restarts")


def enabled() -> bool:
    """Whether cells are read from other studies' trials (``$ECASWEEP_REUSE``: 1, the default, or 0)."""
    raw = os.environ.get(ENV, "1").strip()
    if raw not in ("0", "1"):
        raise EcasweepError(f"{ENV}: expected 1 (read a cell another study finished, the default) or 0 (train "
                            f"every cell), got {raw!r}")
    return raw == "1"


@dataclass(frozen=True)
class Source:
    """A finished trial of another study whose results a cell can take."""

    study: str
    number: int
    attrs: dict[str, Any]
    value: float

    @property
    def label(self) -> str:
        return f"{self.study}#{self.number}"


class Finished:
    """The trials other studies of a storage finished, by configuration identity."""

    def __init__(self, by_identity: dict[str, Source]) -> None:
        self.by_identity = by_identity

    @classmethod
    def of(cls, study: optuna.Study) -> "Finished":
        storage = study._storage
        found: dict[str, Source] = {}
        for other in storage.get_all_studies():
            if other.study_name == study.study_name:
                continue
            for t in storage.get_all_trials(other._study_id, deepcopy=False, states=(TrialState.COMPLETE,)):
                identity = t.user_attrs.get(IDENTITY_ATTR)
                if identity and t.value is not None and REUSED_ATTR not in t.user_attrs \
                        and DUPLICATE_OF not in t.user_attrs:
                    found.setdefault(identity, Source(other.study_name, t.number, dict(t.user_attrs), float(t.value)))
        return cls(found)

    def find(self, config) -> Source | None:
        """The finished trial with ``config``'s results, or None (also for users' modules)."""
        if is_reference(config.model.attention) or is_reference(config.model.backbone):
            return None
        return self.by_identity.get(config.identity())


def take(trial: optuna.trial.Trial, source: Source) -> None:
    """Copy ``source``'s results into ``trial`` and say where they came from (the caller tells the value)."""
    for key, value in source.attrs.items():
        if key not in _OWN:
            trial.set_user_attr(key, value)
    trial.set_user_attr(REUSED_ATTR, source.label)


def provenance(records) -> str | None:
    """One line saying which of a study's cells were read from other studies, or None.

    >>> from ecasweep.store.results import TrialRecord
    >>> r = TrialRecord(0, "COMPLETE", "resnet-8/none/seed=0", "none", "resnet-8", 0, {}, 85.0,
    ...                 {"reused_from": "table2#4"})
    >>> provenance([r])
    '1 cell read from trials other studies finished with the same model, recipe, data and seed: table2 (1)'
    """
    sources: dict[str, int] = {}
    for r in records:
        label = r.metrics.get(REUSED_ATTR) if r.complete else None
        if label:
            study = label.rpartition("#")[0]
            sources[study] = sources.get(study, 0) + 1
    if not sources:
        return None
    n = sum(sources.values())
    return (f"{n} cell{'s' if n != 1 else ''} read from trials other studies finished with the same model, recipe, "
            f"data and seed: " + ", ".join(f"{study} ({k})" for study, k in sorted(sources.items())))
