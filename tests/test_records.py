"""The run record on its own: how each way a run can end is written, and who writes it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from ftlab.config import instantiate_list
from ftlab.errors import ConfigError, MethodNotApplicable, OutOfMemory
from ftlab.records import (
    DONE,
    FAILED,
    RESULTS_FILE,
    RUNNING,
    SKIPPED,
    UNREADABLE,
    RunRecord,
    finished_record,
    load_record,
    read_record,
)


def _cfg(tmp_path):
    return OmegaConf.create(
        {
            "seed": 3,
            "paths": {"output_dir": str(tmp_path / "run")},
            "model": {"label": "tiny", "name": "x", "grad_checkpointing": False},
            "method": {"name": "lora"},
            "data": {"name": "digits", "batch_size": 64},
            "trainer": {"precision": "32-true"},
        }
    )


def run_dir(cfg) -> Path:
    return Path(cfg.paths.output_dir)


def _on_disk(cfg) -> dict:
    return json.loads((run_dir(cfg) / RESULTS_FILE).read_text())


def test_running_while_the_body_runs_then_done(tmp_path):
    cfg = _cfg(tmp_path)
    closed = []
    record = RunRecord(cfg, {"a": 1}, on_close=lambda ok: closed.append(ok) or {"extra": 7})
    with record:
        assert _on_disk(cfg)["status"] == RUNNING
        assert (run_dir(cfg) / "config.yaml").read_text() == "a: 1\n"
        record.update(**{"test/acc": 0.5})
    data = _on_disk(cfg)
    assert data["status"] == DONE and data["test/acc"] == 0.5 and data["extra"] == 7
    identity = (data["model"], data["method"], data["data"], data["seed"])
    assert identity == ("tiny", "lora", "digits", 3)
    assert data["started"] <= data["finished"] and closed == [True]
    assert finished_record(run_dir(cfg)) == data


def test_a_method_that_cannot_apply_is_skipped_with_its_reason(tmp_path):
    cfg = _cfg(tmp_path)
    closed = []
    with pytest.raises(MethodNotApplicable), RunRecord(cfg, {}, on_close=closed.append):
        raise MethodNotApplicable("prefix needs attention; a CNN has none")
    data = _on_disk(cfg)
    assert data["status"] == SKIPPED and data["reason"].startswith("prefix needs attention")
    assert closed == [True] and finished_record(run_dir(cfg)) is None


def test_a_crash_is_failed_with_the_error_and_a_traceback(tmp_path):
    cfg = _cfg(tmp_path)
    closed = []
    with pytest.raises(ZeroDivisionError), RunRecord(cfg, {}, on_close=closed.append):
        1 / 0  # noqa: B018
    data = _on_disk(cfg)
    assert data["status"] == FAILED and data["error"] == "ZeroDivisionError: division by zero"
    assert "1 / 0" in data["traceback"] and closed == [False]


def test_out_of_memory_is_replaced_by_what_to_shrink(tmp_path):
    cfg = _cfg(tmp_path)
    with pytest.raises(OutOfMemory) as caught, RunRecord(cfg, {}):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB.")
    message = str(caught.value)
    assert "lower data.batch_size (now 64)" in message
    assert "model.grad_checkpointing=true" in message and "bf16-mixed (now 32-true)" in message
    assert _on_disk(cfg)["error"].startswith("OutOfMemory: out of memory (CUDA out of memory.")


def test_a_secret_in_the_environment_never_reaches_the_record(tmp_path, monkeypatch):
    monkeypatch.setenv("SERVICE_API_KEY", "s3cr3t-value-123")
    cfg = _cfg(tmp_path)
    with pytest.raises(ConfigError), RunRecord(cfg, {"token": "x"}):
        raise ConfigError("could not reach https://u:s3cr3t-value-123@host")
    text = (run_dir(cfg) / RESULTS_FILE).read_text()
    assert "s3cr3t" not in text and "https://u:***@host" in text


def test_other_ranks_write_nothing(tmp_path):
    cfg = _cfg(tmp_path)
    with RunRecord(cfg, {}, write=False) as record:
        record.update(x=1)
    assert record.data["status"] == DONE
    assert not (run_dir(cfg) / RESULTS_FILE).exists()
    assert not (run_dir(cfg) / "config.yaml").exists()


def test_readers_agree_on_unreadable_files(tmp_path):
    (tmp_path / RESULTS_FILE).write_text("[1, 2]")
    assert read_record(tmp_path) is None
    loaded = load_record(tmp_path / RESULTS_FILE)
    assert loaded["status"] == UNREADABLE and "JSON list" in loaded["error"]


def target_factory(**kwargs):
    return kwargs


alias_factory = target_factory


def test_extra_arguments_follow_the_factory_not_its_dotted_name():
    """A logger config renamed or aliased still receives what its factory is given."""
    cfg = OmegaConf.create(
        {
            "by_name": {"_target_": f"{__name__}.target_factory", "a": 1},
            "by_alias": {"_target_": f"{__name__}.alias_factory", "a": 2},
            "other": {"_target_": "builtins.dict", "a": 3},
        }
    )
    built = instantiate_list(cfg, extra={target_factory: {"run_config": "rc"}})
    assert built == [{"a": 1, "run_config": "rc"}, {"a": 2, "run_config": "rc"}, {"a": 3}]
