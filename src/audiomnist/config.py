"""Frozen-dataclass configs <-> JSON and <-> command-line flags, so every run folder can rebuild its exact setup.

Each config field is declared once, with `option(default, help)`: the dataclass, its JSON form and its argparse flag
(`--epochs`, `--audio.sample-rate`, ...) all come from that one declaration.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import typing
from typing import Any, TypeVar

from .errors import ConfigError
from .paths import atomic_write_text

T = TypeVar("T")


def option(
    default: Any = dataclasses.MISSING,
    help: str = "",
    *,
    factory: Any = dataclasses.MISSING,
    choices: tuple | None = None,
    aliases: tuple[str, ...] = (),
    flag: str | None = None,
    metavar: str | None = None,
) -> Any:
    """A dataclass field that also describes its command-line flag: help text, choices, extra flag names."""
    meta = {"help": help, "choices": choices, "aliases": aliases, "flag": flag, "metavar": metavar}
    return dataclasses.field(default=default, default_factory=factory, metadata=meta)


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
    """Build dataclass `cls` from a dict, recursing into nested dataclasses; unknown keys are a ConfigError."""
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(data) - names
    if unknown:
        raise ConfigError(f"{cls.__name__}: unknown config keys {sorted(unknown)}")
    kwargs = {}
    for name, value in data.items():
        hint = hints.get(name)
        if dataclasses.is_dataclass(hint) and isinstance(value, dict):
            value = from_dict(hint, value)
        elif typing.get_origin(hint) is tuple and isinstance(value, list):
            value = tuple(value)
        kwargs[name] = value
    try:
        return cls(**kwargs)
    except TypeError as e:
        raise ConfigError(f"{cls.__name__}: {e}") from None


def merged(base: dict, over: dict, replace: tuple[str, ...] = ()) -> dict:
    """`over` applied onto `base`, recursing into nested sections, so a partial config changes only what it names;
    the keys in `replace` are taken whole (a dict of model arguments belongs to one model)."""
    out = dict(base)
    for k, v in over.items():
        nested = isinstance(v, dict) and isinstance(out.get(k), dict) and k not in replace
        out[k] = merged(out[k], v, replace) if nested else v
    return out


def save_json(obj: Any, path: str | os.PathLike) -> None:
    atomic_write_text(path, json.dumps(to_dict(obj), indent=2, sort_keys=False) + "\n")


def load_json(path: str | os.PathLike) -> Any:
    """Read a JSON file; a missing or malformed one is a ConfigError naming it."""
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError) as e:
        raise ConfigError(f"{path}: cannot read it as JSON ({e})") from None


# ---- command-line flags derived from the fields -------------------------------------------------------------------


def _optional_float(text: str) -> float | None:
    return None if text.lower() == "none" else float(text)


def _key_value(text: str) -> tuple[str, Any]:
    key, _, value = text.partition("=")
    try:
        return key, json.loads(value) if value else True
    except ValueError:
        return key, value  # a bare word: a string argument


def _flag_kwargs(hint: Any, value: Any, meta: dict) -> dict:
    """argparse keyword arguments for one field, from its type and metadata."""
    kw: dict[str, Any] = {"default": argparse.SUPPRESS}
    if meta.get("choices"):
        kw["choices"] = meta["choices"]
    if meta.get("metavar"):
        kw["metavar"] = meta["metavar"]
    elif not meta.get("choices") and hint is not bool:
        kw["metavar"] = meta["name"].upper()
    args = typing.get_args(hint)
    if hint is bool:
        kw["action"] = argparse.BooleanOptionalAction
    elif typing.get_origin(hint) is dict or hint is dict:
        kw.update(action="append", type=_key_value, metavar=meta.get("metavar") or "KEY=JSON")
    elif typing.get_origin(hint) is tuple and args and args[-1] is Ellipsis:
        kw.update(action="append", type=args[0])
    elif typing.get_origin(hint) is tuple:
        kw.update(nargs=len(args), type=args[0])
    elif type(None) in args:
        kw["type"] = _optional_float
    elif hint in (int, float, str):
        kw["type"] = hint
    return kw


def add_arguments(
    parser: argparse.ArgumentParser, defaults: Any, exclude: tuple[str, ...] = (), prefix: str = "", group: Any = None
) -> None:
    """One flag per field of the dataclass instance `defaults` (its values are the defaults shown in --help).

    Top-level fields become `--name-with-dashes`; a nested config section becomes an argument group whose fields are
    `--section.name` (plus any aliases the field declares). Flags default to "not given", so only what the user
    typed overrides the lower layers (see overrides_from_args).
    """
    hints = typing.get_type_hints(type(defaults))
    group = group or parser.add_argument_group(f"{type(defaults).__name__} settings")
    for f in dataclasses.fields(defaults):
        if f.name in exclude:
            continue
        value, hint, meta = getattr(defaults, f.name), hints[f.name], {**f.metadata, "name": f.name}
        if dataclasses.is_dataclass(hint):
            sub = parser.add_argument_group(f"{f.name} ({meta.get('help') or hint.__name__})")
            add_arguments(parser, value, (), f"{prefix}{f.name}.", sub)
            continue
        flags = [meta.get("flag") or "--" + prefix + f.name.replace("_", "-"), *meta.get("aliases", ())]
        shown = "none" if value in ((), {}, "") else value
        help_ = f"{meta.get('help', '')} (default: {shown})".strip()
        group.add_argument(*flags, dest=prefix + f.name, help=help_, **_flag_kwargs(hint, value, meta))


def overrides_from_args(args: argparse.Namespace, cls: type, prefix: str = "") -> dict:
    """The flags the user gave for dataclass `cls`, as a nested dict of field values (what add_arguments made)."""
    out: dict[str, Any] = {}
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        hint = hints[f.name]
        if dataclasses.is_dataclass(hint):
            sub = overrides_from_args(args, hint, f"{prefix}{f.name}.")
            if sub:
                out[f.name] = sub
        elif hasattr(args, prefix + f.name):
            value = getattr(args, prefix + f.name)
            out[f.name] = dict(value) if typing.get_origin(hint) is dict or hint is dict else value
    return out
