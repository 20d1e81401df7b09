"""The `audiomnist` command. Each subcommand lives in its stage module and is imported only when used."""

from __future__ import annotations

import argparse
import importlib
import signal
import sys
import threading

from . import __version__
from .errors import AudiomnistError

# name -> (module that defines add_cli(subparsers), one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "data": ("audiomnist.catalog", "scan, download and describe datasets"),
    "demo": ("audiomnist.demo", "the main job: train the default model, evaluate it on unseen speakers"),
    "train": ("audiomnist.train", "train a classifier and evaluate it on unseen speakers"),
    "cv": ("audiomnist.cv", "speaker-grouped k-fold or leave-one-speaker-out cross-validation"),
    "evaluate": ("audiomnist.evaluate", "metrics, confusion matrix and mistakes of a trained run"),
    "analyze": ("audiomnist.analyze", "dataset report: counts, formats, lengths, speakers, examples, quality flags"),
    "predict": ("audiomnist.infer", "classify audio files with a trained or the shipped model"),
    "export": ("audiomnist.export", "export a trained network to ONNX"),
    "listen": ("audiomnist.listen", "live digits from the microphone (or a recording through the same path)"),
    "serve": ("audiomnist.serve", "web page and REST API for predictions"),
    "models": ("audiomnist.models", "list the registered networks"),
}


class Terminated(KeyboardInterrupt):
    """SIGTERM as an exception, so `kill PID` (or a job scheduler) cleans up temp files and workers as Ctrl-C does."""


def _raise_terminated(signum, frame) -> None:
    raise Terminated()


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = argparse.ArgumentParser(prog="audiomnist", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"audiomnist {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    chosen = next((a for a in argv if not a.startswith("-")), None)
    for name, (module, help_) in COMMANDS.items():
        if name == chosen:
            importlib.import_module(module).add_cli(sub)
        else:
            sub.add_parser(name, help=help_, add_help=False)
    args = parser.parse_args(argv)
    # Only where nobody else handles SIGTERM (an embedding program or server may have its own handler).
    own_sigterm = threading.current_thread() is threading.main_thread() \
        and signal.getsignal(signal.SIGTERM) == signal.SIG_DFL
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
