"""Clips into the model's window, batched in torch: random placement and time shifts for training, centred for
evaluation (audio.fit_windows is the numpy equivalent of the evaluation placement, for torch-free inference)."""

from __future__ import annotations

import os

import torch

from .audio import AudioConfig, load_audio, prepare


def _noise_floor(clips: torch.Tensor, lengths: torch.Tensor, frame: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per clip, min and max of its quietest whole `frame` (lowest peak-to-peak), i.e. its own silence.

    A clip shorter than one frame uses all of its samples; an empty one gets (0, 0).
    """
    B, L = clips.shape
    nf = max(1, -(-L // frame))
    x = clips if L == nf * frame else torch.nn.functional.pad(clips, (0, nf * frame - L))
    x = x.view(B, nf, frame)
    lo, hi = torch.aminmax(x, dim=2)
    k = torch.arange(1, nf + 1, device=clips.device).view(1, nf)
    span = (hi - lo).masked_fill_(k * frame > lengths.view(B, 1), float("inf"))
    q = span.argmin(dim=1, keepdim=True)
    lo, hi = lo.gather(1, q).squeeze(1), hi.gather(1, q).squeeze(1)
    first = x[:, 0, :]
    head = torch.arange(frame, device=clips.device).view(1, frame) < lengths.view(B, 1)
    short = lengths < frame
    lo = torch.where(short, first.masked_fill(~head, float("inf")).amin(dim=1), lo)
    hi = torch.where(short, first.masked_fill(~head, float("-inf")).amax(dim=1), hi)
    empty = lengths <= 0
    return lo.masked_fill(empty, 0.0), hi.masked_fill(empty, 0.0)


def fit_batch(
    clips: torch.Tensor,
    lengths: torch.Tensor,
    cfg: AudioConfig,
    train: bool,
    generator: torch.Generator | None = None,
    shift: torch.Tensor | None = None,
) -> torch.Tensor:
    """Place left-aligned float clips (B, L) of `lengths` in a (B, num_samples) window.

    Offsets are random in training and centred in evaluation; a clip longer than the window is
    cropped the same way. `shift` (B,) samples, if given, moves each clip further (a time-shift augmentation,
    cropped at the window's edges, done here in the same copy and with the pad's own fill). Padding is zeros,
    or for pad_mode "noise" uniform noise between the min and max of the clip's quietest 10 ms: its own
    background, so the pad looks like its silence and never leaves the clip's amplitude range. Samples past a
    clip's length are never used.
    In evaluation without a generator the noise is one fixed seeded pattern shared by every row, so a
    clip's features never depend on the call or on the other clips in the batch.
    """
    B, L = clips.shape
    n = cfg.num_samples
    dev = clips.device
    gdev = generator.device if generator is not None else dev
    lengths = lengths.to(device=dev, dtype=torch.long).clamp(0, L)
    slack = n - lengths
    if train:
        u = torch.rand(B, generator=generator, device=gdev).to(dev)
        lo, hi = slack.clamp(max=0), slack.clamp(min=0)
        offset = lo + (u * (hi - lo + 1)).long().clamp(max=hi - lo)
    else:
        offset = torch.div(slack, 2, rounding_mode="floor")
    if shift is not None:
        offset = offset + shift.to(device=dev, dtype=torch.long)
    if cfg.pad_mode == "noise":
        lo, hi = _noise_floor(clips, lengths, max(1, cfg.sample_rate // 100))
        if train or generator is not None:
            out = torch.rand(B, n, generator=generator, device=gdev, dtype=clips.dtype).to(dev)
        else:
            fixed = torch.Generator().manual_seed(0)
            out = torch.rand(1, n, generator=fixed, dtype=clips.dtype).to(dev).expand(B, n).clone()
        out.mul_((hi - lo).view(B, 1)).add_(lo.view(B, 1))
    else:
        out = clips.new_zeros(B, n)
    start = offset.clamp(0, n)
    return copy_spans(out, clips, start, start - offset, (offset + lengths).clamp(max=n) - start)


def copy_spans(
    out: torch.Tensor, src: torch.Tensor, out_start: torch.Tensor, src_start: torch.Tensor, length: torch.Tensor
) -> torch.Tensor:
    """out[i, out_start[i]:][:length[i]] = src[i, src_start[i]:][:length[i]] for each row (none where length <= 0).

    One slice copy per row, cheaper than gathering every sample through an index tensor; on the CPU as numpy
    slices, which cost less per row than torch slice assignment.
    """
    spans = zip(out_start.tolist(), src_start.tolist(), length.tolist())
    if out.device.type == "cpu" and src.device.type == "cpu" and out.dtype == src.dtype:
        o, x = out.numpy(), src.detach().numpy()
    else:
        o, x = out, src
    for i, (a, b, m) in enumerate(spans):
        if m > 0:
            o[i, a : a + m] = x[i, b : b + m]
    return out


def load_clip(
    path: str | os.PathLike, cfg: AudioConfig, train: bool = False, generator: torch.Generator | None = None
) -> torch.Tensor:
    """One file as the model sees it: (num_samples,) float32, decoded, energy-cropped and fitted (centred)."""
    x, n = prepare(load_audio(path, cfg.sample_rate, cfg.max_seconds, cfg.resample_quality), cfg)
    return fit_batch(torch.from_numpy(x.copy())[None], torch.tensor([n]), cfg, train, generator)[0]
