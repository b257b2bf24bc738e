"""W&B (offline without credentials) and the CSV logger, for real."""

from __future__ import annotations

from pathlib import Path

import pytest

from ftlab.train import train
from tests.wandb_records import summarize_run


def test_wandb_runs_offline_in_the_run_dir_and_closes(make_cfg, monkeypatch):
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("NETRC", "/nonexistent")
    cfg = make_cfg("method=linear_probe", "logger=wandb", "logger.wandb.group=sweep-a")
    results = train(cfg)
    import wandb

    assert wandb.run is None  # closed, so the next job in a sweep cannot log into it
    run_dir = Path(results["wandb_dir"])
    assert run_dir.parent == Path(results["run_dir"]) / "wandb"
    assert run_dir.name.startswith("offline-run-")
    assert list(run_dir.glob("run-*.wandb"))
    recorded = summarize_run(run_dir)
    assert recorded["exit_code"] == 0
    assert recorded["group"] == "sweep-a"
    assert recorded["job_type"] == "linear_probe"
    assert set(recorded["tags"]) >= {"method:linear_probe", "data:fashion_mnist"}
    assert recorded["config"]["method"]["name"] == "linear_probe"
    assert recorded["config"]["model"]["name"] == "tf_efficientnet_lite0"
    assert recorded["summary"]["test/acc"] == results["test/acc"]
    assert recorded["summary"]["params/trainable"] == results["params/trainable"]


def test_csv_logger_writes_metrics(make_cfg):
    results = train(make_cfg("method=linear_probe", "logger=csv", "trainer.log_every_n_steps=1"))
    metrics = Path(results["run_dir"]) / "csv" / "metrics.csv"
    header = metrics.read_text().splitlines()[0].split(",")
    assert "train/loss" in header and "val/acc" in header and "test/acc" in header


@pytest.mark.slow
def test_unreachable_wandb_falls_back_to_offline(make_cfg, monkeypatch):
    """Credentials but no route to the server: the run trains and logs offline."""
    monkeypatch.setenv("WANDB_API_KEY", "0" * 40)
    cfg = make_cfg(
        "method=linear_probe", "logger=wandb", "logger.wandb.mode=online",
        "logger.wandb.init_timeout=10",
    )  # fmt: skip
    with pytest.warns(UserWarning, match="logging offline"):
        results = train(cfg)
    assert results["status"] == "done"
    assert Path(results["wandb_dir"]).name.startswith("offline-run-")
    assert summarize_run(Path(results["wandb_dir"]))["summary"]["test/acc"] == results["test/acc"]
