"""What a run leaves on disk while it runs: a killed job must never look finished."""

from __future__ import annotations

import json
from pathlib import Path

import lightning.pytorch as pl

import ftlab.train as train_module
from ftlab.train import train


def test_results_read_running_during_training(make_cfg, monkeypatch):
    seen = {}

    class Peek(pl.Callback):
        def on_train_start(self, trainer, pl_module):
            path = Path(trainer.default_root_dir) / "results.json"
            seen.update(json.loads(path.read_text()))

    original = train_module.instantiate_list

    def with_peek(cfg, extra=None):
        out = original(cfg, extra)
        return [*out, Peek()] if cfg is not None and "model_checkpoint" in cfg else out

    monkeypatch.setattr(train_module, "instantiate_list", with_peek)
    results = train(make_cfg("method=linear_probe", "callbacks=default", "~callbacks.progress_bar"))
    assert seen["status"] == "running" and seen["method"] == "linear_probe"
    assert results["status"] == "done"
    on_disk = json.loads((Path(results["run_dir"]) / "results.json").read_text())
    assert on_disk["status"] == "done"


SECRET = "tok-9f8e7d6c5b4a"


def _files_holding(root: Path, text: str) -> list[str]:
    return [str(p) for p in root.rglob("*") if p.is_file() and text.encode() in p.read_bytes()]


def test_secrets_reach_no_file_of_a_run(make_cfg, monkeypatch, tmp_path):
    """A token in the environment, interpolated into a secret-named key and into an
    ordinary one, is in neither config.yaml, results.json nor the checkpoints."""
    import pytest

    monkeypatch.setenv("MY_SERVICE_TOKEN", SECRET)
    cfg = make_cfg(
        "callbacks=default",
        "~callbacks.progress_bar",
        "+service.api_key=${oc.env:MY_SERVICE_TOKEN}",
        "+service.url=https://user:${oc.env:MY_SERVICE_TOKEN}@example.org/x",
    )
    assert train(cfg)["status"] == "done"
    run = Path(cfg.paths.output_dir)
    assert list(run.glob("checkpoints/*.ckpt"))
    assert "https://user:***@example.org/x" in (run / "config.yaml").read_text()
    assert _files_holding(run, SECRET) == []

    # an error message that quotes the secret is masked in results.json too
    failing = make_cfg("model.name=${oc.env:MY_SERVICE_TOKEN}", name="failing")
    with pytest.raises(Exception, match=SECRET):  # the user's own terminal may see it
        train(failing)
    out = Path(failing.paths.output_dir)
    assert json.loads((out / "results.json").read_text())["status"] == "failed"
    assert "model.name='***' is not a timm model" in (out / "results.json").read_text()
    assert _files_holding(out, SECRET) == []


def test_throughput_windows_skip_warm_up_and_validation(monkeypatch):
    """Samples/s counts post-warm-up steps over windows that close at validation and at
    the epoch's end; the clock (a device sync on CUDA) is read only at window edges."""
    from types import SimpleNamespace

    import torch

    from ftlab.callbacks import CostMetrics

    clock = {"t": 0.0, "reads": 0}

    def now(self, pl_module):
        clock["reads"] += 1
        return clock["t"]

    monkeypatch.setattr(CostMetrics, "_now", now)
    cost = CostMetrics(warmup_batches=2)
    trainer = SimpleNamespace(world_size=1)
    module = torch.nn.Linear(2, 2)  # validation counts its parameters (a run with no fit)
    batch = {"labels": torch.zeros(8)}
    for steps in (4, 3):  # two epochs
        for i in range(steps):
            cost.on_train_batch_start(trainer, module, batch, i)
            clock["t"] += 1.0  # a step takes 1 s
            cost.on_train_batch_end(trainer, module, None, batch, i)
        cost.on_validation_start(trainer, module)
        clock["t"] += 10.0  # validation: not training time
        cost.on_train_epoch_end(trainer, module)
    assert cost.samples == 5 * 8 and cost.seconds == 5.0  # steps 3-4 and 5-7
    assert cost.all_samples == 7 * 8 and cost.all_seconds == 7.0
    assert cost.samples_per_s == 8.0
    assert clock["reads"] == 6  # 2 per epoch window + 2 for the warm-up boundary
