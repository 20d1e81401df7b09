"""`audiomnist train` under torchrun on CPU: two gloo processes on 127.0.0.1 against one process, same global batch.

Run as a script, this file is the worker: it records the rows every training step reads, the per-step totals reduced
over the ranks and every file it writes under the watched folders, then runs `audiomnist ARGS`.
The model is a tiny log-mel net registered here, without BatchNorm (whose per-rank batch statistics would make the
runs differ) or dropout, on clips longer than the 250 ms window (nothing randomly placed), with augmentation off: one
process and two then compute the same global batches and must reach the same losses up to float rounding.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from audiomnist import distributed, models

from conftest import free_port, write_tone_set

pytestmark = pytest.mark.skipif(
    not (torch.distributed.is_available() and torch.distributed.is_gloo_available()), reason="torch built without gloo"
)
SR = 8000
BATCH = 16
EPOCHS = 2
MODEL = "tiny-test"
ARGS = [
    "--model",
    MODEL,
    "--duration-ms",
    "250",
    "--val-frac",
    "0.17",
    "--test-frac",
    "0.17",
    "--batch-size",
    str(BATCH),
    "--epochs",
    str(EPOCHS),
    "--device",
    "cpu",
    "--no-progress",
]
WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT
# Per-clip standardisation, not the default per-band: steady tones that fill the window have no spectral shape left
# once each band's own mean is removed, and this test needs a task the tiny net visibly learns in a few steps.
NO_AUGMENT = {
    "augment": {"shift_ms": 0, "gain_db": 0, "noise_prob": 0},
    "specaug": {"freq_masks": 0, "time_masks": 0},
    "features": {"normalize": "utterance"},
}


class TinyNet(nn.Module):
    """(B, 1, n_mels, frames) -> 3x3 convolution, ReLU, mean over time -> linear; no BatchNorm, no dropout."""

    input_kind = "logmel"
    recommended: dict = {}

    def __init__(self, num_classes: int = 10, n_mels: int = 40, channels: int = 8):
        super().__init__()
        self.conv = nn.Conv2d(1, channels, 3, padding=1)
        self.head = nn.Linear(channels * n_mels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(self.conv(x)).mean(dim=3).flatten(1))


def record_and_run(log_path: Path, argv: list[str], watch: list[str] | None = None) -> int:
    """`audiomnist argv`, logging training rows, reduced totals and (in a worker) files written under `watch`."""
    from audiomnist import cli
    from audiomnist.cache import WaveformCache

    log: dict = {"batches": [], "totals": [], "writes": []}
    recording = [True]

    def audit(event: str, args: tuple) -> None:
        if not recording[0]:
            return
        if event == "open":
            path, mode, flags = args
            writes = any(c in (mode or "") for c in "wax+") or bool((flags or 0) & WRITE_FLAGS)
        elif event in ("os.mkdir", "os.remove"):
            path, writes = args[0], True
        elif event == "os.rename":
            path, writes = args[1], True
        else:
            return
        if writes and isinstance(path, (str, bytes, os.PathLike)):
            path = os.path.abspath(os.fsdecode(path))
            if path.startswith(tuple(watch)):
                log["writes"].append(path)

    real_batch, real_sum = WaveformCache.batch, distributed.all_reduce_sum

    def batch(self, indices, train, *args, **kwargs):
        if train:
            log["batches"].append(np.asarray(indices).tolist())
        return real_batch(self, indices, train, *args, **kwargs)

    def all_reduce_sum(values, device="cpu"):
        out = real_sum(values, device)
        log["totals"].append(np.asarray(out).tolist())
        return out

    WaveformCache.batch, distributed.all_reduce_sum = batch, all_reduce_sum
    if watch:
        sys.addaudithook(audit)  # for good: only in a worker process
    try:
        return cli.main(argv)
    finally:
        recording[0] = False
        WaveformCache.batch, distributed.all_reduce_sum = real_batch, real_sum
        log_path.write_text(json.dumps(log))


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> list[Path]:
    """Two AudioMNIST-layout folders with the same speaker names 01-03 (10 digits x 2 repetitions each)."""
    roots = []
    for k, name in enumerate(("a", "b")):
        root = tmp_path_factory.mktemp("data") / name
        roots.append(write_tone_set(root, speakers=3, reps=2, speaker_offset=3 * k, lead_s=(0.0, 0.0)))
    return roots


def launch(out: Path, argv: list[str], nproc: int = 2) -> tuple[subprocess.CompletedProcess, list[dict]]:
    """Run this file as the worker under torchrun with `nproc` gloo processes; return the per-rank logs."""
    out.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if k not in distributed.ENV}
    env.update(AUDIOMNIST_HOME=str(out / "home"), OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        str(nproc),
        "--master_addr",
        "127.0.0.1",
        "--master_port",
        str(free_port()),
        __file__,
        str(out),
        *argv,
    ]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc, [json.loads((out / f"rank{r}.json").read_text()) for r in range(nproc)]


def train_args(folders: list[Path], runs: Path) -> list[str]:
    config = runs.parent / "no-augment.json"
    config.write_text(json.dumps(NO_AUGMENT))
    data = [arg for folder in folders for arg in ("--data", str(folder))]
    return ["train", *data, "--runs", str(runs), "--config", str(config), *ARGS]


def only_run(runs: Path) -> Path:
    (run_dir,) = [p for p in runs.iterdir() if p.is_dir()]
    return run_dir


@pytest.fixture(scope="module")
def single(folders, tmp_path_factory):
    """The reference: one process (this one), same arguments."""
    out = tmp_path_factory.mktemp("single")
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(models._REGISTRY, MODEL, TinyNet)
        mp.setenv("AUDIOMNIST_HOME", str(out / "home"))
        assert record_and_run(out / "rank0.json", train_args(folders, out / "runs")) == 0
    return out, json.loads((out / "rank0.json").read_text())


@pytest.fixture(scope="module")
def ddp(folders, tmp_path_factory):
    out = tmp_path_factory.mktemp("ddp")
    proc, logs = launch(out, train_args(folders, out / "runs"))
    return out, proc, logs


def step_losses(log: dict) -> np.ndarray:
    """The mean loss of each step's global batch, from the totals summed over the ranks."""
    return np.array([loss_sum / n for loss_sum, _, n in log["totals"]])


