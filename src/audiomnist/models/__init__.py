"""Model registry: networks register under a name; `create(name, num_classes, **kwargs)` builds one.

Each model class declares `input_kind` ("logmel": (B, 1, n_mels, frames); "waveform": (B, 1, samples); "embedding":
(B, vectors, 96) from the speech_embedding encoder) and `recommended`, overrides of TrainConfig fields ("audio",
"features", ...) it was designed for.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import TypeVar

from torch import nn

from ..errors import AudiomnistError

M = TypeVar("M", bound=type[nn.Module])

_REGISTRY: dict[str, type[nn.Module]] = {}


def register(name: str) -> Callable[[M], M]:
    def deco(cls: M) -> M:
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} is registered twice")
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return deco


def available() -> list[str]:
    return sorted(_REGISTRY)


def get(name: str) -> type[nn.Module]:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise AudiomnistError(f"unknown model {name!r}: choose one of {', '.join(available())}") from None


def create(name: str, num_classes: int, **kwargs) -> nn.Module:
    cls = get(name)
    try:
        return cls(num_classes=num_classes, **kwargs)
    except TypeError as e:
        raise AudiomnistError(f"model {name!r}: bad arguments {kwargs}: {e}") from None


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def _cmd_models(args) -> int:
    for name in available():
        cls = get(name)
        net = cls(num_classes=10)
        doc = ((cls.__doc__ or "").strip().splitlines() or [""])[0]
        print(f"{name:10s} {cls.input_kind:9s} {count_parameters(net):>9,d} params  {doc}")
    return 0


def add_cli(p: argparse.ArgumentParser) -> None:
    p.description = "Registered networks (10 classes)."
    p.set_defaults(func=_cmd_models)


from . import audionet, bcresnet, ctc_tcn, emb_ctc, emb_head, res2d, seed_cnn, tcresnet  # noqa: E402,F401  (registers the models)
