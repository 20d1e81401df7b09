"""tools/sweep.py: every recipe x fold as its own cv process; a table and sweep.json of what finished."""

import json

import pytest

from audiomnist.catalog import sample_root

from conftest import load_tool


def test_sweep_runs_every_recipe_and_fold(tmp_path, capsys):
    tiny = {"epochs": 1, "batch_size": 32, "model_args": {"width": 1}}
    (tmp_path / "a.json").write_text(json.dumps(tiny))
    (tmp_path / "b.json").write_text(json.dumps({**tiny, "label_smoothing": 0.0}))
    out = tmp_path / "out"
    argv = [
        str(tmp_path / "a.json"),
        str(tmp_path / "b.json"),
        "--data",
        str(sample_root()),
        "--folds",
        "2",
        "--jobs",
        "2",
        "--device",
        "cpu",
        "--out",
        str(out),
    ]
    assert load_tool("sweep").main(argv) == 0
    summary = json.loads((out / "sweep.json").read_text())
    assert set(summary["recipes"]) == {"a", "b"}
    for name, r in summary["recipes"].items():
        assert r["complete"] and set(r["per_fold"]) == {"0", "1"}, name
        assert r["mean"] == pytest.approx(sum(r["per_fold"].values()) / 2)
    lines = (out / "results.jsonl").read_text().splitlines()
    assert len(lines) == 4 and all("accuracy" in json.loads(line) for line in lines)
    # the two folds test disjoint speakers, and each fold's run folder is its own
    speakers = [set(json.loads(line)["test_speakers"]) for line in lines if json.loads(line)["recipe"] == "a"]
    assert not speakers[0] & speakers[1]
    assert (out / "a" / "fold-1" / "log.txt").is_file()
    assert "| a |" in capsys.readouterr().out


def test_a_bad_recipe_is_a_clear_error_naming_it(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"epochs": 1, "no_such_field": 3}))
    sweep = load_tool("sweep")
    with pytest.raises(SystemExit, match="bad.json"):
        sweep.main([str(bad), "--data", str(sample_root()), "--device", "cpu", "--out", str(tmp_path / "o")])
    with pytest.raises(SystemExit, match="missing.json"):
        sweep.main([str(tmp_path / "missing.json"), "--data", str(sample_root()), "--out", str(tmp_path / "o")])
