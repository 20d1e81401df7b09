"""Cross-validate several recipes at once: every (recipe, fold) pair is its own `audiomnist cv --only K` process,
--jobs of them at a time on one machine, so a GPU (or a many-core CPU) stays busy with small models.

    python tools/sweep.py experiments/fsdd-loso/*.json --data PATH [--folds loso] [--jobs N] [--device cuda]

A recipe is a JSON file of TrainConfig fields, as `audiomnist train --config` takes (merged over the defaults).
Each finished fold appends a line to OUT/results.jsonl at once (a sweep stopped half way keeps what it finished);
at the end it prints a markdown table, per-fold accuracy of every recipe with mean +- std over folds, and writes
OUT/sweep.json. Run folders go under OUT/<recipe>/fold-K/.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import dataclasses
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from audiomnist.config import load_json, to_dict
from audiomnist.dataset import load_data
from audiomnist.errors import AudiomnistError
from audiomnist.paths import atomic_write_text, new_run_dir
from audiomnist.runconfig import TrainConfig, config_from_file
from audiomnist.splits import speaker_folds


def run_fold(recipe: Path, fold: int, args: argparse.Namespace, out: Path) -> dict:
    """One fold of one recipe in a child process; its accuracy read back from the cv.json it writes."""
    runs = out / recipe.stem / f"fold-{fold}"
    runs.mkdir(parents=True, exist_ok=True)
    cmd = [
        sys.executable,
        "-m",
        "audiomnist.cli",
        "cv",
        "--folds",
        str(args.folds),
        "--only",
        str(fold),
        "--config",
        str(recipe),
        "--device",
        args.device,
        "--runs",
        str(runs),
        "--no-progress",
        *sum((["--data", d] for d in args.data), []),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads)}
    t0 = time.time()
    with open(runs / "log.txt", "w") as log:
        code = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, env=env).returncode
    result = {"recipe": recipe.stem, "fold": fold, "seconds": round(time.time() - t0, 1), "returncode": code}
    summaries = sorted(runs.glob("*/cv.json"))
    if code == 0 and summaries:
        fold_result = load_json(summaries[-1])["per_fold"][0]
        result.update(
            test_speakers=fold_result["test_speakers"],
            accuracy=fold_result["accuracy"],
            macro_f1=fold_result["macro_f1"],
        )
    else:
        result["error"] = f"exit status {code}, see {runs / 'log.txt'}"
    return result


def summarise(results: list[dict], recipes: list[Path], n_folds: int) -> tuple[str, dict]:
    by_recipe: dict[str, dict[int, float]] = {r.stem: {} for r in recipes}
    speakers: dict[int, str] = {}
    for r in results:
        if "accuracy" in r:
            by_recipe[r["recipe"]][r["fold"]] = r["accuracy"]
            speakers[r["fold"]] = " ".join(r["test_speakers"])
    header = [speakers.get(k, f"fold {k}") for k in range(n_folds)]
    lines = ["| recipe | " + " | ".join(header) + " | mean +- std |", "|---" * (n_folds + 2) + "|"]
    summary = {}
    for name, accs in by_recipe.items():
        cells = [f"{100 * accs[k]:.1f}" if k in accs else "-" for k in range(n_folds)]
        values = np.array(list(accs.values()))
        done = len(values) == n_folds
        mean = f"{100 * values.mean():.1f} +- {100 * values.std(ddof=1):.1f}" if len(values) > 1 else "-"
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {mean}{'' if done else f' ({len(values)} folds)'} |")
        summary[name] = {
            "per_fold": {str(k): v for k, v in sorted(accs.items())},
            "complete": done,
            "mean": float(values.mean()) if len(values) else None,
            "std": float(values.std(ddof=1)) if len(values) > 1 else None,
        }
    return "\n".join(lines), summary


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("recipes", nargs="+", type=Path, help="JSON files of TrainConfig fields")
    ap.add_argument("--data", action="append", required=True, help="dataset folder (repeatable)")
    ap.add_argument("--folds", default="loso", help="speaker folds: a number or loso (default)")
    ap.add_argument("--jobs", type=int, default=max(1, (os.cpu_count() or 2) // 2), help="folds run at once")
    ap.add_argument("--threads", type=int, default=1, help="torch threads of each fold's process (default 1)")
    ap.add_argument("--device", default="auto", help="auto, cpu, cuda, ...")
    ap.add_argument("--out", type=Path, default=new_run_dir("sweep", "runs"))
    args = ap.parse_args(argv)
    for r in args.recipes:
        if not r.is_file():
            raise SystemExit(f"error: {r}: no such recipe file")
    args.out.mkdir(parents=True, exist_ok=True)

    # Scan and build each distinct waveform cache once, here, before the jobs would race to build it. The configs
    # are the ones `cv --config RECIPE --data ... --device ...` builds (data paths resolved, as its flags do).
    base = to_dict(TrainConfig(data=tuple(str(Path(d).resolve()) for d in args.data), device=args.device))
    n_folds, prepared = 0, set()
    try:
        for r in args.recipes:
            cfg = config_from_file(r, base=base)
            key = json.dumps(dataclasses.asdict(cfg.audio), sort_keys=True) + cfg.target
            if key not in prepared:
                data = load_data(cfg, progress=False)
                n_folds = len(
                    speaker_folds(data.speakers[data.usable], args.folds if args.folds == "loso" else int(args.folds))
                )
                prepared.add(key)
    except AudiomnistError as e:
        raise SystemExit(f"error: {e}") from None
    jobs = [(r, k) for r in args.recipes for k in range(n_folds)]
    print(
        f"{len(args.recipes)} recipes x {n_folds} folds = {len(jobs)} jobs, {args.jobs} at a time on {args.device} "
        f"-> {args.out}",
        flush=True,
    )

    results: list[dict] = []
    t0 = time.time()
    with cf.ThreadPoolExecutor(args.jobs) as pool, open(args.out / "results.jsonl", "a") as log:
        futures = [pool.submit(run_fold, r, k, args, args.out) for r, k in jobs]
        for f in cf.as_completed(futures):
            res = f.result()
            results.append(res)
            log.write(json.dumps(res) + "\n")
            log.flush()
            acc = f"{100 * res['accuracy']:.1f} %" if "accuracy" in res else res["error"]
            print(
                f"[{len(results)}/{len(jobs)} {time.time() - t0:.0f} s] {res['recipe']} fold {res['fold']}: {acc} "
                f"({res['seconds']:.0f} s)",
                flush=True,
            )
    table, summary = summarise(results, args.recipes, n_folds)
    atomic_write_text(
        args.out / "sweep.json",
        json.dumps({"folds": args.folds, "device": args.device, "recipes": summary, "results": results}, indent=2)
        + "\n",
    )
    print()
    print(table)
    return 0 if all("accuracy" in r for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