def metrics(out: Path) -> dict:
    return json.loads((only_run(out / "runs") / "metrics.json").read_text())


def test_shards_are_equal_and_cover_every_row():
    from audiomnist.distributed import shard_rows

    rows = np.arange(100, 111)
    one = shard_rows(rows, 0, 1, seed=3, epoch=2)
    shards = [shard_rows(rows, r, 4, seed=3, epoch=2) for r in range(4)]
    assert sorted(one) == list(rows) and {len(s) for s in shards} == {3}
    assert set(np.concatenate(shards)) == set(rows), "11 rows over 4 ranks: one row is repeated to even them out"
    assert [s[0] for s in shards] == list(one[:4]), "block k of every shard together is block k of one process"
    with pytest.raises(ValueError):
        shard_rows(rows, 4, 4)


def test_two_folders_keep_their_speakers_apart(single):
    split = metrics(single[0])["split"]
    speakers = split["train_speakers"] + split["val_speakers"] + split["test_speakers"]
    assert len(speakers) == len(set(speakers)) == 6
    assert {s.split("/")[0] for s in speakers} == {"a", "b"}
    assert split["train_clips"] % BATCH == 0, "the checks below assume every training row is used each epoch"


def test_ranks_take_disjoint_halves_of_each_global_batch(single, ddp):
    (_, one), (out, _, (r0, r1)) = single, ddp
    train_clips = metrics(out)["split"]["train_clips"]
    steps = EPOCHS * train_clips // BATCH
    assert len(one["batches"]) == len(r0["batches"]) == len(r1["batches"]) == steps
    for whole, a, b in zip(one["batches"], r0["batches"], r1["batches"]):
        assert len(a) == len(b) == BATCH // 2 and not set(a) & set(b)
        assert a == whole[0::2] and b == whole[1::2], "rank r takes every world-th row of the shared permutation"
    per_epoch = steps // EPOCHS
    for e in range(EPOCHS):
        rows = [i for r in (r0, r1) for batch in r["batches"][e * per_epoch : (e + 1) * per_epoch] for i in batch]
        assert len(rows) == len(set(rows)) == train_clips, "an epoch covers every training row exactly once"


