"""Real multi-process DDP on the CPU (gloo), launched the way a user launches it."""

from __future__ import annotations

import json

import pytest

from tests.conftest import TINY_CNN, ftlab_cli

pytestmark = pytest.mark.slow

#: a 2-block ViT at 32 px, randomly initialised: 80 training images, 2 epochs
TINY_VIT = [
    "model=vit_tiny", "model.pretrained=false",
    "+model.model_kwargs.img_size=32", "+model.model_kwargs.depth=2",
    "data=fashion_mnist", "data.samples_per_class=8", "data.image_size=32",
    "data.val_samples=16", "data.test_samples=16", "trainer.max_epochs=2",
    "logger=none", "callbacks=none", "print_config=false",
]  # fmt: skip


def test_two_process_cpu_ddp_run_writes_its_results_once(tmp_path, data_dir):
    """trainer=ddp_cpu: two gloo processes, one run dir, one results.json, one summary."""
    proc = ftlab_cli(
        "train", "trainer=ddp_cpu", "method=lora",
        *[o for o in TINY_CNN if not o.startswith("trainer.")], "trainer.max_epochs=2",
        f"paths.log_dir={tmp_path}",
    )  # fmt: skip
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    (results,) = tmp_path.glob("train/runs/*/results.json")
    data = json.loads(results.read_text())
    assert data["status"] == "done" and data["method"] == "lora"
    assert out.count("test accuracy") == 1  # rank 1 stays quiet
    assert "distributed_backend=gloo" in out and "All distributed processes registered" in out


# the loss of one step agrees to float32 reduction-order noise
RTOL = 1e-4


@pytest.mark.parametrize("method", ["linear_probe", "lora", "adapter", "prefix"])
def test_two_processes_follow_the_one_process_loss_trajectory(method, tmp_path, data_dir):
    """Same global batch (1 x 16 vs 2 x 8): the same shuffle (EpochShuffle and
    DistributedSampler share randperm(seed + epoch)), the same averaged gradients, so the
    same loss at every step and the same trained model."""
    traces = {}
    for name, setup in (("one", ["data.batch_size=16"]), ("two", ["trainer=ddp_cpu", "data.batch_size=8"])):  # fmt: skip
        trace = tmp_path / f"{name}.json"
        proc = ftlab_cli(
            "train", *TINY_VIT, f"method={method}", *setup, f"hydra.run.dir={tmp_path / name}",
            "+callbacks.trace._target_=tests.probes.LossTrace", f"+callbacks.trace.path={trace}",
        )  # fmt: skip
        assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
        traces[name] = json.loads(trace.read_text())
    one, two = traces["one"], traces["two"]
    assert len(one) == len(two) == 10  # 5 steps x 2 epochs
    assert one == pytest.approx(two, rel=RTOL), list(zip(one, two, strict=True))
    worst = max(abs(a - b) / abs(a) for a, b in zip(one, two, strict=True))
    print(f"{method}: largest relative loss difference over 10 steps {worst:.2e}")
    assert one[0] != pytest.approx(one[-1], rel=1e-3)  # it trained: the loss moved
    results = {n: json.loads((tmp_path / n / "results.json").read_text()) for n in traces}
    assert results["one"]["test/loss"] == pytest.approx(results["two"]["test/loss"], rel=RTOL)


def test_a_ddp_job_inside_a_sweep_does_not_relaunch_the_sweep(tmp_path, data_dir):
    """The basic launcher runs the sweep in one process, and Lightning starts DDP ranks by
    re-running the command line: each DDP job therefore runs as its own single run."""
    sweep_dir = tmp_path / "sweep"
    proc = ftlab_cli(
        "train", "-m", "trainer=ddp_cpu", "method=linear_probe,lora",
        *[o for o in TINY_CNN if not o.startswith("trainer.")], "trainer.max_epochs=1",
        f"hydra.sweep.dir={sweep_dir}", f"paths.log_dir={tmp_path / 'logs'}",
    )  # fmt: skip
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    assert out.count("Launching 2 jobs locally") == 1
    assert out.count("trains with DDP: running it as its own process") == 2
    assert "2 done" in out
    found = sorted(p.parent.name for p in sweep_dir.rglob("results.json"))
    assert found == ["0", "1"]
    for job in found:
        data = json.loads((sweep_dir / job / "results.json").read_text())
        assert data["status"] == "done"
    assert not (tmp_path / "logs").exists()  # no rank wandered off into a run dir of its own


