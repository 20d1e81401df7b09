"""Leave-one-FSDD-speaker-out accuracy of a head over frozen speech_embedding vectors (10 digits).

    python experiments/embedding/loso.py EMB/fsdd.npz [--synth EMB/nowarp.npz ...] [--real-weight 16] [--epochs 10]
    python experiments/embedding/loso.py EMB/fsdd.npz --synth EMB/nowarp.npz --zero-real   # no real voice in training

Synthetic voices (if any) are in every fold's training set and never tested. --zero-real trains one head on the
synthetic voices alone and tests it on every FSDD clip.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from heads import load, probabilities, train


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("fsdd", help="extract.py's file for FSDD")
    p.add_argument("--synth", nargs="*", default=[], help="extract.py's files of synthetic voices")
    p.add_argument("--real-weight", type=float, default=4, help="sampling weight of a real clip against a synthetic")
    p.add_argument("--epochs", type=int, default=30, help="passes over the training clips' count of draws")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--test", help="extract.py's file of the same FSDD clips prepared otherwise, to test on")
    p.add_argument(
        "--also", nargs="*", default=[], help="more files of the same FSDD clips prepared otherwise, to train on"
    )
    p.add_argument("--zero-real", action="store_true", help="train on --synth only, test on all of FSDD")
    args = p.parse_args()
    torch.set_num_threads(1)
    fsdd, synth = load(args.fsdd), [load(s) for s in args.synth]
    tested = load(args.test) if args.test else fsdd
    also = [load(a) for a in args.also]
    folds = [None] if args.zero_real else sorted(set(fsdd["spk"]))
    accuracy = {}
    for held in folds:
        test = np.ones(len(fsdd["y"]), bool) if held is None else fsdd["spk"] == held
        parts = [] if args.zero_real else [(f["emb"][~test], f["y"][~test], args.real_weight) for f in [fsdd, *also]]
        parts += [(s["emb"], s["y"], 1.0) for s in synth]
        net = train(parts, 10, args.epochs, args.seed)
        name = held or "all FSDD"
        accuracy[name] = float(np.mean(probabilities(net, tested["emb"][test]).argmax(1) == fsdd["y"][test]))
        print(f"{name} {accuracy[name]:.3f}", flush=True)
    values = list(accuracy.values())
    print(f"mean {np.mean(values):.3f} +- {np.std(values):.3f}  worst {min(values):.3f}  ({vars(args)})")


if __name__ == "__main__":
    main()
