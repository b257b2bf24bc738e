"""Real multiruns: the basic launcher (one process) and submitit's local launcher (one
process per job), with an incompatible pair and a forced failure; the sweep survives both,
summarises itself, writes its report, and resumes without retraining finished jobs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import TINY_CNN
from tests.wandb_records import summarize_run

pytestmark = pytest.mark.slow

BROKEN_METHOD = """\
# a job that fails at set-up: EfficientNet-Lite0 has 7 blocks
defaults:
  - last_n
name: broken
n: 99
"""


def sweep(tmp_path: Path, sweep_dir: Path, *extra: str) -> subprocess.CompletedProcess:
    conf = tmp_path / "extra_conf"
    (conf / "method").mkdir(parents=True, exist_ok=True)
    (conf / "method" / "broken.yaml").write_text(BROKEN_METHOD)
    args = [
        sys.executable, "-m", "ftlab.train", "-m",
        *[o for o in TINY_CNN if not o.startswith("logger=")],
        "method=linear_probe,last_n,prompt,broken", "seed=0,1",
        f"hydra.sweep.dir={sweep_dir}", f"hydra.searchpath=[file://{conf}]",
        *extra,
    ]  # fmt: skip
    env = {**os.environ, "HYDRA_FULL_ERROR": "0"}
    return subprocess.run(args, capture_output=True, text=True, env=env, timeout=900)


def statuses(sweep_dir: Path) -> dict[tuple[str, int], dict]:
    out = {}
    for path in sweep_dir.glob("*/results.json"):
        data = json.loads(path.read_text())
        out[(data["method"], data["seed"])] = data
    return out


def check_sweep(sweep_dir: Path, proc: subprocess.CompletedProcess) -> dict:
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-4000:]
    results = statuses(sweep_dir)
    assert len(results) == 8, sorted(results)
    for seed in (0, 1):
        assert results[("linear_probe", seed)]["status"] == "done"
        assert results[("last_n", seed)]["status"] == "done"
        skipped = results[("prompt", seed)]
        assert skipped["status"] == "skipped" and "method=prompt needs" in skipped["reason"]
        failed = results[("broken", seed)]
        assert failed["status"] == "failed" and "method.n=99" in failed["error"]
    assert "4 done, 2 failed, 2 skipped" in output
    report = (sweep_dir / "report.md").read_text()
    assert "linear_probe" in report and "last_n(n=2)" in report
    assert (sweep_dir / "acc_vs_params.png").stat().st_size > 10_000
    return results


def test_basic_launcher_sweep_survives_and_resumes(tmp_path):
    sweep_dir = tmp_path / "sweep"
    proc = sweep(tmp_path, sweep_dir, "logger=wandb")
    results = check_sweep(sweep_dir, proc)

    # one W&B run per job, grouped by sweep, closed
    done = [r for r in results.values() if r["status"] == "done"]
    for r in done:
        recorded = summarize_run(Path(r["wandb_dir"]))
        assert recorded["group"] == sweep_dir.name
        assert recorded["exit_code"] == 0
        assert recorded["summary"]["test/acc"] == r["test/acc"]

    # resume: finished jobs are not trained again, unfinished ones are
    stamps = {k: r["finished"] for k, r in results.items() if r["status"] == "done"}
    again = sweep(tmp_path, sweep_dir, "logger=none")
    output = again.stdout + again.stderr
    assert output.count("already has a finished result") == 4, output[-3000:]
    results2 = check_sweep(sweep_dir, again)
    for key, stamp in stamps.items():
        assert results2[key]["finished"] == stamp


def test_submitit_local_launcher_runs_each_job_in_its_own_process(tmp_path):
    sweep_dir = tmp_path / "sweep"
    proc = sweep(tmp_path, sweep_dir, "logger=none", "hydra/launcher=local")
    check_sweep(sweep_dir, proc)
    logs = list((sweep_dir / ".submitit").rglob("*_log.out"))
    assert len(logs) == 8  # one process (and log) per job


def test_optuna_search_tunes_lr_and_rank(tmp_path):
    sweep_dir = tmp_path / "optuna"
    args = [
        sys.executable, "-m", "ftlab.train", "-m", "hparams_search=lora_optuna",
        *[o for o in TINY_CNN if not o.startswith("logger=")], "logger=none",
        "hydra.sweeper.n_trials=3", "hydra.sweeper.sampler.n_startup_trials=2",
        f"hydra.sweep.dir={sweep_dir}",
    ]  # fmt: skip
    proc = subprocess.run(args, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    import yaml

    best = yaml.safe_load((sweep_dir / "optimization_results.yaml").read_text())
    assert set(best["best_params"]) == {"method.lr", "method.r"}
    trials = [json.loads(p.read_text()) for p in sweep_dir.glob("*/results.json")]
    assert len(trials) == 3 and all(t["method"] == "lora" for t in trials)
    assert best["best_value"] == max(t["val/acc_best"] for t in trials)


# -- the zero-shot baseline a generative sweep gets at its end -----------------------------


def lm_sweep(root: Path, sweep_dir: Path, *extra: str) -> subprocess.CompletedProcess:
    """A tiny sft sweep (a random 2-layer Llama on a dozen prompt/response pairs) with W&B
    offline; forgetting measured on two short general-text articles."""
    from tests.methods.test_hf_families import model_dir

    rows = [{"q": f"question {i} about {w}", "a": f"answer {i}"} for i, w in enumerate("abcdefgh")]
    (root / "qa.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    model = model_dir("llama", root)
    args = [
        sys.executable, "-m", "ftlab.train", "-m",
        "task=sft", "task.max_new_tokens=4", "task.max_length=32",
        "task.forgetting_texts=2", "task.forgetting_tokens=16",
        "model=hf", f"model.name={model}", "model.pretrained=false",
        "data=hf_dataset", "data.source.path=json", f"data.source.data_files={root / 'qa.jsonl'}",
        "data.source.prompt_column=q", "data.source.response_column=a",
        "data.source.answer_kind=text", "data.batch_size=4",
        "trainer.max_epochs=1", "callbacks=none", "print_config=false",
        "method=lora,last_n", f"hydra.sweep.dir={sweep_dir}", *extra,
    ]  # fmt: skip
    env = {**os.environ, "HYDRA_FULL_ERROR": "0", "WANDB_MODE": "offline"}
    return subprocess.run(args, capture_output=True, text=True, env=env, timeout=900)


def test_a_generative_sweep_ends_with_its_zero_shot_baseline_in_the_report(tmp_path):
    from ftlab.reporting.dashboard import SPEC_FILE, SPEED, spec_keys
    from ftlab.sweep import run_zero_shot_baselines

    sweep_dir = tmp_path / "sweep"
    proc = lm_sweep(tmp_path, sweep_dir, "logger=wandb")
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-4000:]
    baseline = sweep_dir / "zero_shot_llama_hf_dataset"
    assert f"zero-shot baseline for llama / hf_dataset (task=sft): {baseline} (done)" in proc.stdout
    assert "3 done" in output  # counted with the sweep's two jobs
    record = json.loads((baseline / "results.json").read_text())
    assert (record["status"], record["method"], record["task"]) == ("done", "zero_shot", "sft")
    assert record["params/trainable"] == 0 and "test/exact_match" in record
    assert "method=zero_shot" in (baseline / ".hydra" / "overrides.yaml").read_text()
    assert "zero_shot trains nothing" in (baseline / "train.log").read_text()

    report = (sweep_dir / "report.md").read_text()
    assert "| exact match (%) | vs zero-shot |" in report
    row = next(line for line in report.splitlines() if "| zero_shot |" in line)
    assert "| baseline |" in row

    # the dashboard plots the sweep's score and forgetting, keys every run (the baseline's
    # too, in the sweep's group) really logged
    spec = json.loads((sweep_dir / SPEC_FILE).read_text())
    summary_keys, _ = spec_keys(spec)
    assert {"test/exact_match", "test/forgetting"} <= summary_keys
    assert "test/acc" not in summary_keys
    runs = {p.parents[2].name: summarize_run(p.parent) for p in sweep_dir.rglob("run-*.wandb")}
    assert sorted(runs) == ["0", "1", baseline.name]
    for job, run in runs.items():
        assert run["group"] == sweep_dir.name
        # the untouched model trains nothing, so it has no training speed
        wanted = summary_keys - ({SPEED} if job == baseline.name else set())
        assert wanted <= set(run["summary"]), (job, wanted - set(run["summary"]))

    # done: a rerun of the sweep leaves it alone
    assert run_zero_shot_baselines(sweep_dir) == []
    assert json.loads((baseline / "results.json").read_text())["finished"] == record["finished"]


def test_the_baseline_swaps_the_method_and_cannot_fail_the_sweep(tmp_path, capsys):
    from ftlab.sweep import run_zero_shot_baselines, zero_shot_overrides

    job = ["task=sft", "method=lora", "method.r=16", "+method.alpha=8", "seed=1", "resume=true"]
    assert zero_shot_overrides(job) == ["task=sft", "seed=1", "method=zero_shot"]

    sweep_dir = tmp_path / "sweep"
    for name, task in (("0", "sft"), ("1", "classify")):
        (sweep_dir / name).mkdir(parents=True)
        record = {"model": "m", "data": "d", "task": task, "method": "lora", "status": "done"}
        (sweep_dir / name / "results.json").write_text(json.dumps(record))
    # the sft job kept no overrides (no .hydra/): its baseline cannot be composed
    assert run_zero_shot_baselines(sweep_dir) == []
    out = capsys.readouterr().out
    assert out.startswith("  zero-shot baseline for m / d (task=sft) not run: ConfigError: ")
    assert out.count("\n") == 1 and "overrides" in out  # the classifier's job needs none
