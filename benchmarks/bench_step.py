"""Where one training step's time goes, per stage and per model, in the training loop's own order.

    python benchmarks/bench_step.py [--models seed-cnn bcresnet res2d] [--steps 60] [--threads 2] [--clock wall|cpu]
                                    [--profile NAME]

The default recipe (8 kHz, 40 mels, batch 64, default augmentation and SpecAugment, AdamW) on the 30,000-file corpus
(/tmp/audiomnist-corpus, or --data; the cache is built when missing). The models take turns step by step, so they
share the machine's load; each stage is timed (--clock) and the median over --steps steps printed:
cache batch, waveform augmentation, log-mel, SpecAugment, forward (with the loss), backward, optimizer. Models
are given as NAME or NAME:key=json,key=json (model arguments). --profile NAME adds torch.profiler's top operators
of that model's steps (forward and backward), by their own CPU time. --clock cpu times with the process's CPU
time instead of the wall clock: on a machine shared with other work, with --threads 1, it leaves out the time the
process waited for a core, so the numbers hold still; with more threads it also counts their spinning.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from audiomnist import dataset, models, runconfig, train  # noqa: E402
from audiomnist.augment import augment_waveforms, time_shifts  # noqa: E402
from audiomnist.features import build_frontend, spec_augment  # noqa: E402

from bench_cache import corpus  # noqa: E402

CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}
STAGES = ("batch", "augment", "logmel", "specaug", "forward", "backward", "optimizer")


def parse_model(spec: str) -> tuple[str, dict]:
    name, _, rest = spec.partition(":")
    kwargs = {}
    for item in filter(None, rest.split(",")):
        key, _, value = item.partition("=")
        kwargs[key] = json.loads(value)
    return name, kwargs


class Runner:
    """One model with its own optimizer; step() runs one training step and returns each stage's seconds."""

    def __init__(self, spec: str, cfg: runconfig.TrainConfig, data: dataset.Data, clock=time.perf_counter):
        self.clock = clock
        name, kwargs = parse_model(spec)
        self.spec, self.cfg, self.data = spec, dataclasses.replace(cfg, model=name, model_args=kwargs), data
        torch.manual_seed(0)
        self.model = runconfig.build_model(self.cfg, len(data.classes)).train()
        self.params = models.count_parameters(self.model)
        self.frontend = build_frontend(cfg.features, cfg.audio.sample_rate)
        self.opt = train.make_optimizer(self.cfg, list(self.model.parameters()), torch.device("cpu"))
        self.gen = torch.Generator().manual_seed(0)
        self.rows = np.random.default_rng(0).permutation(data.usable)
        self.b = 0

    def step(self) -> dict[str, float]:
        cfg, sr, gen = self.cfg, self.cfg.audio.sample_rate, self.gen
        bs = cfg.batch_size
        rows = self.rows[(self.b * bs) % (len(self.rows) - bs) :][:bs]
        self.b += 1
        t = [self.clock()]
        shift = time_shifts(len(rows), cfg.augment, sr, gen, gen.device)  # as fit: the shift rides on placement
        wave = self.data.cache.batch(rows, train=True, generator=gen, shift=shift)
        t.append(self.clock())
        wave = augment_waveforms(wave, dataclasses.replace(cfg.augment, shift_ms=0.0), sr, gen)
        t.append(self.clock())
        x = self.frontend(wave)
        t.append(self.clock())
        x = spec_augment(x, cfg.specaug, gen)
        t.append(self.clock())
        y = torch.from_numpy(self.data.labels[rows])
        loss = F.cross_entropy(self.model(x), y, label_smoothing=cfg.label_smoothing)
        t.append(self.clock())
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        t.append(self.clock())
        self.opt.step()
        loss.item()
        t.append(self.clock())
        return {s: b - a for s, a, b in zip(STAGES, t, t[1:])}


def profile_ops(runner: Runner, steps: int) -> None:
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        for _ in range(steps):
            runner.step()
    print(f"\ntorch.profiler, {runner.spec}, {steps} steps, top operators by self CPU time:")
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=20, max_name_column_width=45))
    # Which convolutions: the input shapes tell depthwise (weight (C, 1, k, k)) from dense and pointwise ones.
    convs = [
        e
        for e in prof.key_averages(group_by_input_shape=True)
        if e.key in ("aten::convolution_backward", "aten::mkldnn_convolution")
    ]
    convs.sort(key=lambda e: -e.self_cpu_time_total)
    print(f"convolutions by input shapes (input, weight, ...), ms per call, top 16 of {len(convs)}:")
    for e in convs[:16]:
        shapes = ", ".join(str(tuple(s)) for s in e.input_shapes[:3])
        print(f"  {e.key:28s} {e.count:5d} calls  {e.self_cpu_time_total / e.count / 1e3:7.2f} ms  {shapes}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", help="AudioMNIST-layout folder (default: /tmp/audiomnist-corpus)")
    ap.add_argument("--models", nargs="+", default=["seed-cnn", "bcresnet", "tcresnet"])
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--clock", choices=sorted(CLOCKS), default="wall", help="wall clock or process CPU time")
    ap.add_argument("--profile", help="also run torch.profiler over this model spec's steps")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    cfg = dataclasses.replace(runconfig.TrainConfig(), batch_size=args.batch_size, data=(str(corpus(args.data)),))
    data = dataset.load_data(cfg, progress=False)
    train.retain_freed_memory()
    runners = [Runner(spec, cfg, data, CLOCKS[args.clock]) for spec in args.models]
    times: dict[str, list[dict]] = {r.spec: [] for r in runners}
    for i in range(args.warmup + args.steps):
        for r in runners:
            stage = r.step()
            if i >= args.warmup:
                times[r.spec].append(stage)
    print(
        f"batch {args.batch_size}, {torch.get_num_threads()} threads, {args.clock} clock, "
        f"medians of {args.steps} steps (ms); models in turn, step by step"
    )
    print("| model | params | " + " | ".join(STAGES) + " | data path | network | step | step / first model's |")
    print("|---" * (len(STAGES) + 7) + "|")
    first = None
    for r in runners:
        med = {s: 1e3 * float(np.median([t[s] for t in times[r.spec]])) for s in STAGES}
        step = 1e3 * float(np.median([sum(t.values()) for t in times[r.spec]]))
        first = first or step
        data_ms = sum(med[s] for s in STAGES[:4])
        net_ms = sum(med[s] for s in STAGES[4:])
        print(
            f"| {r.spec} | {r.params:,} | "
            + " | ".join(f"{med[s]:.2f}" for s in STAGES)
            + f" | {data_ms:.2f} | {net_ms:.2f} | {step:.2f} | {step / first:.2f} |"
        )
    if args.profile:
        profile_ops(next(r for r in runners if r.spec == args.profile), min(args.steps, 30))


if __name__ == "__main__":
    main()
