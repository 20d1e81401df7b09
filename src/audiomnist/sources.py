"""Dataset layouts (AudioMNIST, FSDD, any folder tree): labels from paths, speaker metadata from meta files."""

from __future__ import annotations

import errno
import json
import math
import os
import re
import stat
import warnings
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

LAYOUTS = ("audiomnist", "fsdd", "folder")
AUDIO_EXTS = frozenset({".wav", ".flac", ".ogg"})
# Audio that libsndfile may not take: still tried (a WAV named .mp3 is read), and named when it cannot be read.
OTHER_AUDIO_EXTS = frozenset({".mp3", ".m4a", ".aac", ".wma", ".opus", ".aif", ".aiff", ".au", ".webm", ".amr", ".caf"})
IGNORED_DIRS = frozenset({"__MACOSX"})
NOT_AUDIO = "not audio by name"
UNKNOWN = "unknown"
DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
AUDIOMNIST_META = "audioMNIST_meta.txt"
FSDD_META = "speakers.json"
MIN_AGE, MAX_AGE = 3, 110

_AUDIOMNIST_RE = re.compile(r"^(\d)_(\d{1,3})_(\d+)$")
_FSDD_RE = re.compile(r"^(\d)_([^_]+)_(\d+)$")
_DIGIT_PREFIX_RE = re.compile(r"^(\d)(?:[_\- ](.*))?$")
# A digit word labels a file only as the whole name or followed by a take number ('seven', 'seven_3', 'Seven-take2'):
# any other word after it ('one_sample', 'six_ch') makes it an ordinary name, not a label.
_WORD_NAME_RE = re.compile(r"^(" + "|".join(DIGIT_WORDS) + r")(?:[_\- ]?((?:take|rep|r)?[_\- ]?\d+))?$", re.IGNORECASE)
_REP_RE = re.compile(r"^(?:take|rep|r)?[_\- ]?(\d+)$", re.IGNORECASE)

# Spelling variants seen in the real AudioMNIST meta file, after lowercasing.
_ROOM_FIXES = {"vr-romm": "vr-room", "vr room": "vr-room", "vrroom": "vr-room", "vr_room": "vr-room"}
_ACCENT_FIXES = {"brasilian": "brazilian"}


@dataclass(frozen=True)
class Label:
    """What a file name says: the spoken digit, who spoke it, and which take (-1 unknown)."""

    digit: int
    speaker: str
    repetition: int = -1


@dataclass(frozen=True)
class SpeakerMeta:
    gender: str = UNKNOWN
    age: float = math.nan
    accent: str = UNKNOWN
    room: str = UNKNOWN
    native_speaker: str = UNKNOWN


@dataclass(frozen=True)
class Metadata:
    """Per-speaker metadata of one dataset; `notes` lists values that were dropped or fixed, for the scan report."""

    speakers: dict[str, SpeakerMeta] = field(default_factory=dict)
    path: Path | None = None
    notes: tuple[str, ...] = ()

    def get(self, speaker: str) -> SpeakerMeta:
        return self.speakers.get(speaker, SpeakerMeta())


def is_audio(name: str) -> bool:
    return PurePosixPath(name).suffix.lower() in AUDIO_EXTS


def audio_file_rule(relpath: str) -> str | None:
    """The one rule by which every entry point (data scan, train, analyze, predict) takes files found in a folder.

    None: read it as audio; its content decides (a WAV named .mp3 is used). NOT_AUDIO: not audio by its name (.txt,
    .json, hidden files, __MACOSX): ignored, and counted. Anything else: why the file is refused, to list with it.
    """
    parts = PurePosixPath(relpath).parts
    if not parts or any(p.startswith(".") or p in IGNORED_DIRS for p in parts):
        return NOT_AUDIO
    if PurePosixPath(parts[-1]).suffix.lower() not in AUDIO_EXTS | OTHER_AUDIO_EXTS:
        return NOT_AUDIO
    try:
        relpath.encode("utf-8")
    except UnicodeEncodeError:  # catalogs, reports and run folders are UTF-8 text: such a name cannot be recorded
        return "file name is not valid UTF-8; rename the file"
    return None


