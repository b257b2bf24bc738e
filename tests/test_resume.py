"""Faults in real runs: a job SIGKILLed mid-epoch resumes and ends where an uninterrupted
run ends; a diverging loss, an out-of-memory error and a corrupt checkpoint each end with
one clear message and a ``failed`` (or untouched) record. Faults come from
:mod:`tests.faults`, added on the command line as Lightning callbacks."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest

from ftlab.checkpoints import LAST, load_checkpoint
from tests.conftest import TINY_CNN, ftlab_cli

pytestmark = pytest.mark.slow

# 3 epochs of 10 steps each; a fault at step 15 lands in the middle of the second epoch
RUN = [
    *[o for o in TINY_CNN if not o.startswith(("trainer.max_epochs", "callbacks="))],
    "data.samples_per_class=8",
    "trainer.max_epochs=3",
    "~callbacks.progress_bar",
    "~callbacks.lr_monitor",
]
MID_EPOCH = 15
COMPARED = ("test/acc", "test/loss", "val/acc", "val/loss", "val/acc_best", "epochs")


def fault(name: str, step: int = MID_EPOCH) -> list[str]:
    return [f"+callbacks.fault._target_=tests.faults.{name}", f"+callbacks.fault.step={step}"]


def results(run_dir: Path) -> dict:
    return json.loads((run_dir / "results.json").read_text())


def run_dirs(root: Path) -> list[Path]:
    return sorted(p.parent for p in root.glob("logs/train/runs/*/config.yaml"))


KILL_AFTER_TRAINING = ["+callbacks.fault._target_=tests.faults.KillAtTest"]


@pytest.mark.parametrize(
    ("method", "how", "kill", "epoch"),
    [
        ("gradual", {"args": ["resume=true"]}, fault("KillAt"), 0),
        ("lora", {"env": {"SLURM_RESTART_COUNT": "1"}}, fault("KillAt"), 0),
        ("last_n", {"args": ["ckpt_path=last"]}, KILL_AFTER_TRAINING, 2),
    ],
    ids=[
        "gradual-mid-epoch-resume=true",
        "lora-mid-epoch-requeued-by-slurm",
        "last_n-at-test-ckpt_path=last",
    ],
)
def test_sigkill_then_resume_ends_like_an_uninterrupted_run(
    method, how, kill, epoch, tmp_path, data_dir
):
    args = [*RUN, f"method={method}"]
    whole = ftlab_cli("train", *args, f"hydra.run.dir={tmp_path / 'whole'}")
    assert whole.returncode == 0, whole.stderr[-3000:]
    expected = results(tmp_path / "whole")

    killed = ftlab_cli("train", *args, *kill, f"paths.root_dir={tmp_path}")
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    [run] = run_dirs(tmp_path)
    assert results(run)["status"] == "running"  # what a killed job leaves: never "done"
    assert load_checkpoint(run / LAST)["epoch"] == epoch  # the last epoch that ended

    # no run dir given: resume finds the interrupted run with this config and continues it
    resumed = ftlab_cli(
        "train", *args, *how.get("args", []), f"paths.root_dir={tmp_path}", env=how.get("env", {})
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"resuming {run}" in resumed.stdout
    got = results(run)
    assert got["status"] == "done" and got["resumed_from"] == str(run / LAST)
    # deterministic on CPU: shuffle, dropout and augmentation depend on (seed, epoch) only
    for key in COMPARED:
        assert got[key] == pytest.approx(expected[key], abs=1e-6), key
    # the invocation that resumed wrote no second result
    assert [r for r in run_dirs(tmp_path) if (r / "results.json").exists()] == [run]


@pytest.mark.parametrize("check", ["step", "deferred"])
def test_non_finite_loss_stops_with_the_step_and_keeps_the_last_good_checkpoint(
    check, tmp_path, data_dir
):
    """``deferred`` (the default on GPUs) notices at the next log step, step 20, and must
    still name step 15 and stop before the end-of-epoch checkpoint."""
    proc = ftlab_cli(
        "train", *RUN, "method=full", f"module.loss_check={check}", *fault("PoisonAt"),
        f"hydra.run.dir={tmp_path}",
    )  # fmt: skip
    output = proc.stdout + proc.stderr
    assert proc.returncode == 2, output[-3000:]
    assert "Traceback" not in output
    assert f"non-finite training loss (nan) at step {MID_EPOCH} (epoch 1)" in output
    assert "method.lr" in output and "precision" in output
    assert f"last good checkpoint is {tmp_path / LAST}" in output
    record = results(tmp_path)
    assert record["status"] == "failed" and "TrainingDiverged" in record["error"]
    good = load_checkpoint(tmp_path / LAST)
    assert good["epoch"] == 0
    assert all(v.isfinite().all() for v in good["state_dict"].values() if v.is_floating_point())


def test_out_of_memory_says_what_to_change(tmp_path, data_dir):
    proc = ftlab_cli(
        "train", *RUN, "method=full", *fault("OutOfMemoryAt", 3), f"hydra.run.dir={tmp_path}"
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 2, output[-3000:]
    assert "Traceback" not in output
    for advice in ("data.batch_size (now 8)", "model.grad_checkpointing=true", "bf16-mixed"):
        assert advice in output
    record = results(tmp_path)
    assert record["status"] == "failed" and record["error"].startswith("OutOfMemory:")


def test_truncated_last_checkpoint_is_refused_and_the_run_left_as_it_was(tmp_path, data_dir):
    run = tmp_path / "run"
    killed = ftlab_cli("train", *RUN, "method=last_n", *fault("KillAt"), f"hydra.run.dir={run}")
    assert killed.returncode == -signal.SIGKILL
    before = (run / "results.json").read_bytes()
    data = (run / LAST).read_bytes()
    (run / LAST).write_bytes(data[: len(data) // 2])

    proc = ftlab_cli("train", *RUN, "method=last_n", "resume=true", f"hydra.run.dir={run}")
    output = proc.stdout + proc.stderr
    assert proc.returncode == 2, output[-3000:]
    assert "Traceback" not in output
    assert f"ckpt_path='{run / LAST}' could not be read" in output and "truncated" in output
    assert (run / "results.json").read_bytes() == before
    assert not list(run.rglob("*.tmp"))


def sweep_results(sweep_dir: Path) -> dict[tuple[str, int], dict]:
    out = {}
    for path in sweep_dir.glob("*/results.json"):
        data = json.loads(path.read_text())
        out[(data["method"], data["seed"])] = data
    return out


def test_a_sigkill_storm_loses_no_sweep_job(tmp_path, data_dir):
    """Kill a sweep several times at random moments, rerun it with resume=true each time:
    finished jobs are never trained again, interrupted ones continue from their last
    checkpoint, and the final results equal those of a sweep nobody interrupted."""
    import os
    import random
    import subprocess
    import sys
    import time

    from tests.conftest import REPO

    def command(sweep_dir: Path) -> list[str]:
        return [
            sys.executable, "-m", "ftlab.train", "-m", *RUN,
            "method=linear_probe,last_n", "seed=0,1,2", "resume=true",
            f"hydra.sweep.dir={sweep_dir}",
        ]  # fmt: skip

    env = {**os.environ, "HYDRA_FULL_ERROR": "0"}
    calm = subprocess.run(command(tmp_path / "calm"), capture_output=True, text=True, env=env)
    assert calm.returncode == 0, calm.stderr[-3000:]
    expected = sweep_results(tmp_path / "calm")
    assert len(expected) == 6 and all(r["status"] == "done" for r in expected.values())

    stormy = tmp_path / "stormy"
    rng = random.Random(0)
    finished: dict[tuple[str, int], str] = {}  # job -> its "finished" stamp when first done
    kills = 0

    def progress() -> int:  # jobs done + jobs with a checkpoint: grows with every event
        done = sum(r["status"] == "done" for r in sweep_results(stormy).values())
        return done + len(list(stormy.glob(f"*/{LAST}")))

    for _ in range(4):
        proc = subprocess.Popen(
            command(stormy), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
            cwd=REPO, start_new_session=True,
        )  # fmt: skip
        # strike at a random moment after the next checkpoint or finished job, so that
        # kills land mid-epoch, mid-job and between jobs, and the sweep moves in between
        target, deadline = progress() + 1, time.monotonic() + 300
        while proc.poll() is None and progress() < target and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(rng.uniform(0, 3))
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            kills += 1
        proc.wait()
        for job, data in sweep_results(stormy).items():
            if data["status"] == "done":
                # a job done before a kill stays done, and is never trained again
                assert finished.setdefault(job, data["finished"]) == data["finished"], job
    assert kills >= 2, "the sweep finished before the storm could hit it; lengthen the runs"

    final = subprocess.run(command(stormy), capture_output=True, text=True, env=env)
    assert final.returncode == 0, final.stderr[-3000:]
    got = sweep_results(stormy)
    lost = [job for job, stamp in finished.items() if got[job]["finished"] != stamp]
    resumed = sorted(job for job, r in got.items() if r.get("resumed_from"))
    print(f"kill storm: {kills} kills, {len(finished)} jobs done before the last rerun, "
          f"{len(resumed)} resumed mid-run {resumed}, {len(lost)} lost")  # fmt: skip
    assert lost == []
    assert finished and resumed, "the storm must hit both finished and half-trained jobs"
    assert got.keys() == expected.keys()
    for job, want in expected.items():
        assert got[job]["status"] == "done", job
        for key in COMPARED:
            assert got[job][key] == pytest.approx(want[key], abs=1e-6), (job, key)
    assert (stormy / "report.md").is_file()


def test_last_checkpoint_is_the_last_epochs_even_when_the_best_is_older(tmp_path, data_dir):
    """resume=true continues from checkpoints/last.ckpt: it must be the last epoch that
    ended. (Lightning's save_last rewrites it only when it writes a new best, so with a
    learning rate too small to improve anything it stayed at epoch 0.)"""
    args = [o for o in TINY_CNN if o not in ("callbacks=none", "trainer.max_epochs=1")]
    done = ftlab_cli(
        "train", *args, "method=linear_probe", "method.lr=1e-12", "trainer.max_epochs=3",
        f"hydra.run.dir={tmp_path}",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    best, last = (load_checkpoint(tmp_path / "checkpoints" / f"{n}.ckpt") for n in ("best", "last"))
    assert best["epoch"] == 0 and last["epoch"] == 2
    assert results(tmp_path)["checkpoint/path"] == str(tmp_path / "checkpoints" / "best.ckpt")


def test_a_run_recorded_before_a_trainer_key_existed_is_the_same_run(make_cfg):
    """resume=true matches runs by config; a trainer key the config gained later, at
    Lightning's own default, must not make an earlier run a different one."""
    from ftlab.checkpoints import same_run
    from ftlab.config import resolved

    now = resolved(make_cfg())
    before = {
        **now,
        "trainer": {k: v for k, v in now["trainer"].items() if k != "limit_train_batches"},
    }
    assert now["trainer"]["limit_train_batches"] is None  # Lightning's default
    assert same_run(before) == same_run(now)
    limited = {**now, "trainer": {**now["trainer"], "limit_train_batches": 3}}
    assert same_run(limited) != same_run(now)
