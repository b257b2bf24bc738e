"""The W&B dashboard a sweep builds: offline, its spec lands in the sweep dir, and every key
a panel plots is one the runs really logged (read back from the offline run files), so a
renamed metric breaks this test, not the dashboard."""

from __future__ import annotations

import json

import pytest

from ftlab.errors import ConfigError
from ftlab.reporting.dashboard import (
    SPEC_FILE,
    build_workspace,
    dashboard_spec,
    method_knobs,
    spec_keys,
    sweep_metrics,
    tuned_validation_key,
    write_dashboard,
)
from tests.conftest import TINY_CNN, ftlab_cli
from tests.wandb_records import summarize_run


def _lookup(config: dict, path: str):
    node = config
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            raise KeyError(path)
        node = node[part]
    return node


@pytest.mark.slow
def test_an_offline_sweep_writes_a_dashboard_spec_whose_keys_its_runs_logged(tmp_path):
    sweep = tmp_path / "sweep"
    done = ftlab_cli(
        "train", "-m", *[o for o in TINY_CNN if o != "logger=none"], "logger=wandb",
        "method=lora,linear_probe", "method.lr=1e-3,1e-2", f"hydra.sweep.dir={sweep}",
        env={"WANDB_MODE": "offline"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"W&B dashboard spec: {sweep / SPEC_FILE}" in done.stdout
    spec = json.loads((sweep / SPEC_FILE).read_text())
    assert spec["group"] == sweep.name and len(spec["panels"]) == 4
    summary_keys, config_keys = spec_keys(spec)
    assert "method.lr" in config_keys  # it varied across the sweep: a knob
    runs = [summarize_run(p.parent) for p in sweep.rglob("run-*.wandb")]
    assert len(runs) == 4
    for run in runs:
        assert run["group"] == sweep.name
        assert summary_keys <= set(run["summary"]), summary_keys - set(run["summary"])
        for path in config_keys:
            _lookup(run["config"], path)  # a KeyError names the missing config path
    # the same spec as a wandb-workspaces view, built offline (saving needs W&B online)
    workspace = build_workspace(spec)
    assert [len(s.panels) for s in workspace.sections] == [4]


def test_the_four_panels_and_their_knobs():
    configs = [
        {"method": {"name": "lora", "r": 8, "lr": 1e-3, "use_dora": False}},
        {"method": {"name": "lora", "r": 16, "lr": 1e-3, "use_dora": True}},
        {"method": {"name": "ia3", "lr": 5e-3, "targets": "default"}},
    ]
    assert method_knobs(configs) == ["method.lr", "method.r"]  # booleans, strings are not
    spec = dashboard_spec("g", "ftlab", method_knobs(configs))
    summary, config = spec_keys(spec)
    assert summary == {
        "test/acc",
        "params/trainable",
        "speed/train_samples_per_s",
        "memory/peak_bytes",
    }
    assert config == {"method.name", "method.lr", "method.r"}
    titles = [p["title"] for p in spec["panels"]]
    assert titles[0].startswith("Test accuracy vs trainable") and "memory" in titles[3]


def test_a_folder_without_jobs_is_one_sentence(tmp_path):
    with pytest.raises(ConfigError, match="holds no job config.yaml"):
        write_dashboard(tmp_path)


def test_a_generative_sweep_plots_its_own_score_and_forgetting():
    records = [
        {"status": "done", "task": "sft", "score": "test/exact_match", "test/exact_match": 0.3,
         "test/forgetting": 0.1, "test/acc": None},
        {"status": "done", "task": "sft", "score": "test/exact_match", "test/exact_match": 0.1,
         "test/forgetting": 0.0, "method": "zero_shot"},
        {"status": "failed", "task": "choice", "score": "test/acc"},
    ]  # fmt: skip
    score, forgetting = sweep_metrics(records)
    assert (score, forgetting) == ("test/exact_match", True)
    spec = dashboard_spec("g", "ftlab", ["method.lr"], score=score, forgetting=forgetting)
    summary, _ = spec_keys(spec)
    assert summary == {
        "test/exact_match",
        "test/forgetting",
        "params/trainable",
        "speed/train_samples_per_s",
        "memory/peak_bytes",
    }
    titles = [p["title"] for p in spec["panels"]]
    assert titles[0] == "Exact match vs trainable parameters"
    assert titles[4].startswith("Forgetting by method") and "lower is better" in titles[4]
    assert [len(s.panels) for s in build_workspace(spec).sections] == [5]
    # a classifier's sweep, and one recorded before runs named their score: test accuracy
    old = [{"status": "done", "test/acc": 0.8}, {"status": "done", "score": "test/acc"}]
    assert sweep_metrics(old) == ("test/acc", False)


def test_a_tuned_sweep_gets_a_section_for_its_two_stages():
    records = [
        {"status": "done", "stage": "select", "val/acc_best": 0.6, "method": "lora"},
        {"status": "done", "stage": "final", "val/acc_best": 0.7, "test/acc": 0.68},
    ]
    assert tuned_validation_key(records) == "val/acc_best"
    assert tuned_validation_key([{"status": "done", "val/acc_best": 0.7}]) is None  # untuned
    spec = dashboard_spec("g", "ftlab", ["method.lr"], tuned_on="val/acc_best")
    summary, config = spec_keys(spec)
    assert "val/acc_best" in summary and {"stage", "tuning.chosen", "method.lr"} <= config
    stage1 = spec["tuning_panels"][0]
    assert stage1["x"] == {"config": "method.lr"} and stage1["y"] == {"summary": "val/acc_best"}
    assert stage1["log_x"]
    stage2 = next(p for p in spec["tuning_panels"] if p["kind"] == "bar")
    assert stage2["metrics"] == [{"summary": "test/acc"}]
    assert stage2["groupby"] == {"config": "method.name"}
    sections = build_workspace(spec).sections
    assert [len(s.panels) for s in sections] == [4, 4]
    assert sections[1].name.startswith("Learning rate chosen on validation")
    assert "tuning_panels" not in dashboard_spec("g", "ftlab", ["method.lr"])
