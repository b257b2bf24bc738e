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
