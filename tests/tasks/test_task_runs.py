"""task=sft and task=choice end to end through ``train(cfg)`` on a tiny random Llama with a
local JSON dataset in the records' shape: what results.json and generations.jsonl hold,
the untouched model as the baseline (method=zero_shot), and ftlab-eval reproducing the
test metrics from the checkpoint. Slow: SmolLM2 on real ASDiv problems, with forgetting."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from tests.conftest import compose
from tests.methods.test_hf_families import model_dir
from tests.test_checkpoint_eval import CKPT

from ftlab.evaluate import evaluate
from ftlab.train import train

#: ASDiv-like problems: a number to read from the generation
QA = [
    {"question": f"Lea has {i} shells and finds {i % 3 + 1} more. How many shells now?",
     "solution": f"{i + i % 3 + 1} shells", "final": str(i + i % 3 + 1)}
    for i in range(30)
]  # fmt: skip
#: BoolQ-like questions with their options and the gold option's index
MC = [
    {"question": f"Is {i} an even number?", "options": ["no", "yes"], "gold": int(i % 2 == 0)}
    for i in range(30)
]
TEST_ROWS = 6


def jsonl(folder: Path, rows: list[dict]) -> str:
    """``rows`` as train/test JSON-lines files; the override that names them."""
    folder.mkdir(parents=True, exist_ok=True)
    for split, part in (("train", rows[:-TEST_ROWS]), ("test", rows[-TEST_ROWS:])):
        (folder / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in part))
    return f"data.source.data_files={{train:'{folder}/train.jsonl',test:'{folder}/test.jsonl'}}"


def tiny_run(root: Path, task: str) -> list[str]:
    """``ftlab-train`` overrides: the tiny Llama, three steps of 8, the records' columns."""
    common = [
        "model=hf",
        f"model.name={model_dir('llama', root / 'models')}",
        "model.pretrained=false",
        "data=hf_dataset",
        "data.source.path=json",
        "data.source.prompt_column=question",
        "data.batch_size=8",
        "trainer.max_epochs=1",
        "logger=none",
        *CKPT,
        "print_config=false",
        f"task={task}",
        "task.forgetting=null",
    ]
    if task == "sft":
        return [
            *common,
            jsonl(root / "qa", QA),
            "data.source.response_column=solution",
            "data.source.answer_column=final",
            "data.source.answer_kind=number",
            "task.max_new_tokens=4",
        ]
    return [
        *common,
        jsonl(root / "mc", MC),
        "data.source.options_column=options",
        "data.source.label_column=gold",
    ]


def recorded(run_dir: Path) -> dict:
    results = json.loads((run_dir / "results.json").read_text())
    assert results["status"] == "done"
    return results


def generations(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "generations.jsonl").read_text().splitlines()]


def test_sft_with_lora_trains_generates_and_evaluates_the_same(tmp_path, data_dir):
    run_dir = tmp_path / "run"
    returned = train(compose([*tiny_run(tmp_path, "sft"), "method=lora"], run_dir))
    results = recorded(run_dir)
    assert results["task"] == "sft" and results["score"] == "test/exact_match"
    assert results["test/exact_match"] == returned["test/exact_match"]
    assert 0.0 <= results["test/exact_match"] <= results["test/answered"] <= 1.0
    assert math.isfinite(results["test/loss"]) and "val/loss_best" in results
    assert results["params/trainable"] > 0 and "test/forgetting" not in results
    rows = generations(run_dir)
    assert [r["prompt"] for r in rows] == [q["question"] for q in QA[-TEST_ROWS:]]
    assert [r["answer"] for r in rows] == [q["final"] for q in QA[-TEST_ROWS:]]
    assert all(set(r) == {"prompt", "generated", "answer", "extracted", "correct"} for r in rows)
    assert sum(r["correct"] for r in rows) / len(rows) == pytest.approx(results["test/exact_match"])
    eval_dir = tmp_path / "eval"
    metrics = evaluate(
        compose([f"ckpt_path={results['checkpoint/path']}"], eval_dir, config_name="eval")
    )
    assert metrics["test/exact_match"] == results["test/exact_match"]
    assert metrics["test/loss"] == pytest.approx(results["test/loss"], rel=1e-5)
    assert generations(eval_dir) == rows  # the same greedy generations, rebuilt


def test_choice_with_lora_trains_scores_and_evaluates_the_same(tmp_path, data_dir):
    run_dir = tmp_path / "run"
    train(compose([*tiny_run(tmp_path, "choice"), "method=lora"], run_dir))
    results = recorded(run_dir)
    assert results["task"] == "choice" and results["score"] == "test/acc"
    assert 0.0 <= results["test/acc"] <= 1.0 and "val/acc_best" in results
    assert results["params/trainable"] > 0
    assert not (run_dir / "generations.jsonl").exists()
    metrics = evaluate(
        compose([f"ckpt_path={results['checkpoint/path']}"], tmp_path / "eval", config_name="eval")
    )
    assert metrics["test/acc"] == pytest.approx(results["test/acc"], abs=1e-6)
    assert metrics["test/loss"] == pytest.approx(results["test/loss"], rel=1e-5)


@pytest.mark.parametrize("task", ["sft", "choice"])
def test_zero_shot_tests_the_untouched_model(task, tmp_path, data_dir):
    run_dir = tmp_path / "run"
    train(compose([*tiny_run(tmp_path, task), "method=zero_shot"], run_dir))
    results = recorded(run_dir)
    assert results["params/trainable"] == 0 and results["checkpoint/path"] is None
    assert results["method"] == "zero_shot" and results["epochs"] == 0
    score = "test/exact_match" if task == "sft" else "test/acc"
    assert results["score"] == score and 0.0 <= results[score] <= 1.0
    assert math.isfinite(results["test/loss"])
    if task == "sft":
        assert len(generations(run_dir)) == TEST_ROWS


@pytest.mark.slow
def test_smollm2_fine_tunes_on_asdiv_and_measures_forgetting(tmp_path, data_dir):
    """The real decoder on real problems: a handful of them, one epoch of LoRA, eight new
    tokens, forgetting on four general-text articles."""
    from tests.conftest import found_or_fetched

    from ftlab.backbones.assets import SmolLM2
    from ftlab.data.sources import ASDiv

    found_or_fetched(SmolLM2(data_dir))
    found_or_fetched(ASDiv(data_dir))
    overrides = [
        "model=smollm2",
        "task=sft",
        "method=lora",
        "data=asdiv",
        "data.train_samples=8",
        "data.val_samples=4",
        "data.test_samples=4",
        "data.batch_size=4",
        "trainer.max_epochs=1",
        "task.max_new_tokens=8",
        "task.forgetting_texts=4",
        "task.forgetting_tokens=64",
        "logger=none",
        "callbacks=none",
        "print_config=false",
    ]
    run_dir = tmp_path / "run"
    train(compose(overrides, run_dir))
    results = recorded(run_dir)
    for key in ("forgetting/ce_before", "test/general_ce", "test/forgetting", "test/loss"):
        assert math.isfinite(results[key]), key
    assert results["test/forgetting"] == pytest.approx(
        results["test/general_ce"] - results["forgetting/ce_before"], abs=1e-5
    )
    assert 0.0 <= results["test/exact_match"] <= 1.0
    rows = generations(run_dir)
    assert len(rows) == 4 and all(r["generated"].strip() for r in rows)
