"""Layers: where each value of a study came from (profile defaults, the file, its profile table, --set overrides), and how they merge."""

from __future__ import annotations

import copy
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

from ..errors import SpecError
from .schema import _LAYER_KEYS, _TABLES, _suggest


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
    except tomllib.TOMLDecodeError as e:
        if raw[:1] in ("[", "{", '"', "'"):  # meant as a list, table or quoted string: say what is wrong
            raise SpecError(f"{path}: --set {text}: invalid TOML value ({e}); e.g. "
                            f"'backbones=[\"resnet-8\", \"resnet-14\"]'") from None
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
