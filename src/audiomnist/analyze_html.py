"""The self-contained report.html of `audiomnist analyze`: summary.json's numbers as tables, the PNG figures
embedded as data URIs so the page opens offline, and the flagged files listed by check."""

from __future__ import annotations

import base64
import datetime as dt
import html
from pathlib import Path

from .analyze_figures import CHANNELS
from .analyze_quality import FLAGS

MAX_LISTED = 200  # files listed per flag in the HTML; flags.csv has them all
META_FIELDS = ("gender", "age", "accent", "room", "native_speaker")

CSS = """
:root { --fg:#1f2328; --muted:#656d76; --line:#d8dee4; --bg:#f6f8fa; --accent:#3b6ea8; --ok:#1a7f37; --bad:#c0392b; }
* { box-sizing: border-box; }
body { margin:0; font:15px/1.5 -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
       color:var(--fg); background:var(--bg); }
main { max-width:1180px; margin:0 auto; padding:24px 28px 60px; }
header h1 { margin:0 0 4px; font-size:26px; }
header p { margin:0; color:var(--muted); }
section { background:#fff; border:1px solid var(--line); border-radius:10px; padding:18px 22px; margin:22px 0; }
h2 { margin:0 0 12px; font-size:19px; border-bottom:1px solid var(--line); padding-bottom:6px; }
h3 { font-size:15px; margin:16px 0 6px; }
table { border-collapse:collapse; font-size:14px; margin:6px 0 10px; }
th, td { text-align:left; padding:5px 12px 5px 0; border-bottom:1px solid var(--line); vertical-align:top; }
th { color:var(--muted); font-weight:600; white-space:nowrap; }
td.num, th.num { text-align:right; font-variant-numeric:tabular-nums; padding-left:12px; }
table.summary th { width:200px; }
.badge { display:inline-block; padding:1px 9px; border-radius:10px; font-size:12.5px; font-weight:600; color:#fff; }
.ok { background:var(--ok); } .bad { background:var(--bad); } .zero { color:var(--muted); }
figure { margin:10px 0 18px; }
figure img { max-width:100%; height:auto; border:1px solid var(--line); border-radius:6px; background:#fff; }
.grid { display:grid; grid-template-columns:repeat(auto-fit, minmax(440px, 1fr)); gap:14px; }
details { margin:6px 0; } summary { cursor:pointer; font-weight:600; }
code { font:12.5px ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; background:var(--bg); padding:1px 4px;
       border-radius:4px; }
.note { color:var(--muted); font-size:13px; }
"""


def _esc(x: object) -> str:
    return html.escape(str(x))


def _img(path: Path, alt: str) -> str:
    data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    return f'<figure><img src="data:image/png;base64,{data}" alt="{_esc(alt)}"></figure>'


