"""``ftlab-eval`` on a decoder run: a tiny random Llama (grouped-query) trained for two
steps with LoRA, prompts or prefixes; evaluation rebuilds it from the checkpoint and
reproduces the test metrics the run recorded in its ``results.json``. LoRA merged into
plain layers gives the same numbers as unmerged."""

from __future__ import annotations

import json

import pytest

from ftlab.evaluate import evaluate
from ftlab.train import train
from tests.conftest import compose
from tests.methods.test_hf_families import model_dir
from tests.test_checkpoint_eval import TINY_TEXT

#: TINY_TEXT's data, trainer and checkpoint settings; 16 snippets in batches of 8: 2 steps
TINY_DECODER_RUN = [
    *(o for o in TINY_TEXT if not o.startswith("model")),
    "model=hf",
    "model.pretrained=false",
    "data.batch_size=8",
]


@pytest.mark.parametrize("method", ["lora", "prompt", "prefix"])
def test_eval_reproduces_a_decoder_run(method, tmp_path, data_dir):
    llama = model_dir("llama", tmp_path / "models")
    run_dir = tmp_path / "run"
    returned = train(
        compose([*TINY_DECODER_RUN, f"model.name={llama}", f"method={method}"], run_dir)
    )
    recorded = json.loads((run_dir / "results.json").read_text())
    assert recorded["status"] == "done" and recorded["test/acc"] == returned["test/acc"]
    merges = [False, True] if method == "lora" else [False]
    for merge in merges:
        overrides = [f"ckpt_path={recorded['checkpoint/path']}", f"merge_lora={str(merge).lower()}"]
        eval_dir = tmp_path / f"eval_merge_{merge}"
        metrics = evaluate(compose(overrides, eval_dir, config_name="eval"))
        assert metrics["test/acc"] == pytest.approx(recorded["test/acc"], abs=1e-6), merge
        assert metrics["test/loss"] == pytest.approx(recorded["test/loss"], rel=1e-4), merge
        assert json.loads((eval_dir / "eval.json").read_text())["test/loss"] == metrics["test/loss"]