def test_a_trainable_parameter_without_gradient_is_named_under_ddp(tmp_path, data_dir):
    proc = ftlab_cli(
        "train", "trainer=ddp_cpu", "method=linear_probe", "feature_cache=false",
        *[o for o in TINY_CNN if not o.startswith("trainer.")], "trainer.max_epochs=1",
        "+callbacks.orphan._target_=tests.faults.OrphanParameter", f"hydra.run.dir={tmp_path}",
    )  # fmt: skip
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out[-3000:]
    assert "1 trainable parameter(s) got no gradient in the first step (backbone.orphan)" in out
    assert json.loads((tmp_path / "results.json").read_text())["status"] == "failed"


@pytest.mark.parametrize("check", ["auto", "deferred"])
def test_a_non_finite_loss_on_one_rank_stops_every_rank(check, tmp_path, data_dir):
    """Rank 1's loss goes non-finite at step 4 (as a bad batch would make it). Stopping that
    rank alone, at once (``loss_check=step``), kills rank 0 in the gradient all-reduce with
    gloo's "Connection closed by peer" (NCCL would wait for its timeout) and the record
    names that, not the divergence. Under DDP the check is deferred, so every rank stops at
    the same check, after the all-reduce has spread the non-finite gradient."""
    proc = ftlab_cli(
        "train", "trainer=ddp_cpu", "method=full", f"module.loss_check={check}",
        *[o for o in TINY_CNN if not o.startswith("trainer.")], "trainer.max_epochs=3",
        "+callbacks.fault._target_=tests.faults.PoisonAt", "+callbacks.fault.step=4",
        "+callbacks.fault.rank=1", f"hydra.run.dir={tmp_path}",
        timeout=300,
    )  # fmt: skip
    out = proc.stdout + proc.stderr
    assert proc.returncode == 2, out[-3000:]
    assert "non-finite training loss" in out and "Connection closed by peer" not in out
    record = json.loads((tmp_path / "results.json").read_text())
    assert record["status"] == "failed" and "TrainingDiverged" in record["error"], record


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_nodes_on_one_box_are_one_job_that_follows_the_one_process_run(tmp_path, data_dir):
    """Two "nodes", each a separate ftlab-train with one CPU device, started as torchrun
    starts a node's process (RANK, LOCAL_RANK, GROUP_RANK, WORLD_SIZE, MASTER_ADDR/PORT)
    and trainer.num_nodes=2: one DDP job of world size 2 whose losses equal the
    one-process run on the same global batch, with one results.json and one W&B run."""
    import os
    import subprocess
    import sys

    from tests.conftest import REPO
    from tests.wandb_records import summarize_run

    one_trace = tmp_path / "one.json"
    base = [o for o in TINY_VIT if not o.startswith("logger")]
    trace = "+callbacks.trace._target_=tests.probes.LossTrace"
    proc = ftlab_cli(
        "train", *base, "logger=none", "method=lora", "data.batch_size=16",
        f"hydra.run.dir={tmp_path / 'one'}", trace, f"+callbacks.trace.path={one_trace}",
    )  # fmt: skip
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]

    run_dir, two_trace, port = tmp_path / "two", tmp_path / "two.json", _free_port()
    nodes = []
    for node in range(2):
        env = {
            **os.environ, "HYDRA_FULL_ERROR": "0", "WANDB_MODE": "offline",
            "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "WORLD_SIZE": "2",
            "RANK": str(node), "LOCAL_RANK": "0", "GROUP_RANK": str(node),
            "NODE_RANK": str(node), "LOCAL_WORLD_SIZE": "1", "TORCHELASTIC_RUN_ID": "two-nodes",
        }  # fmt: skip
        args = [
            *base, "logger=wandb", "method=lora", "trainer=ddp_cpu", "trainer.devices=1",
            "trainer.num_nodes=2", "data.batch_size=8", f"hydra.run.dir={run_dir}",
            trace, f"+callbacks.trace.path={two_trace}",
        ]  # fmt: skip
        nodes.append(
            subprocess.Popen(
                [sys.executable, "-m", "ftlab.train", *args],
                cwd=REPO,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )  # fmt: skip
        )
    outputs = [n.communicate(timeout=600)[0] for n in nodes]
    assert [n.returncode for n in nodes] == [0, 0], outputs[0][-2000:] + outputs[1][-2000:]
    assert "GLOBAL_RANK: 0, MEMBER: 1/2" in outputs[0]  # one process group of world size 2
    assert "GLOBAL_RANK: 1, MEMBER: 2/2" in outputs[1]
    assert "test accuracy" in outputs[0] and "test accuracy" not in outputs[1]

    one, two = json.loads(one_trace.read_text()), json.loads(two_trace.read_text())
    assert len(one) == len(two) == 10
    assert one == pytest.approx(two, rel=RTOL), list(zip(one, two, strict=True))
    written = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("results.json"))
    assert [str(p) for p in written] == ["one/results.json", "two/results.json"]
    result = json.loads((run_dir / "results.json").read_text())
    assert result["status"] == "done"
    runs = list(run_dir.rglob("run-*.wandb"))
    assert len(runs) == 1, runs  # one W&B run: node 1 logs nothing of its own
    assert summarize_run(runs[0].parent)["summary"]["test/acc"] == pytest.approx(result["test/acc"])
    print(f"two nodes: losses {two}")