def path_problem(path: str | os.PathLike) -> str | None:
    """Why `path` cannot be read, in the operating system's own terms (None when it can be opened).

    A symlink loop or a denied permission must not be reported as 'not found' or libsndfile's 'System error'.
    """
    try:
        st = os.stat(path)
    except OSError as e:
        if e.errno == errno.ELOOP:
            return "symlink loop (too many levels of symbolic links)"
        if e.errno == errno.ENOENT:
            return "broken symlink (its target does not exist)" if os.path.islink(path) else "no such file or folder"
        if e.errno in (errno.EACCES, errno.EPERM):
            return "permission denied"
        return (e.strerror or str(e)).lower()
    if stat.S_ISDIR(st.st_mode):
        return None if os.access(path, os.R_OK | os.X_OK) else "permission denied (folder)"
    if not stat.S_ISREG(st.st_mode):
        return "not a regular file"
    try:
        os.close(os.open(path, os.O_RDONLY))
    except OSError as e:
        return "permission denied" if e.errno in (errno.EACCES, errno.EPERM) else (e.strerror or str(e)).lower()
    return None


# libsndfile's header log ("data : 16000 (should be 7978)"): the audio chunk promises more bytes than the file has.
_CHUNK_SIZE_RE = re.compile(r"^\s*(data|SSND)\s*:\s*(\d+)\s*\(should be (\d+)\)", re.MULTILINE)


def truncation(header_log: str) -> str | None:
    """'truncated: ...' when a WAV/AIFF header (soundfile's extra_info) promises more audio than the file holds."""
    m = _CHUNK_SIZE_RE.search(header_log or "")
    if not m or int(m.group(3)) >= int(m.group(2)):
        return None
    promised, present = int(m.group(2)), int(m.group(3))
    return (
        f"truncated: the header promises {promised} bytes of audio, the file holds {present} "
        f"({100 * present / promised:.0f} %); the rest is missing"
    )


def digit_from_word(text: str) -> int | None:
    """'7', 'seven', 'Seven' -> 7; anything else -> None."""
    text = text.strip().lower()
    if len(text) == 1 and text.isdigit():
        return int(text)
    return DIGIT_WORDS.index(text) if text in DIGIT_WORDS else None


def _repetition(rest: str | None) -> int:
    m = _REP_RE.match(rest or "")
    return int(m.group(1)) if m else -1


def _label_from_name(stem: str) -> tuple[int, int] | None:
    """(digit, repetition) from '7_anything', 'seven', 'zero_3', 'Seven-take2'; not from 'one_sample' or 'six_ch'."""
    m = _DIGIT_PREFIX_RE.match(stem) or _WORD_NAME_RE.match(stem)
    if not m:
        return None
    return digit_from_word(m.group(1)), _repetition(m.group(2))


def parse_label(relpath: str | PurePosixPath, layout: str) -> Label | None:
    """Label of one file from its path relative to the dataset root ('/'-separated); None when unlabelled."""
    rel = PurePosixPath(relpath)
    stem = rel.stem
    if layout == "audiomnist":
        m = _AUDIOMNIST_RE.match(stem)
        return Label(int(m.group(1)), f"{int(m.group(2)):02d}", int(m.group(3))) if m else None
    if layout == "fsdd":
        m = _FSDD_RE.match(stem)
        return Label(int(m.group(1)), m.group(2), int(m.group(3))) if m else None
    if layout != "folder":
        raise ValueError(f"unknown layout {layout!r}; expected one of {LAYOUTS}")
    folders = rel.parts[:-1]
    found = _label_from_name(stem)
    if found is None:
        folder_digits = [digit_from_word(f) for f in folders]
        digit = next((d for d in reversed(folder_digits) if d is not None), None)
        if digit is None:
            return None
        found = (digit, -1)
    speaker = next((f for f in reversed(folders) if digit_from_word(f) is None), UNKNOWN)
    return Label(found[0], speaker, found[1])


def detect_layout_from_names(relpaths: list[str]) -> str:
    """Pick the layout most audio files agree with (at least 90% of a sample of up to 500 names).

    AudioMNIST names sit in a folder named after their speaker ('01/7_01_3.wav'); FSDD names are
    '{digit}_{speaker}_{index}' anywhere; everything else is a generic folder tree.
    """
    sample = [PurePosixPath(p) for p in sorted(p for p in relpaths if is_audio(p))[:500]]
    if not sample:
        return "folder"

    def audiomnist(p: PurePosixPath) -> bool:
        m = _AUDIOMNIST_RE.match(p.stem)
        return bool(m) and len(p.parts) >= 2 and p.parts[-2].isdigit() and int(p.parts[-2]) == int(m.group(2))

    need = 0.9 * len(sample)
    if sum(map(audiomnist, sample)) >= need:
        return "audiomnist"
    if sum(bool(_FSDD_RE.match(p.stem)) for p in sample) >= need:
        return "fsdd"
    return "folder"


