"""Audio that libsndfile cannot read (the AAC in an .m4a, AMR, WebM, WMA: what phones and browsers record), decoded by
the ffmpeg program where it is installed. Every entry point that reads audio (data scan, the waveform cache, predict,
listen, serve) falls back on it, so they accept the same files.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess

import numpy as np
import soundfile as sf

from .sources import OTHER_AUDIO_EXTS

# A system binary rather than a wheel: PyAV and friends bundle their own ffmpeg,
# tens of MB for what an installed one does.
FFMPEG = "ffmpeg"
FFMPEG_TIMEOUT_S = 120.0


def libsndfile_reason(e: Exception) -> str:
    """libsndfile's own words for why it refused a file (its exceptions carry them in several ways)."""
    return (getattr(e, "error_string", None) or str(e)).strip().rstrip(".")


def ffmpeg_installed() -> bool:
    return shutil.which(FFMPEG) is not None


class FfmpegError(Exception):
    """ffmpeg is not installed, or could not decode the input (its own message)."""


def ffmpeg_decode(source: str | os.PathLike | bytes, max_seconds: float | None = None) -> tuple[np.ndarray, int]:
    """A file path or an upload's bytes decoded by ffmpeg: ((frames, channels) float32, sample rate), at most
    max_seconds from the start. Its output is a float WAV on a pipe that soundfile reads back."""
    exe = shutil.which(FFMPEG)
    if exe is None:
        raise FfmpegError("ffmpeg is not installed")
    data = source if isinstance(source, bytes) else None
    # "file:" so that a name is never taken for one of ffmpeg's protocols (concat:, http:, ...)
    name = "pipe:0" if data is not None else "file:" + os.fsdecode(os.path.abspath(source))
    cmd = [exe, "-nostdin", "-v", "error", "-i", name]
    if max_seconds is not None:
        cmd += ["-t", f"{max_seconds:g}"]
    cmd += ["-map", "0:a:0", "-f", "wav", "-c:a", "pcm_f32le", "pipe:1"]
    try:  # run() waits for it, and a killed parent closes its pipes: ffmpeg cannot outlive us
        done = subprocess.run(cmd, input=data, capture_output=True, timeout=FFMPEG_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired:
        raise FfmpegError(f"ffmpeg took over {FFMPEG_TIMEOUT_S:g} s") from None
    said = done.stderr.decode("utf-8", "replace").strip().splitlines()
    if done.returncode != 0 or not done.stdout:
        last = said[-1] if said else f"exit status {done.returncode}"
        raise FfmpegError(f"ffmpeg: {last.removeprefix(name + ': ')}")  # the caller names the file
    try:
        x, sr = sf.read(io.BytesIO(done.stdout), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, ValueError) as e:
        raise FfmpegError(f"ffmpeg gave no readable audio ({e})") from None
    return x, sr


def unreadable_detail(path: str | os.PathLike, error: FfmpegError) -> str:
    """What to add to soundfile's reason when ffmpeg failed too: ffmpeg's own message, or, where it is not installed
    and the name says a format it would read, that installing it would."""
    if ffmpeg_installed():
        return f"; {error}"
    suffix = os.path.splitext(os.fsdecode(path))[1].lower()
    return f"; install ffmpeg to read {suffix} files" if suffix in OTHER_AUDIO_EXTS else ""