def test_loss_matches_one_process_with_the_same_global_batch(single, ddp):
    (one_out, one), (out, _, (r0, r1)) = single, ddp
    assert r0["totals"] == r1["totals"], "every rank sees the reduced totals"
    one_loss, ddp_loss = step_losses(one), step_losses(r0)
    assert [t[2] for t in r0["totals"]] == [BATCH] * len(one_loss)
    assert ddp_loss[-1] < ddp_loss[0] - 0.2, "it learns"
    np.testing.assert_allclose(ddp_loss, one_loss, rtol=1e-5)
    a, b = metrics(one_out), metrics(out)
    for ea, eb in zip(a["history"], b["history"], strict=True):
        assert eb["train_loss"] == pytest.approx(ea["train_loss"], rel=1e-5)
        assert eb["val_loss"] == pytest.approx(ea["val_loss"], rel=1e-5)
    assert b["test"]["clips"] == a["test"]["clips"] > 0
    assert b["test"]["accuracy"] == pytest.approx(a["test"]["accuracy"], abs=1e-6)


def test_only_rank_zero_writes_and_prints(ddp):
    out, proc, (r0, r1) = ddp
    assert r1["writes"] == []
    run_dir = only_run(out / "runs")
    written = {Path(p).resolve() for p in r0["writes"]}
    assert run_dir.resolve() / "last.pt" in written and any(p.is_relative_to(out.resolve() / "home") for p in written)
    for name in ("config.json", "metrics.json", "best.pt", "last.pt", "curves.png", "report/metrics.json"):
        assert (run_dir / name).is_file(), name
    assert proc.stdout.count("run folder:") == 1 and proc.stdout.count(f"epoch {EPOCHS}/{EPOCHS}") == 1


def test_resume_under_torchrun(folders, single, tmp_path, monkeypatch):
    """A one-process run killed after epoch 1, resumed by two processes, ends where the uninterrupted run did."""
    import audiomnist.train as train_mod
    from audiomnist import cli

    out = tmp_path / "resume"
    monkeypatch.setitem(models._REGISTRY, MODEL, TinyNet)
    monkeypatch.setenv("AUDIOMNIST_HOME", str(out / "home"))
    real_save = train_mod.save_checkpoint

    def save_then_die(state, path):
        real_save(state, path)
        if Path(path).name == "last.pt":
            raise KeyboardInterrupt

    monkeypatch.setattr(train_mod, "save_checkpoint", save_then_die)
    out.mkdir()
    assert cli.main(train_args(folders, out / "runs")) == 130
    monkeypatch.undo()
    run_dir = only_run(out / "runs")
    _, (r0, r1) = launch(out, ["train", "--resume", str(run_dir), "--no-progress"])
    assert r1["writes"] == [] and str(run_dir / "last.pt") in r0["writes"]
    np.testing.assert_allclose(step_losses(r0), step_losses(single[1])[len(r0["totals"]) :], rtol=1e-5)
    assert len(r0["totals"]) == len(single[1]["totals"]) // EPOCHS
    a, b = metrics(single[0]), json.loads((run_dir / "metrics.json").read_text())
    assert len(b["history"]) == EPOCHS
    for ea, eb in zip(a["history"], b["history"]):
        assert eb["train_loss"] == pytest.approx(ea["train_loss"], rel=1e-5)
        assert eb["val_acc"] == pytest.approx(ea["val_acc"], abs=1e-6)
    assert b["test"]["accuracy"] == pytest.approx(a["test"]["accuracy"], abs=1e-6)


if __name__ == "__main__":
    models.register(MODEL)(TinyNet)
    out_dir = Path(sys.argv[1])
    rank = os.environ.get("RANK", "0")
    sys.exit(record_and_run(out_dir / f"rank{rank}.json", sys.argv[2:], watch=[str(out_dir.resolve())]))