def detect_layout(root: str | Path, limit: int = 500) -> str:
    """Layout of the dataset under `root`, judged from the first `limit` audio files in sorted walk order."""
    names: list[str] = []
    for folder, dirs, files in os.walk(root, followlinks=False):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        rel = Path(folder).relative_to(root)
        names += [(rel / f).as_posix() for f in sorted(files) if is_audio(f) and not f.startswith(".")]
        if len(names) >= limit:
            break
    return detect_layout_from_names(names)


def find_meta_file(root: str | Path, name: str) -> Path | None:
    """`name` at the dataset root, in root/data, or in the root's parent (repositories keep meta beside data/)."""
    root = Path(root)
    for folder in (root, root / "data", root.parent):
        if (folder / name).is_file():
            return folder / name
    return None


def normalise_text(value: object) -> str:
    if value is None:
        return UNKNOWN
    text = " ".join(str(value).split()).strip().lower()
    return text or UNKNOWN


def normalise_room(value: object) -> str:
    """'Kino' -> 'kino'; 'VR-Room', 'vr-room', 'vr-romm' -> 'vr-room'."""
    room = normalise_text(value)
    return _ROOM_FIXES.get(room, room)


def normalise_accent(value: object) -> str:
    """'German' -> 'german'; 'Egyptian_American?' -> 'egyptian/american'; 'Brasilian' -> 'brazilian'."""
    accent = normalise_text(value).replace("_", "/").rstrip("?").strip()
    accent = re.sub(r"\s*/\s*", "/", accent) or UNKNOWN
    return _ACCENT_FIXES.get(accent, accent)


def normalise_gender(value: object) -> str:
    gender = normalise_text(value)
    return {"m": "male", "f": "female", "man": "male", "woman": "female"}.get(gender, gender)


def normalise_yes_no(value: object) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    text = normalise_text(value)
    return {"y": "yes", "true": "yes", "n": "no", "false": "no"}.get(text, text)


def parse_age(value: object) -> float:
    """Age in years, NaN when missing, not a number, or outside [3, 110] (the real file has '1234')."""
    try:
        age = float(str(value).strip())
    except (TypeError, ValueError):
        return math.nan
    return age if MIN_AGE <= age <= MAX_AGE else math.nan


def parse_audiomnist_meta(data: dict) -> tuple[dict[str, SpeakerMeta], list[str]]:
    """AudioMNIST meta JSON (speaker id -> fields) -> normalised SpeakerMeta per zero-padded id, plus notes."""
    speakers, notes = {}, []
    for key, fields in data.items():
        if not isinstance(fields, dict):
            notes.append(f"speaker {key!r}: entry is not an object, ignored")
            continue
        speaker = f"{int(key):02d}" if str(key).strip().isdigit() else str(key).strip()
        age = parse_age(fields.get("age"))
        if math.isnan(age) and fields.get("age") not in (None, ""):
            notes.append(f"speaker {speaker}: invalid age {fields.get('age')!r} -> unknown")
        speakers[speaker] = SpeakerMeta(
            gender=normalise_gender(fields.get("gender")),
            age=age,
            accent=normalise_accent(fields.get("accent")),
            room=normalise_room(fields.get("recordingroom", fields.get("room"))),
            native_speaker=normalise_yes_no(fields.get("native speaker", fields.get("native_speaker"))),
        )
    return speakers, notes


def parse_fsdd_speakers(data: dict) -> dict[str, SpeakerMeta]:
    """FSDD speakers.json (name -> gender, accent, language) -> SpeakerMeta per name."""
    return {
        str(name): SpeakerMeta(gender=normalise_gender(f.get("gender")), accent=normalise_accent(f.get("accent")))
        for name, f in data.items()
        if isinstance(f, dict)
    }


def _read_json(path: Path) -> dict | None:
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        warnings.warn(f"{path}: cannot read metadata ({e}); continuing without speaker metadata", stacklevel=3)
        return None
    if not isinstance(data, dict):
        warnings.warn(f"{path}: metadata is not a JSON object; continuing without speaker metadata", stacklevel=3)
        return None
    return data


def load_metadata(root: str | Path, layout: str) -> Metadata:
    """Speaker metadata for a dataset root; empty (all unknown) when there is no meta file or it is broken."""
    if layout == "audiomnist":
        path = find_meta_file(root, AUDIOMNIST_META)
        data = _read_json(path) if path else None
        if data is not None:
            speakers, notes = parse_audiomnist_meta(data)
            return Metadata(speakers, path, tuple(notes))
    elif layout == "fsdd":
        path = find_meta_file(root, FSDD_META)
        data = _read_json(path) if path else None
        if data is not None:
            return Metadata(parse_fsdd_speakers(data), path)
    return Metadata()