def test_the_slurm_launchers_batch_script_asks_for_the_nodes_tasks_and_gpus(tmp_path):
    """hydra/launcher=slurm with trainer=ddp, 4 devices x 2 nodes: submitit writes the batch
    script before calling sbatch (here a stand-in that refuses, as a machine without a
    cluster would), and the script asks for 2 nodes, a task per GPU, 4 GPUs per node, an
    array of the sweep's jobs, and the warning signal submitit requeues a preempted or
    timed-out job on."""
    import os

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "srun").write_text("#!/bin/sh\nexit 0\n")
    (bin_dir / "sbatch").write_text("#!/bin/sh\necho 'sbatch: no cluster here' >&2\nexit 1\n")
    for tool in bin_dir.iterdir():
        tool.chmod(0o755)
    sweep = tmp_path / "sweep"
    proc = ftlab_cli(
        "train", "-m", "hydra/launcher=slurm", "trainer=ddp", "trainer.devices=4",
        "trainer.num_nodes=2", "method=lora,full", "logger=none", f"hydra.sweep.dir={sweep}",
        env={"PATH": f"{bin_dir}:{os.environ['PATH']}"},
    )  # fmt: skip
    assert proc.returncode != 0 and "sbatch: no cluster here" in proc.stderr
    (script,) = (sweep / ".submitit").glob(".submission_file_*.sh")
    lines = set(script.read_text().splitlines())
    for wanted in (
        "#SBATCH --nodes=2",
        "#SBATCH --ntasks-per-node=4",
        "#SBATCH --gpus-per-node=4",
        "#SBATCH --array=0-1%2",
        "#SBATCH --time=720",
    ):
        assert wanted in lines, f"{wanted} not in {script}"
    assert any(line.startswith("#SBATCH --signal=USR2@") for line in lines)
    assert any(line.startswith("srun ") and "submitit.core._submit" in line for line in lines)
