"""Run a generative-task study the way a comparison should be run: each method's learning
rate picked on validation data (one seed, a grid of three), then every method at its pick
on three seeds, with the untouched model (zero_shot) on the same seeds.

    OMP_NUM_THREADS=1 python experiments/lm_study.py sft_math       # or boolq_choice
    python experiments/lm_study.py sft_math --report-only            # re-write the report
    python experiments/lm_study.py boolq_choice --fixed              # no stage 1 (see below)
    python experiments/lm_study.py sft_math --methods=lora,full      # a subset

``--fixed`` skips stage 1 and trains every method at the centre of its grid: a third of the
CPU time, for a study that asks "does a method beat the untouched model?" rather than "which
method wins?" (the second needs stage 1; ``lr_selection.md`` says which was done).

Every job is the real ``ftlab-train`` command line (shown as it runs), so each stage can be
rerun by hand; a finished job is not trained again. Writes, in ``experiments/<study>/``:
``lr_selection.md`` (each grid, the validation scores, the pick), and the report of the
three-seed runs (``report.md``, ``results.csv``, plots).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: per method, three learning rates a factor ~3 apart around what suits a short budget
GRIDS = {
    "lora": (3e-4, 1e-3, 3e-3),
    "adapter": (3e-4, 1e-3, 3e-3),
    "prompt": (3e-3, 1e-2, 3e-2),
    "prompt_deep": (1e-3, 3e-3, 1e-2),
    "prefix": (1e-3, 3e-3, 1e-2),
    "full": (1e-5, 3e-5, 1e-4),
    "last_n": (3e-5, 1e-4, 3e-4),
}
SEEDS = (0, 1, 2)
#: the study runs the untouched model itself (final/zero_shot, every seed): a method's
#: sweep need not add its own baseline
OWN_BASELINE = ("+hydra.callbacks.sweep_summary.zero_shot=false",)


def ftlab_train(*overrides: str) -> None:
    cmd = [str(Path(sys.executable).with_name("ftlab-train")), *overrides]
    print("$", " ".join(cmd[1:]), flush=True)
    subprocess.run(cmd, check=False, cwd=ROOT)


def records(folder: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(folder.rglob("results.json"))]


def best_key(record: dict) -> str:
    return next(k for k in record if k.startswith("val/") and k.endswith("_best"))


def methods_of(study: str) -> list[str]:
    text = (ROOT / "conf" / "experiment" / f"{study}.yaml").read_text()
    line = next(ln for ln in text.splitlines() if ln.strip().startswith("method:"))
    return [m.strip() for m in line.split(":", 1)[1].split(",")]


def select(study: str, method: str, work: Path) -> tuple[float, list[str]]:
    """Stage 1: the grid on seed 0; returns the learning rate with the best validation
    score and the table rows saying so."""
    folder = work / "stage1" / method
    lrs = ",".join(f"{lr:g}" for lr in GRIDS[method])
    ftlab_train(
        "-m", f"experiment={study}", f"method={method}", f"method.lr={lrs}", "seed=0",
        "test=false", "logger=csv", f"hydra.sweep.dir={folder}", *OWN_BASELINE,
    )  # fmt: skip
    done = [r for r in records(folder) if r.get("status") == "done"]
    if not done:
        raise SystemExit(f"{method}: no stage-1 run finished under {folder}")
    key = best_key(done[0])
    lower = "loss" in key
    scored = sorted(done, key=lambda r: r[key] if lower else -r[key])
    lr_of = {id(r): _lr(r) for r in done}
    pick = lr_of[id(scored[0])]
    cells = [
        f"{lr_of[id(r)]:g}: {r[key]:.4f}{' (picked)' if r is scored[0] else ''}"
        for r in sorted(done, key=lambda r: lr_of[id(r)])
    ]
    return pick, [f"| {method} | {key} | {' · '.join(cells)} | {pick:g} |"]


def _lr(record: dict) -> float:
    config = (Path(record["run_dir"]) / "config.yaml").read_text()
    line = next(ln for ln in config.splitlines() if ln.strip().startswith("lr:"))
    return float(line.split(":", 1)[1])


def run(
    study: str, report_only: bool = False, fixed: bool = False, only: list[str] | None = None
) -> None:
    work = ROOT / "logs" / "studies" / study
    out = ROOT / "experiments" / study
    out.mkdir(parents=True, exist_ok=True)
    final = work / "final"
    if not report_only:
        rows = ["| method | chosen on | validation score per learning rate (seed 0) | picked |",
                "|---|---|---|---|"]  # fmt: skip
        for method in methods_of(study):
            if only and method not in only and method != "zero_shot":
                continue
            if method == "zero_shot":
                ftlab_train(
                    "-m", f"experiment={study}", "method=zero_shot",
                    f"seed={','.join(map(str, SEEDS))}", "logger=csv",
                    f"hydra.sweep.dir={final / method}",
                )  # fmt: skip
                continue
            if fixed:
                pick = GRIDS[method][1]
                rows.append(f"| {method} | not tuned (--fixed) | - | {pick:g} |")
            else:
                pick, table = select(study, method, work)
                rows += table
            ftlab_train(
                "-m", f"experiment={study}", f"method={method}", f"method.lr={pick:g}",
                f"seed={','.join(map(str, SEEDS))}", "logger=csv",
                f"hydra.sweep.dir={final / method}", *OWN_BASELINE,
            )  # fmt: skip
        how = (
            "Stage 1 was skipped (`--fixed`): every method trained at the centre of its grid "
            "in `experiments/lm_study.py`, untuned, on seeds 0, 1, 2."
            if fixed
            else "Stage 1 of `experiments/lm_study.py`: three learning rates per method, seed "
            "0, scored on the validation split (never the test split); stage 2 ran every "
            "method at its pick on seeds 0, 1, 2."
        )
        (out / "lr_selection.md").write_text(
            f"# {study}: each method's learning rate\n\n{how}\n\n" + "\n".join(rows) + "\n"
        )
    subprocess.run(
        [str(Path(sys.executable).with_name("ftlab-report")), str(final)], check=True, cwd=ROOT
    )
    for name in ("report.md", "results.csv", "acc_vs_params.png", "acc_vs_time.png"):
        if (final / name).is_file():
            shutil.copy(final / name, out / name)


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    flags = sys.argv[2:]
    subset = next((f.split("=", 1)[1] for f in flags if f.startswith("--methods=")), "")
    run(
        sys.argv[1],
        report_only="--report-only" in flags,
        fixed="--fixed" in flags,
        only=[m for m in subset.split(",") if m] or None,
    )
