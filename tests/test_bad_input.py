"""Bad input ends with one clear message (the bad value, what would be valid), a non-zero
exit and no traceback. One table, so the list is easy to extend."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import TINY_CNN

# (id, entry point, overrides, expected exit code, fragments the message must contain)
CASES = [
    ("unknown method", "train", ["method=lorax"], 1, ["method/lorax", "Available options", "lora"]),
    ("unknown model", "train", ["model=resnet"], 1, ["model/resnet", "Available options"]),
    ("unknown data", "train", ["data=mnist"], 1, ["data/mnist", "fashion_mnist"]),
    (
        "timm name that does not exist",
        "train",
        ["model.name=resnet_18"],
        2,
        ["model.name='resnet_18' is not a timm model", "Did you mean 'resnet18'"],
    ),
    (
        "last_n larger than the backbone",
        "train",
        ["method=last_n", "method.n=12"],
        2,
        ["method.n=12", "7 blocks", "valid: 1..7"],
    ),
    ("zero LoRA rank", "train", ["method=lora", "method.r=0"], 2, ["method.r=0", "positive"]),
    (
        "missing image folder",
        "train",
        ["data=image_folder", "data.source.root=/nonexistent/imgs"],
        2,
        ["/nonexistent/imgs"],
    ),
    (
        "text data on an image backbone",
        "train",
        ["data=rotten_tomatoes"],
        2,
        ["rotten_tomatoes", "text", "image"],
    ),
    (
        "checkpoint that does not exist",
        "evaluate",
        ["ckpt_path=/nonexistent/best.ckpt"],
        2,
        ["ckpt_path='/nonexistent/best.ckpt' does not exist"],
    ),
]


@pytest.mark.slow  # one process each (~9 s of imports)
@pytest.mark.parametrize(
    ("entry", "overrides", "code", "fragments"),
    [c[1:] for c in CASES],
    ids=[c[0] for c in CASES],
)
def test_bad_input_is_one_clear_message(entry, overrides, code, fragments, tmp_path, data_dir):
    base = [f"paths.root_dir={tmp_path}"]
    if entry == "train":
        own_data = any(o.startswith("data=") for o in overrides)
        base += [o for o in TINY_CNN if not (own_data and o.startswith("data."))]
    env = {**os.environ, "FTLAB_DATA_DIR": str(data_dir), "HYDRA_FULL_ERROR": "0"}
    proc = subprocess.run(
        [sys.executable, "-m", f"ftlab.{entry}", *base, *overrides],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == code, output[-3000:]
    for fragment in fragments:
        assert fragment in output, f"{fragment!r} not in:\n{output[-3000:]}"
    assert "Traceback" not in output, output[-3000:]
    # nothing half-written: a run that started records why it failed, complete
    for results in Path(tmp_path).rglob("results.json"):
        import json

        data = json.loads(results.read_text())
        assert data["status"] == "failed"
        assert data["error"]
    assert not list(Path(tmp_path).rglob("*.tmp"))
