"""The study spec as study user attributes, each short enough for optuna-dashboard to show whole.

optuna-dashboard cuts a study attribute at 1,024 characters, and a whole spec is longer. So the spec
is stored section by section: ``ecasweep_spec.arms``, ``ecasweep_spec.train``, ... hold the values
of ``StudySpec.to_dict()``. A section too long for one attribute is stored as its JSON text in
pieces named by a digest of that text (``ecasweep_spec.arms.1a2b3c4d.0``, ``...1a2b3c4d.1``), and its own
attribute, written after them, says which and how many (``{"$pieces": 2, "$digest": "1a2b3c4d"}``). So a
section is replaced in one write whatever its length: a process killed while writing a section's new
pieces leaves the old section whole, and a section rewritten shorter or longer never reads stale
pieces. Studies written before hold the whole spec in the one attribute ``ecasweep_spec``, or their
pieces without a digest (``ecasweep_spec.arms.0``); ``read_spec`` reads every layout.

Example:
    >>> import optuna
    >>> study = optuna.create_study()
    >>> write_spec(study, {"name": "tiny", "arms": [{"id": "none"}] * 200})
    >>> read_spec(study.user_attrs)["arms"][199]
    {'id': 'none'}
    >>> max(attr_length(v) for v in study.user_attrs.values()) < MAX_ATTR_LENGTH
    True
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Mapping

import optuna

from .results import SPEC_ATTR

#: optuna-dashboard shows at most this many characters of an attribute
MAX_ATTR_LENGTH = 1024
PIECE = 1000
PREFIX = SPEC_ATTR + "."
PIECES = "$pieces"
DIGEST = "$digest"


def attr_length(value: Any) -> int:
    """How many characters optuna-dashboard shows for an attribute value: a string as it is,
    anything else as JSON."""
    return len(value) if isinstance(value, str) else len(json.dumps(value))


def spec_attrs(spec: Mapping[str, Any]) -> dict[str, Any]:
    """The user attributes that store ``spec`` (a ``StudySpec.to_dict()``)."""
    attrs: dict[str, Any] = {}
    for section, value in spec.items():
        if attr_length(value) < MAX_ATTR_LENGTH:
            attrs[PREFIX + section] = value
            continue
        text = json.dumps(value)
        digest = hashlib.sha256(text.encode()).hexdigest()[:8]
        for i in range(0, len(text), PIECE):
            attrs[f"{PREFIX}{section}.{digest}.{i // PIECE}"] = text[i:i + PIECE]
        attrs[PREFIX + section] = {PIECES: -(-len(text) // PIECE), DIGEST: digest}  # after its pieces: written last
    return attrs


def write_spec(study: optuna.Study, spec: Mapping[str, Any]) -> None:
    """Store ``spec`` with ``study`` (see the module docstring).

    A study written before keeps its one-attribute copy up to date too (Optuna cannot delete a
    study attribute), so that whoever reads ``ecasweep_spec`` never reads a stale spec.
    """
    for key, value in spec_attrs(spec).items():
        study.set_user_attr(key, value)
    if SPEC_ATTR in study.user_attrs:
        study.set_user_attr(SPEC_ATTR, dict(spec))


def read_spec(attrs: Mapping[str, Any]) -> dict[str, Any] | None:
    """The spec stored in a study's user attributes, in either layout; None when there is none."""
    sections = {key[len(PREFIX):]: value for key, value in attrs.items()
                if key.startswith(PREFIX) and "." not in key[len(PREFIX):]}
    if not sections:
        return attrs.get(SPEC_ATTR)
    for section, value in sections.items():
        if isinstance(value, dict) and PIECES in value and set(value) <= {PIECES, DIGEST}:
            stem = f"{PREFIX}{section}." + (f"{value[DIGEST]}." if DIGEST in value else "")
            text = "".join(attrs[f"{stem}{i}"] for i in range(int(value[PIECES])))
            sections[section] = json.loads(text)
    return sections
