"""The `audiomnist` command. Each subcommand's arguments live in the module that owns it (`add_cli(parser)`), and
only the chosen command's module is imported, so `audiomnist predict` never loads the training code."""

from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys
import threading

from . import __version__
from .errors import AudiomnistError

# name -> (module that defines the command, one-line help); the module's add_cli(parser) adds its arguments.
COMMANDS: dict[str, tuple[str, str]] = {
    "data": ("", "scan, download, synthesise and describe datasets"),
    "demo": ("audiomnist.demo", "the main job: train the default model, evaluate it on unseen speakers"),
    "train": ("audiomnist.train", "train a classifier and evaluate it on unseen speakers"),
    "train-strings": ("audiomnist.train_strings", "train a digit-string model (whole numbers said without pauses)"),
    "cv": ("audiomnist.cv", "speaker-grouped k-fold or leave-one-speaker-out cross-validation"),
    "evaluate": ("audiomnist.evaluate", "metrics, confusion matrix and mistakes of a trained run"),
    "analyze": ("audiomnist.analyze", "dataset report: counts, formats, lengths, speakers, examples, quality flags"),
    "predict": ("audiomnist.infer", "predict the digit spoken in audio files"),
    "export": ("audiomnist.export", "export a trained network to ONNX"),
    "listen": ("audiomnist.listen", "live digits from the microphone (or a recording through the same path)"),
    "serve": ("audiomnist.serve", "web page and REST API for predictions"),
    "models": ("audiomnist.models", "list the registered networks"),
}

# Commands that answer from a trained model and do no linear algebra in numpy: their module is imported with one
# OpenBLAS thread, so numpy's import does not start a BLAS thread per core (about 15 % of `predict`'s cold start on
# two cores, more on many). Not where the user set OPENBLAS_NUM_THREADS or numpy is already imported.
ONE_BLAS_THREAD = {"predict", "listen", "serve"}

# Missing package -> the pyproject extra that brings it (the base install runs .onnx models only).
EXTRAS = {"fastapi": "serve", "uvicorn": "serve", "starlette": "serve", "multipart": "serve", "sounddevice": "mic"}

# Commands with actions of their own: `audiomnist data scan ...`. Entries name "module:function".
GROUPS: dict[str, dict[str, tuple[str, str]]] = {
    "data": {
        "scan": ("audiomnist.catalog:add_scan_cli", "catalog a dataset folder"),
        "download": ("audiomnist.download:add_cli", "download, verify, unpack and catalog AudioMNIST or FSDD"),
        "sample": ("audiomnist.catalog:add_sample_cli", "describe the bundled sample dataset"),
        "synth": ("audiomnist.synth:add_cli", "synthesise an English spoken-digit corpus with many voices and rooms"),
    },
}


def _add_commands(sub, commands: dict[str, tuple[str, str]], argv: list[str]) -> None:
    """A parser for every command; only the one named in argv imports its module and gets its arguments."""
    words = [a for a in argv if not a.startswith("-")]
    chosen = words[0] if words else None
    for name, (target, help_) in commands.items():
        if name != chosen:
            sub.add_parser(name, help=help_, add_help=False)
            continue
        if name in GROUPS:
            p = sub.add_parser(name, help=help_, description=help_)
            inner = p.add_subparsers(dest=f"{name}_command", metavar="ACTION", required=True)
            _add_commands(inner, GROUPS[name], argv[argv.index(name) + 1 :])
            continue
        module, _, function = target.partition(":")
        try:
            mod = _import_command(module, one_blas_thread=name in ONE_BLAS_THREAD)
        except ModuleNotFoundError as e:  # a base install runs .onnx models only; other commands need an extra
            if e.name is None or e.name.split(".")[0] == "audiomnist":
                raise
            extra = EXTRAS.get(e.name.split(".")[0], "train")
            raise SystemExit(
                f"error: audiomnist {name} needs {e.name}, which is not installed: pip install 'audiomnist[{extra}]'"
            ) from None
        doc = help_ if function else mod.__doc__
        p = sub.add_parser(name, help=help_, description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
        getattr(mod, function or "add_cli")(p)


def _import_command(module: str, one_blas_thread: bool):
    """The command's module; with one_blas_thread, OPENBLAS_NUM_THREADS=1 while it loads (OpenBLAS reads it once,
    when numpy loads it) and unset again after, so nothing started later inherits it."""
    quiet = one_blas_thread and "numpy" not in sys.modules and "OPENBLAS_NUM_THREADS" not in os.environ
    if quiet:
        os.environ["OPENBLAS_NUM_THREADS"] = "1"
    try:
        return importlib.import_module(module)
    finally:
        if quiet:
            del os.environ["OPENBLAS_NUM_THREADS"]


class Terminated(KeyboardInterrupt):
    """SIGTERM as an exception, so `kill PID` (or a job scheduler) cleans up temp files and workers as Ctrl-C does."""


def _raise_terminated(signum, frame) -> None:
    raise Terminated()


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = argparse.ArgumentParser(prog="audiomnist", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"audiomnist {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    _add_commands(sub, COMMANDS, argv)
    args = parser.parse_args(argv)
    # Only where nobody else handles SIGTERM (an embedding program or server may have its own handler).
    own_sigterm = (
        threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGTERM) == signal.SIG_DFL
    )
    if own_sigterm:
        signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        return int(args.func(args) or 0)
    except AudiomnistError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except Terminated:
        print("terminated", file=sys.stderr)
        return 128 + signal.SIGTERM
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    finally:
        if own_sigterm:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)


if __name__ == "__main__":
    sys.exit(main())
