"""Process-group helpers for torchrun: one process per device, rank 0 the only one that writes or prints.

torchrun gives every worker RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT. Without them (a plain
`audiomnist train`) nothing is initialised and every helper acts for a world of one process.
"""

from __future__ import annotations

import contextlib
import datetime
import os
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import numpy as np
import torch
import torch.distributed as dist

from .errors import AudiomnistError

# Long enough for the other ranks to wait while rank 0 builds the waveform cache.
TIMEOUT = datetime.timedelta(minutes=60)
T = TypeVar("T")
ENV = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


def launched() -> bool:
    """True in a worker that torchrun started as part of a world of more than one process."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def active() -> bool:
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    return dist.get_rank() if active() else 0


def world_size() -> int:
    return dist.get_world_size() if active() else 1


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0")) if active() else 0


def is_main() -> bool:
    """The one process that logs, prints and writes the run folder."""
    return rank() == 0


def is_local_main() -> bool:
    """The first process on this machine: the one that builds its waveform cache where none is shared (in_turns)."""
    return local_rank() == 0


def local_device(device: torch.device) -> torch.device:
    """Under torchrun a CUDA device becomes cuda:LOCAL_RANK (choose GPUs with CUDA_VISIBLE_DEVICES)."""
    if device.type == "cuda" and launched():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return device


def init(device: torch.device) -> torch.device:
    """Join torchrun's process group (nccl on CUDA, gloo on CPU) and return this process's device; no-op outside
    torchrun."""
    if not launched():
        return device
    missing = [k for k in ENV if k not in os.environ]
    if missing:
        raise AudiomnistError(
            f"WORLD_SIZE is {os.environ['WORLD_SIZE']} but {', '.join(missing)} not set: launch with torchrun"
        )
    if device.type not in ("cuda", "cpu"):
        raise AudiomnistError(f"distributed training runs on CUDA (nccl) or CPU (gloo), not on {device.type}")
    device = local_device(device)
    if device.type == "cuda":
        if device.index >= torch.cuda.device_count():
            raise AudiomnistError(
                f"LOCAL_RANK {device.index} but only {torch.cuda.device_count()} CUDA devices are visible"
            )
        torch.cuda.set_device(device)
    if not active():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo", init_method="env://", timeout=TIMEOUT)
    return device


def cleanup() -> None:
    if active():
        dist.destroy_process_group()


@contextlib.contextmanager
def process_group(device: torch.device) -> Iterator[torch.device]:
    """init() on entry, cleanup() on exit, also after an error. A clean exit first waits for every rank: a rank
    that tears gloo down while a peer is still in its last collective can abort that peer."""
    try:
        yield init(device)
        barrier()
    finally:
        cleanup()


def barrier() -> None:
    if active():
        if dist.get_backend() == "nccl":
            dist.barrier(device_ids=[torch.cuda.current_device()])
        else:
            dist.barrier()


def in_turns(fn: Callable[[], T]) -> T:
    """fn() on rank 0, then on the first process of every other machine, then on the rest, a barrier after each turn.

    Rank 0 alone builds what lands on a filesystem all machines share (the waveform cache, the catalog), the first
    process of another machine builds what is local to it, and every other process only opens finished files.
    """
    turn = 0 if is_main() else 1 if is_local_main() else 2
    result: Any = None
    for t in range(3):
        if t == turn:
            result = fn()
        barrier()
    return result


@contextlib.contextmanager
def quiet_unless_main() -> Iterator[None]:
    """Silence stdout on every rank but 0, so a run prints each line once; errors (stderr) still show."""
    if is_main():
        yield
        return
    with open(os.devnull, "w") as null, contextlib.redirect_stdout(null):
        yield


def all_reduce_sum(values: Any, device: torch.device | str = "cpu") -> np.ndarray:
    """Element-wise sum over all ranks of counts, loss sums or a confusion matrix; unchanged in one process."""
    arr = np.asarray(values)
    if world_size() == 1:
        return arr
    t = torch.as_tensor(arr, dtype=torch.float64 if arr.dtype.kind == "f" else torch.int64, device=device)
    dist.all_reduce(t)
    return t.cpu().numpy()


def broadcast_object(obj: Any, src: int = 0) -> Any:
    """Rank `src`'s value of a picklable object (CPU tensors only), on every rank."""
    if world_size() == 1:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def all_same(obj: Any) -> bool:
    """Whether every rank holds an equal value; every rank gets the same answer, so all can stop together."""
    if world_size() == 1:
        return True
    values: list[Any] = [None] * world_size()
    dist.all_gather_object(values, obj)
    return all(v == values[0] for v in values)


def gather_rows(local: np.ndarray, n: int) -> np.ndarray:
    """Put back together, on every rank, the n rows that each rank computed for its rows[rank::world]."""
    world = world_size()
    if world == 1:
        return local
    parts: list[Any] = [None] * world
    dist.all_gather_object(parts, np.asarray(local))
    full = next(p for p in parts if len(p))
    out = np.empty((n, *full.shape[1:]), dtype=full.dtype)
    for r, part in enumerate(parts):
        if len(part):
            out[r::world] = part
    return out


def broadcast_buffers(module: torch.nn.Module, src: int = 0) -> None:
    """Give every rank rank `src`'s buffers (BatchNorm running statistics), so all evaluate the model rank 0 saves."""
    if world_size() > 1:
        for b in module.buffers():
            dist.broadcast(b, src)


def epoch_seed(seed: int, epoch: int) -> int:
    """One seed per (run seed, epoch), so a resumed or sharded run replays the draws it would have made."""
    return seed * 100_003 + epoch


def shard_rows(
    rows: np.ndarray, rank: int, world: int, seed: int = 0, epoch: int = 0, generator: torch.Generator | None = None
) -> np.ndarray:
    """This rank's rows for one epoch, as torch's DistributedSampler(shuffle=True, drop_last=False) picks them.

    Every rank draws the same permutation (from `generator`, else seeded by epoch_seed(seed, epoch)), pads it by
    wrapping around to a multiple of `world` so all ranks take the same number of steps, and takes every
    world-th row from `rank`. Consecutive blocks of B/world rows of each shard together form the block of
    B rows that one process would take, so a global batch is the same for any world size.
    """
    if not 0 <= rank < world:
        raise ValueError(f"rank {rank} is outside a world of {world}")
    rows = np.asarray(rows)
    if generator is None:
        generator = torch.Generator().manual_seed(epoch_seed(seed, epoch))
    order = rows[torch.randperm(len(rows), generator=generator).numpy()]
    if world == 1:
        return order
    padded = np.resize(order, -(-len(order) // world) * world)
    return padded[rank::world]
