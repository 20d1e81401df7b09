"""Frozen-dataclass configs <-> JSON, so every run folder can rebuild its exact setup."""

from __future__ import annotations

import dataclasses
import json
import os
import typing
from typing import Any, TypeVar

from .errors import AudiomnistError
from .paths import atomic_write_text

T = TypeVar("T")


def to_dict(cfg: Any) -> Any:
    if dataclasses.is_dataclass(cfg):
        return {f.name: to_dict(getattr(cfg, f.name)) for f in dataclasses.fields(cfg)}
    if isinstance(cfg, (list, tuple)):
        return [to_dict(v) for v in cfg]
    if isinstance(cfg, dict):
        return {k: to_dict(v) for k, v in cfg.items()}
    if isinstance(cfg, os.PathLike):
        return os.fspath(cfg)
    return cfg


def from_dict(cls: type[T], data: dict) -> T:
    """Build dataclass `cls` from a dict, recursing into nested dataclasses; unknown keys are an error."""
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(data) - names
    if unknown:
        raise ValueError(f"{cls.__name__}: unknown config keys {sorted(unknown)}")
    kwargs = {}
    for name, value in data.items():
        hint = hints.get(name)
        if dataclasses.is_dataclass(hint) and isinstance(value, dict):
            value = from_dict(hint, value)
        elif typing.get_origin(hint) is tuple and isinstance(value, list):
            value = tuple(value)
        kwargs[name] = value
    return cls(**kwargs)


def save_json(obj: Any, path: str | os.PathLike) -> None:
    atomic_write_text(path, json.dumps(to_dict(obj), indent=2, sort_keys=False) + "\n")


def load_json(path: str | os.PathLike) -> Any:
    """Read a JSON file; a missing or malformed one is an AudiomnistError naming it."""
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError) as e:
        raise AudiomnistError(f"{path}: cannot read it as JSON ({e})") from None