def _table(header: list[str], rows: list[list[object]], numeric: set[int] = frozenset()) -> str:
    def cell(tag: str, i: int, v: object) -> str:
        return f"<{tag}{' class=num' if i in numeric else ''}>{v}</{tag}>"

    head = "".join(cell("th", i, _esc(h)) for i, h in enumerate(header))
    body = "".join("<tr>" + "".join(cell("td", i, v) for i, v in enumerate(r)) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _badge(ok: bool, yes: str, no: str) -> str:
    return f'<span class="badge {"ok" if ok else "bad"}">{_esc(yes if ok else no)}</span>'


def _counts(d: dict, unit: str = "") -> str:
    return ", ".join(f"{_esc(k)}{unit}: {v:,}" for k, v in d.items())


def _hours(h: float) -> str:
    return f"{h:,.2f} h" if h >= 1 else f"{h * 60:.1f} min"


def _ratio(bal: dict) -> str:
    return f"{bal['ratio']:.2f}" if bal["ratio"] is not None else "∞"


def _section(title: str, *body: str) -> str:
    return f"<section><h2>{_esc(title)}</h2>" + "".join(body) + "</section>"


def _note(text: str) -> str:
    return f'<p class="note">{text}</p>'


def _overview(s: dict) -> str:
    b, L, c, q, sp = s["balance"], s["lengths"], s["census"], s["quality"], s["speaker_metadata"]
    d, spk = b["digits"], b["speakers"]
    flagged = {k: v for k, v in q["counts"].items() if v}
    unreadable = q["counts"]["unreadable"]
    rows = [
        ["Dataset", f"<code>{_esc(s['root'])}</code> ({_esc(s['layout'])} layout)"],
        ["Clips", f"{s['files']:,} ({s['decoded']:,} decoded)"
                  + (f"; {unreadable:,} unreadable" if unreadable else "")],
        ["Speakers", f"{s['speakers']:,}"],
        ["Digits", f"{s['digits']} ({d['min']:,}–{d['max']:,} clips each)"],
        ["Balance (digits)", _badge(d["balanced"], "balanced", "not balanced") + f" max/min {_ratio(d)}"
         + ("" if d["balanced"] else f"; fewest: {_esc(', '.join(d['smallest']))} ({d['min']:,} clips); "
                                     f"most: {_esc(', '.join(d['largest']))} ({d['max']:,} clips)")],
        ["Balance (speakers)", _badge(spk["balanced"], "balanced", "not balanced") + f" max/min {_ratio(spk)}"
         + (f"; {b['missing_digit_speaker_pairs']:,} digit/speaker pairs without clips"
            if b["missing_digit_speaker_pairs"] else "")],
        ["Sample rates", _counts(c["sample_rates"], " Hz")],
        ["Channels", _counts({CHANNELS.get(k, f"{k} channels"): v for k, v in c["channels"].items()})],
        ["Sample formats", _counts(c["subtypes"])],
        ["Clip length", f"{L['min']:.2f}–{L['max']:.2f} s, mean {L['mean']:.2f} s, total {_hours(L['total_hours'])}"],
        [f"Longer than {L['window_ms']} ms", f"{L['longer_than_window']:,} ({L['longer_than_window_share']:.1%})"],
        ["Speaker metadata", _esc(", ".join(k.replace("_", " ") for k in META_FIELDS if sp.get(k)) or "none")],
        ["Quality flags", _badge(not flagged, "none", f"{sum(flagged.values()):,} flags")
         + " " + ", ".join(f"{_esc(k.replace('_', ' '))}: {v:,}" for k, v in flagged.items())],
    ]  # fmt: skip
    body = "".join(f"<tr><th>{_esc(k)}</th><td>{v}</td></tr>" for k, v in rows)
    return _section("Summary", f'<table class="summary"><tbody>{body}</tbody></table>')


def _counts_section(s: dict, fig: dict[str, Path]) -> str:
    return _section(
        "Counts",
        _note(f"Balanced: the largest count is at most {1 + s['balance']['tolerance']:g}× the smallest."),
        _img(fig["digits"], "clips per digit"),
        _img(fig["speakers"], "clips per speaker"),
        _img(fig["heatmap"], "clips per digit and speaker"),
    )


def _formats_section(s: dict, fig: dict[str, Path]) -> str:
    formats = [[_esc(k), f"{v:,}"] for k, v in s["census"]["formats"].items()]
    return _section("Audio formats", _img(fig["census"], "sample rates, channels and sample formats"),
                    _table(["container", "files"], formats, numeric={1}))  # fmt: skip


def _lengths_section(s: dict, fig: dict[str, Path]) -> str:
    L = s["lengths"]
    rows = [[_esc(d), f"{r['count']:,}", f"{r['min']:.2f}", f"{r['mean']:.2f}", f"{r['median']:.2f}", f"{r['max']:.2f}",
             f"{r['longer_than_window']:.1%}"] for d, r in L["per_digit"].items()]  # fmt: skip
    header = ["digit", "clips", "min (s)", "mean (s)", "median (s)", "max (s)", f"> {L['window_ms']} ms"]
    return _section(
        "Clip lengths",
        '<div class="grid">' + _img(fig["length_hist"], "clip length histogram")
        + _img(fig["length_digit"], "clip length per digit") + "</div>",
        _table(header, rows, numeric=set(range(1, 7))),
    )  # fmt: skip


def _speakers_section(s: dict, fig: dict[str, Path]) -> str:
    sp = s["speaker_metadata"]
    shown = [k for k in META_FIELDS if f"meta_{k}" in fig]
    if not shown:
        return _section("Speakers", _note("No speaker metadata (gender, age, accent, room) found for this dataset."))
    body = ['<div class="grid">' + "".join(_img(fig[f"meta_{k}"], k.replace("_", " ")) for k in shown) + "</div>"]
    absent = [k.replace("_", " ") for k in META_FIELDS if not sp.get(k)]
    if absent:
        body.append(_note(f"Not in this dataset's metadata: {_esc(', '.join(absent))}."))
    if a := sp.get("age"):
        known = (
            f"Ages {a['min']:g}–{a['max']:g} (mean {a['mean']:g}) of {a['known']} speakers" if a["known"] else "No age"
        )
        bad = ", ".join(f"speaker {k}: {v}" for k, v in a["impossible_values"].items())
        bad = f", of which {a['impossible']} impossible in the metadata file ({_esc(bad)})" if bad else ""
        body.append(_note(f"{known}; {a['unknown']} unknown{bad}."))
    return _section("Speakers", *body)


def _examples_section(s: dict, fig: dict[str, Path]) -> str:
    if "examples" not in fig:
        return ""
    return _section(
        "Examples: what the model sees",
        _note("Built with the training code (placement.load_clip, features.build_frontend, features.spec_augment) "
              "and the default training configuration; waveform augmentation is not shown."),
        _img(fig["examples"], "one example per digit"),
    )  # fmt: skip


def _quality_section(s: dict, fig: dict[str, Path]) -> str:
    q, thr, audio = s["quality"], s["quality"]["thresholds"], s["analysis_audio"]
    body = [_note(
        f"Clipping: at least {thr['clip_share']:.1%} of samples at or above {thr['clip_level']:g} of full scale. "
        f"Near-silent: RMS (DC removed) below {thr['silent_dbfs']:g} dBFS. DC offset: mean sample beyond "
        f"±{thr['dc_offset']:g}. Silence: {thr['frame_ms']} ms frames more than {-thr['silence_db']:g} dB below the "
        f"clip's loudest frame, flagged when longer than {thr['silence_ms']} ms. Duplicates: identical decoded "
        f"samples. Measured on each clip as decoded to {audio['sample_rate']:,} Hz mono, at most "
        f"{audio['duration_ms']:,} ms "
        "(the loudest stretch of a longer clip)."
    )]  # fmt: skip
    if "quality" in fig:
        body.append(_img(fig["quality"], "quality statistics"))
    counts = [[_esc(FLAGS[k]), f'<span class="{"" if v else "zero"}">{v:,}</span>'] for k, v in q["counts"].items()]
    body.append(_table(["check", "files"], counts, numeric={1}))
    for key, files in q["files"].items():
        if not files:
            continue
        rows = [[f"<code>{_esc(f['relpath'])}</code>", _esc(f["detail"])] for f in files[:MAX_LISTED]]
        more = _note(f"… and {len(files) - MAX_LISTED:,} more in flags.csv") if len(files) > MAX_LISTED else ""
        opened = " open" if len(files) <= 20 else ""
        body.append(f"<details{opened}><summary>{_esc(FLAGS[key])}: {len(files):,}</summary>"
                    + _table(["file", "detail"], rows) + more + "</details>")  # fmt: skip
    return _section("Data quality", *body)


def _about_section(s: dict) -> str:
    audio = s["analysis_audio"]
    body = [_note(
        f"Audio was read through an analysis waveform cache ({audio['sample_rate']:,} Hz, {audio['duration_ms']:,} ms, "
        f"{_esc(audio['cache_dtype'])}) at <code>{_esc(s['analysis_cache'])}</code>, separate from the training cache. "
        "Beside this page: summary.json (every number), per_file.csv (statistics of every clip), flags.csv (every "
        "flagged file) and the PNG figures."
    )]  # fmt: skip
    if s["notes"]:
        body.append("<h3>Catalog notes</h3><ul>" + "".join(f"<li>{_esc(n)}</li>" for n in s["notes"]) + "</ul>")
    return _section("About this report", *body)


def render(summary: dict, figures: dict[str, Path]) -> str:
    """report.html from summary.json's dict and the saved figures (embedded, so the page works offline)."""
    name = _esc(Path(summary["root"]).name)
    when = dt.datetime.now().strftime("%Y-%m-%d %H:%M")
    return "\n".join([
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1"><link rel="icon" href="data:,">',
        f"<title>Dataset report: {name}</title><style>{CSS}</style></head><body><main>",
        f"<header><h1>Dataset report: {name}</h1>"
        f"<p>{_esc(summary['root'])} · generated {when} by audiomnist analyze</p></header>",
        _overview(summary),
        _counts_section(summary, figures),
        _formats_section(summary, figures),
        _lengths_section(summary, figures),
        _speakers_section(summary, figures),
        _examples_section(summary, figures),
        _quality_section(summary, figures),
        _about_section(summary),
        "</main></body></html>",
    ])  # fmt: skip
