"""The run config: flags derived from the dataclass fields, and the order in which flags, --config, presets and
defaults combine."""

from __future__ import annotations

import argparse
import dataclasses
import json

import pytest

from audiomnist.config import to_dict
from audiomnist.errors import AudiomnistError, ConfigError
from audiomnist.runconfig import TrainConfig, add_config_arguments, config_from_args, config_from_dict


def parse(*argv: str) -> TrainConfig:
    p = argparse.ArgumentParser()
    add_config_arguments(p)
    return config_from_args(p.parse_args(list(argv)))


def test_every_field_has_a_flag_with_its_default_in_the_help():
    p = argparse.ArgumentParser()
    add_config_arguments(p)
    text = p.format_help()
    for f in dataclasses.fields(TrainConfig):
        value = getattr(TrainConfig(), f.name)
        if dataclasses.is_dataclass(value):
            for g in dataclasses.fields(value):
                assert f"--{f.name}.{g.name.replace('_', '-')}" in text, (f.name, g.name)
        else:
            assert (f.metadata.get("flag") or f"--{f.name.replace('_', '-')}") in text, f.name
    assert "(default: 20)" in text and "(default: 8000)" in text


def test_nothing_given_is_the_default_config():
    assert parse() == TrainConfig()


def test_command_line_over_config_file_over_preset_over_defaults(tmp_path):
    cfg_file = tmp_path / "c.json"
    cfg_file.write_text(json.dumps({"epochs": 7, "lr": 0.01, "audio": {"duration_ms": 800}}))
    cfg = parse("--preset", "v3", "--config", str(cfg_file), "--epochs", "9", "--augment.vtlp", "0.9", "1.1")
    assert cfg.epochs == 9, "the command line wins over the file"
    assert cfg.lr == 0.01 and cfg.audio.duration_ms == 800, "the file wins over the preset"
    assert cfg.audio.sample_rate == 48000 and cfg.model == "seed-cnn", "the preset wins over the defaults"
    assert cfg.augment.vtlp == (0.9, 1.1) and cfg.preset == "v3"


def test_legacy_flat_flags_model_args_and_booleans():
    cfg = parse(
        "--sample-rate",
        "16000",
        "--n-mels",
        "32",
        "--model-arg",
        "width=2",
        "--model-arg",
        "name=x",
        "--no-amp",
        "--features.f-max",
        "none",
        "--features.top-db",
        "60",
    )
    assert cfg.audio.sample_rate == 16000 and cfg.features.n_mels == 32
    assert cfg.model_args == {"width": 2, "name": "x"} and cfg.amp is False
    assert cfg.features.f_max is None and cfg.features.top_db == 60.0


def test_a_model_brings_its_recommended_audio_and_a_random_split_has_no_validation():
    assert parse("--model", "audionet").features.kind == "waveform"
    emb = parse("--model", "emb-head")
    assert (emb.features.kind, emb.audio.duration_ms, emb.batch_size) == ("speech_embedding", 1600, 128)
    assert parse("--model", "emb-head", "--batch-size", "32").batch_size == 32  # the command line still wins
    assert parse("--split", "random").val_frac == 0.0
    assert parse("--split", "random", "--val-frac", "0.2").val_frac == 0.2


def test_bad_values_are_one_kind_of_error(tmp_path):
    with pytest.raises(ConfigError, match="mixup"):
        parse("--mixup", "-1")
    with pytest.raises(ConfigError):
        parse("--audio.sample-rate", "0")
    with pytest.raises(ConfigError, match="vtlp"):  # it would silently do nothing on these features
        parse("--model", "emb-head", "--augment.vtlp", "0.9", "1.1")
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"epochz": 3}))
    with pytest.raises(AudiomnistError, match="bad.json"):
        parse("--config", str(bad))


def test_old_run_configs_still_load():
    old = to_dict(TrainConfig())
    del old["data_weights"], old["init"]  # written before these fields existed
    assert config_from_dict(old) == TrainConfig()
