"""TrainConfig: TOML files, round trip, validation, and the copy saved in checkpoints."""

from __future__ import annotations

from pathlib import Path

import pytest

from service.errors import UsageError
from training.cli import _config, build_parser
from training.config import CONFIG_DIR, TrainConfig, load_config, parse_setting


@pytest.mark.parametrize("name", sorted(p.stem for p in CONFIG_DIR.glob("*.toml")))
def test_shipped_configs_load(name: str) -> None:
    cfg = load_config(name)
    assert cfg.name == name  # a file's name is the run name it declares


def test_paper_config_is_the_papers() -> None:
    cfg = load_config("paper")
    assert (cfg.ngf, cfg.depth, cfg.norm, cfg.ndf, cfg.d_layers) == (64, 8, "batch", 64, 3)
    assert (cfg.lambda_l1, cfg.lr, cfg.betas, cfg.batch_size, cfg.crop) == (100.0, 2e-4, (0.5, 0.999), 8, 512)
    assert cfg.epochs_constant == 200 and cfg.order == "chronological" and cfg.gan_loss == "vanilla"
    assert load_config("shuffled").order == "shuffled"


def test_toml_round_trip(tmp_path: Path) -> None:
    cfg = load_config("cpu", data_dir="/data", seed=7).replace(extra={"note": "x", "k": 2})
    path = tmp_path / "again.toml"
    path.write_text(cfg.to_toml())
    assert load_config(path) == cfg


def test_unknown_key_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "typo.toml"
    path.write_text('name = "typo"\nlearning_rate = 0.1\n')
    with pytest.raises(UsageError, match="learning_rate"):
        load_config(path)


@pytest.mark.parametrize(("text", "expected"), [
    ("ngf=32", ("ngf", 32)),
    ("lr = 1e-4", ("lr", 1e-4)),
    ("compile=false", ("compile", False)),
    ("order=shuffled", ("order", "shuffled")),
    ('name="gpu-b"', ("name", "gpu-b")),
    ("betas=[0.5, 0.99]", ("betas", [0.5, 0.99])),
])
def test_set_values_are_read_as_toml(text: str, expected: tuple) -> None:
    assert parse_setting(text) == expected


@pytest.mark.parametrize("text", ["ngf", "=3", "two words=1"])
def test_set_without_a_key_is_refused(text: str) -> None:
    with pytest.raises(UsageError, match="KEY=VALUE"):
        parse_setting(text)


def test_cli_set_overrides_the_file(tmp_path: Path) -> None:
    args = build_parser().parse_args(["train", "--data-dir", str(tmp_path), "--config", "paper",
                                      "--set", "ngf=32", "--set", "order=shuffled", "--seed", "3"])
    cfg = _config(args)
    assert (cfg.ngf, cfg.order, cfg.seed, cfg.depth) == (32, "shuffled", 3, 8)


def test_cli_flag_wins_over_a_set_of_the_same_key(tmp_path: Path) -> None:
    args = build_parser().parse_args(["train", "--data-dir", str(tmp_path), "--config", "paper",
                                      "--set", "seed=5", "--seed", "3", "--set", "name=gpu-b"])
    cfg = _config(args)
    assert (cfg.seed, cfg.name) == (3, "gpu-b")


def test_cli_set_of_an_unknown_key_is_refused(tmp_path: Path) -> None:
    args = build_parser().parse_args(["train", "--data-dir", str(tmp_path), "--config", "paper",
                                      "--set", "learning_rate=1"])
    with pytest.raises(UsageError, match="learning_rate"):
        _config(args)


def test_invalid_values_are_refused() -> None:
    with pytest.raises(UsageError, match="order"):
        TrainConfig(order="random")
    with pytest.raises(UsageError, match="crop"):
        TrainConfig(crop=300)
    with pytest.raises(UsageError, match="upsample"):
        TrainConfig(upsample="bilinear")


@pytest.mark.slow
def test_checkpoint_holds_config_and_resume_is_exact(data_dir: Path, tmp_path: Path) -> None:
    import torch

    from training.train import load_checkpoint, train

    base = TrainConfig(
        name="tiny", ngf=4, ndf=4, batch_size=2, crop=256, epochs_constant=1, epochs_decay=1,
        train_days=4, device="cpu", channels_last=False, log_every=100, checkpoint_every=1,
        data_dir=str(data_dir), out_dir=str(tmp_path / "a"), seed=3,
    )
    straight = train(base, log=lambda _: None)
    state = load_checkpoint(straight.checkpoints[-1])
    assert TrainConfig.from_dict(state["config"]) == base
    assert state["step"] == 4 and state["epoch"] == 2

    half = base.replace(out_dir=str(tmp_path / "b"), max_steps=2)
    first = train(half, log=lambda _: None)
    resumed = train(base.replace(out_dir=str(tmp_path / "b")), resume=first.checkpoints[-1], log=lambda _: None)
    a = load_checkpoint(straight.checkpoints[-1])["generator"]
    b = load_checkpoint(resumed.checkpoints[-1])["generator"]
    assert all(torch.equal(a[k], b[k]) for k in a)
