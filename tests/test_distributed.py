"""Real multi-process DDP on the CPU (gloo), launched the way a user launches it."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import TINY_CNN

pytestmark = pytest.mark.slow


def test_two_process_cpu_ddp_run_writes_its_results_once(tmp_path, data_dir):
    """trainer=ddp_cpu: two gloo processes, one run dir, one results.json, one summary."""
    args = [
        sys.executable, "-m", "ftlab.train", "trainer=ddp_cpu", "method=lora",
        *[o for o in TINY_CNN if not o.startswith("trainer.")], "trainer.max_epochs=2",
        f"paths.log_dir={tmp_path}",
    ]  # fmt: skip
    proc = subprocess.run(args, capture_output=True, text=True, timeout=600)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    (results,) = tmp_path.glob("train/runs/*/results.json")
    data = json.loads(results.read_text())
    assert data["status"] == "done" and data["method"] == "lora"
    assert out.count("test accuracy") == 1  # rank 1 stays quiet
    assert "distributed_backend=gloo" in out and "All distributed processes registered" in out
