"""ftlab-report on a hand-written mini sweep: the numbers, the order, the marks, the files."""

from __future__ import annotations

import json
import math
import os
import struct
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

import ftlab
from ftlab.atomic import atomic_write
from ftlab.errors import FtlabError
from ftlab.report import main
from ftlab.reporting import load_results, summarize, write_report
from ftlab.reporting.fmt import human_bytes, human_count
from ftlab.reporting.summary import pareto_mask

SWEEP = "logs/cifar10/multiruns/2024-05-01_12-00-00"
FEWSHOT = "logs/cifar10/multiruns/2024-05-02_09-30-00"
TOTAL = 3_400_000

# model, method, method_label, trainable params, test accuracy per seed
DONE = [
    ("efficientnet_lite0", "linear_probe", None, 12_810, [0.80, 0.82, 0.84]),
    ("efficientnet_lite0", "last_n", "last_n(n=2)", 1_200_000, [0.85, 0.85, 0.88]),
    ("efficientnet_lite0", "lora", None, 150_000, [0.86, 0.87, 0.91]),
    ("efficientnet_lite0", "full", None, TOTAL, [0.89]),
    ("vit_tiny_patch16_224", "linear_probe", None, 1_930, [0.75]),
]
# Worked out by hand from DONE: mean, sample std (ddof=1) over seeds.
EXPECTED = {
    "linear_probe": (0.82, 0.02),  # deviations -.02, 0, .02 -> (.0004 + .0004) / 2
    "last_n(n=2)": (0.86, math.sqrt(0.0003)),  # -.01, -.01, .02 -> .0006 / 2
    "lora": (0.88, math.sqrt(0.0007)),  # -.02, -.01, .03 -> .0014 / 2
    "full": (0.89, math.nan),  # one seed
}
SKIP_REASON = "prompt tuning needs a token sequence; efficientnet_lite0 is a CNN. Try lora."
FAIL_ERROR = "RuntimeError: shape mismatch in attention\nTraceback (most recent call last):\n  x"


def _write(root: Path, rel: str, record: dict | str) -> Path:
    path = root / rel / "results.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(record if isinstance(record, str) else json.dumps(record))
    return path


def _done(model, method, label, trainable, acc, seed, run_dir, **extra) -> dict:
    record = {
        "model": model,
        "method": method,
        "data": "cifar10",
        "seed": seed,
        "status": "done",
        "val/acc_best": acc + 0.01,
        "test/acc": acc,
        "params/trainable": trainable,
        "params/total": TOTAL if model == "efficientnet_lite0" else 5_500_000,
        "speed/train_samples_per_s": 900.0,
        "memory/peak_bytes": 600 * 2**20,
        "checkpoint/bytes": 4 * trainable,
        "time/fit_s": 10.0 + trainable / 1e5,
        "run_dir": run_dir,
        "overrides": [f"method={method}", f"seed={seed}"],
        "hparams/lr": 1e-3,  # an extra key the report does not know
        **extra,
    }
    if label:
        record["method_label"] = label
    return record


def make_sweep(root: Path) -> Path:
    job = 0
    for model, method, label, trainable, accs in DONE:
        for seed, acc in enumerate(accs):
            run_dir = f"{SWEEP}/{job}"
            _write(root, run_dir, _done(model, method, label, trainable, acc, seed, run_dir))
            job += 1
    _write(root, f"{SWEEP}/{job}", {
        "model": "efficientnet_lite0", "method": "prompt", "data": "cifar10", "seed": 0,
        "status": "skipped", "reason": SKIP_REASON, "run_dir": f"{SWEEP}/{job}",
    })  # fmt: skip
    _write(root, f"{SWEEP}/{job + 1}", {
        "model": "efficientnet_lite0", "method": "prefix", "data": "cifar10", "seed": 0,
        "status": "failed", "error": FAIL_ERROR, "run_dir": f"{SWEEP}/{job + 1}",
    })  # fmt: skip
    _write(root, f"{SWEEP}/{job + 2}", '{"model": "efficientnet_lite0", "test/acc": 0.9')
    return root / "logs"


def add_fewshot(root: Path) -> None:
    """linear_probe and lora at 2 and 8 samples per class, two seeds each."""
    job = 0
    for method, trainable, by_spc in (
        ("linear_probe", 12_810, {2: [0.40, 0.44], 8: [0.60, 0.62]}),
        ("lora", 150_000, {2: [0.50, 0.56], 8: [0.70, 0.74]}),
    ):
        for spc, accs in by_spc.items():
            for seed, acc in enumerate(accs):
                run_dir = f"{FEWSHOT}/{job}"
                record = _done("efficientnet_lite0", method, None, trainable, acc, seed, run_dir)
                record["data/samples_per_class"] = spc
                _write(root, run_dir, record)
                job += 1


N_RUNS = sum(len(accs) for *_, accs in DONE) + 3


@pytest.fixture(scope="module")
def sweep(tmp_path_factory) -> Path:
    return make_sweep(tmp_path_factory.mktemp("sweep"))


@pytest.fixture(scope="module")
def report(sweep, tmp_path_factory) -> dict[str, Path]:
    return write_report(sweep, out=tmp_path_factory.mktemp("report"), title="Mini sweep")


@pytest.fixture(scope="module")
def fewshot(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("fewshot")
    logs = make_sweep(root)
    add_fewshot(root)
    return logs


@pytest.fixture(scope="module")
def fewshot_report(fewshot, tmp_path_factory) -> dict[str, Path]:
    return write_report(fewshot, out=tmp_path_factory.mktemp("fewshot_report"))


def _row(summary: pd.DataFrame, model: str, method: str, spc: float | None = None) -> pd.Series:
    rows = summary[(summary["model"] == model) & (summary["method"] == method)]
    rows = rows[
        rows["samples_per_class"].isna() if spc is None else rows["samples_per_class"] == spc
    ]
    assert len(rows) == 1, f"expected one row for {model}/{method}/{spc}, found {len(rows)}"
    return rows.iloc[0]


# --- loading ----------------------------------------------------------------------------


def test_load_results_has_one_row_per_file_with_status(sweep):
    df = load_results(sweep)
    assert len(df) == N_RUNS
    assert df["status"].value_counts().to_dict() == {
        "done": N_RUNS - 3,
        "skipped": 1,
        "failed": 1,
        "unreadable": 1,
    }
    bad = df[df["status"] == "unreadable"].iloc[0]
    assert bad["results_file"].endswith(f"{SWEEP}/{N_RUNS - 1}/results.json")
    assert "JSONDecodeError" in bad["error"]


def test_load_results_keeps_extra_keys_and_fills_derived_ones(sweep):
    df = load_results(sweep).set_index("run_dir")
    assert (df.loc[f"{SWEEP}/0", "hparams/lr"]) == pytest.approx(1e-3)
    assert df.loc[f"{SWEEP}/3", "method_name"] == "last_n(n=2)"  # method_label wins
    assert df.loc[f"{SWEEP}/3", "method"] == "last_n"
    # params/trainable_pct was absent: 100 * trainable / total.
    assert df.loc[f"{SWEEP}/0", "params/trainable_pct"] == pytest.approx(100 * 12_810 / TOTAL)
    # Keys a skipped run lacks are NaN, not an error.
    skipped = df[df["status"] == "skipped"].iloc[0]
    assert pd.isna(skipped["test/acc"]) and pd.isna(skipped["params/trainable"])


def test_load_results_missing_dir_and_empty_dir_raise(tmp_path):
    with pytest.raises(FtlabError, match="not found"):
        load_results(tmp_path / "nope")
    (tmp_path / "empty" / "run").mkdir(parents=True)
    (tmp_path / "empty" / "run" / "metrics.csv").write_text("a,b\n")
    with pytest.raises(FtlabError, match="no results.json"):
        load_results(tmp_path / "empty")


# --- the summary ------------------------------------------------------------------------


def test_summary_mean_and_sample_std_over_seeds(sweep):
    summary = summarize(load_results(sweep))
    for method, (mean, std) in EXPECTED.items():
        row = _row(summary, "efficientnet_lite0", method)
        assert row["test_acc_mean"] == pytest.approx(mean), method
        if math.isnan(std):
            assert math.isnan(row["test_acc_std"]), method
        else:
            assert row["test_acc_std"] == pytest.approx(std), method
        assert row["val_acc_best_mean"] == pytest.approx(mean + 0.01), method
    lora = _row(summary, "efficientnet_lite0", "lora")
    assert lora["n"] == 3 and lora["seeds"] == [0, 1, 2]
    assert lora["params_trainable"] == 150_000
    assert lora["params_trainable_pct"] == pytest.approx(100 * 150_000 / TOTAL)


def test_summary_has_done_rows_only_sorted_by_model_data_then_accuracy(sweep):
    summary = summarize(load_results(sweep))
    assert list(zip(summary["model"], summary["method"])) == [
        ("efficientnet_lite0", "full"),  # .89
        ("efficientnet_lite0", "lora"),  # .88
        ("efficientnet_lite0", "last_n(n=2)"),  # .86
        ("efficientnet_lite0", "linear_probe"),  # .82
        ("vit_tiny_patch16_224", "linear_probe"),
    ]


def test_summary_marks_pareto_rows_per_model(sweep):
    summary = summarize(load_results(sweep)).set_index(["model", "method"])["pareto"]
    assert summary.to_dict() == {
        ("efficientnet_lite0", "full"): True,
        ("efficientnet_lite0", "lora"): True,
        # lora has fewer trainable parameters and higher accuracy.
        ("efficientnet_lite0", "last_n(n=2)"): False,
        ("efficientnet_lite0", "linear_probe"): True,
        # Beaten by every efficientnet row, but it only competes with its own model.
        ("vit_tiny_patch16_224", "linear_probe"): True,
    }


def test_pareto_mask_on_a_constructed_case():
    points = {  # name: (trainable params, accuracy, on the front?)
        "small": (10, 0.50, True),
        "mid": (100, 0.70, True),
        "mid_worse": (100, 0.60, False),  # same params as mid, lower accuracy
        "big_worse": (1000, 0.65, False),  # more params than mid, lower accuracy
        "big": (1000, 0.80, True),
        "same_acc_more_params": (50, 0.50, False),  # small reaches .50 with fewer
        "twin_a": (5000, 0.90, True),  # exact ties dominate neither each other
        "twin_b": (5000, 0.90, True),
        "no_params": (math.nan, 0.99, False),  # missing values are never marked...
        "no_acc": (5, math.nan, False),  # ...and dominate nothing
    }
    params, acc, expected = zip(*points.values())
    got = dict(zip(points, pareto_mask(list(params), list(acc))))
    assert got == dict(zip(points, expected))


def test_runs_differing_in_trainable_params_are_not_averaged_as_seeds(tmp_path):
    for seed, (trainable, acc) in enumerate([(1000, 0.5), (2000, 0.7)]):
        _write(tmp_path, f"r/{seed}", _done("m", "lora", None, trainable, acc, 0, f"r/{seed}"))
    summary = summarize(load_results(tmp_path))
    assert sorted(summary["method"]) == ["lora [1.0 K]", "lora [2.0 K]"]
    assert list(summary["n"]) == [1, 1]


# --- report.md --------------------------------------------------------------------------


def test_report_md_table(report):
    md = report["report"].read_text()
    assert md.startswith("# Mini sweep\n")
    assert f"{N_RUNS} runs" in md and f"{N_RUNS - 3} done, 1 skipped, 1 failed, 1 unreadable" in md
    lines = [line for line in md.splitlines() if line.startswith("| ")]
    row = {line.split(" | ")[2]: line for line in lines if "efficientnet_lite0" in line}
    # mean [t interval]: 88 ± 4.303 * 2.65 / sqrt(3); lora - probe paired by seed: .06, .05,
    # .07 -> 6 ± 4.303 * 1 / sqrt(3); full, the best, has one seed: nothing to pair over
    lora = (
        "| ★ | efficientnet_lite0 | lora | cifar10 | 3 | 88.00 [81.43, 94.57] | +6.00 [3.52, 8.48]"
    )
    assert lora + " | -3.00 (1 seed) | 89.00 |" in row["lora"]
    linear = (
        "| ★ | efficientnet_lite0 | linear_probe | cifar10 | 3 | 82.00 [77.03, 86.97] | baseline"
    )
    assert linear in row["linear_probe"]
    # off the front, but 2 points under lora (the front at its size) with an interval that
    # crosses 0: not distinguishable from the front on these seeds
    assert row["last_n(n=2)"].startswith("| ☆ | efficientnet_lite0 | last_n(n=2) | cifar10 | 3 |")
    assert "| 89.00 [—] | +9.00 (1 seed) | best |" in row["full"]  # one seed: no interval
    assert "| 150.0 K | 4.41% |" in row["lora"]  # 150_000 / 3_400_000
    assert "| 1.2 M | 35.3% |" in row["last_n(n=2)"]
    assert "| 600.0 MiB | 585.9 KiB |" in row["lora"]  # peak memory, 4 * 150_000 bytes
    assert "samples/class" not in md  # it does not vary here
    table_order = [line.split(" | ")[2] for line in lines if " | cifar10 | " in line]
    assert table_order[:5] == ["full", "lora", "last_n(n=2)", "linear_probe", "linear_probe"]


def test_report_md_lists_skipped_failed_and_unreadable_runs(report):
    md = report["report"].read_text()
    skipped = md.split("## Skipped runs")[1].split("##")[0]
    assert SKIP_REASON in skipped and f"`{SWEEP}/{N_RUNS - 3}`" in skipped
    assert "| efficientnet_lite0 | prompt |" in skipped
    failed = md.split("## Failed runs")[1].split("##")[0]
    assert "RuntimeError: shape mismatch in attention" in failed
    assert "Traceback" not in failed  # the first line only
    assert f"`{SWEEP}/{N_RUNS - 2}`" in failed
    unreadable = md.split("## Unreadable results")[1]
    assert f"{SWEEP}/{N_RUNS - 1}/results.json" in unreadable
    for name in ("acc_vs_params.png", "acc_vs_time.png"):
        assert f"]({name})" in md


# --- plots ------------------------------------------------------------------------------


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path.name} is not a PNG"
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def test_plots_are_real_pngs_and_fewshot_plot_only_when_samples_vary(report):
    assert set(report) == {"csv", "report", "acc_vs_params", "acc_vs_time"}
    for key in ("acc_vs_params", "acc_vs_time"):
        width, height = _png_size(report[key])
        assert width >= 800 and height >= 500, (key, width, height)
        assert report[key].stat().st_size > 20_000, key  # drawn, not a blank canvas
    assert not (report["report"].parent / "acc_vs_samples.png").exists()


def test_fewshot_sweep_gets_rows_per_sample_count_and_its_plot(fewshot, fewshot_report):
    summary = summarize(load_results(fewshot))
    two = _row(summary, "efficientnet_lite0", "lora", spc=2)
    assert two["test_acc_mean"] == pytest.approx(0.53)  # (.50 + .56) / 2
    assert two["test_acc_std"] == pytest.approx(math.sqrt(2 * 0.03**2))  # +-.03 about .53
    assert _row(summary, "efficientnet_lite0", "lora")["test_acc_mean"] == pytest.approx(0.88)
    path = fewshot_report["acc_vs_samples"]
    assert path.name == "acc_vs_samples.png" and path.stat().st_size > 20_000
    _png_size(path)
    md = fewshot_report["report"].read_text()
    assert "| samples/class |" in md and "](acc_vs_samples.png)" in md
    assert "| efficientnet_lite0 | lora | cifar10 | 2 | 2 | 53.00 [14.88, 91.12] |" in md


def test_stale_fewshot_plot_is_removed_when_samples_no_longer_vary(fewshot, sweep, tmp_path):
    assert "acc_vs_samples" in write_report(fewshot, out=tmp_path)
    written = write_report(sweep, out=tmp_path)
    assert "acc_vs_samples" not in written
    assert not (tmp_path / "acc_vs_samples.png").exists()


# --- results.csv ------------------------------------------------------------------------


def test_results_csv_has_every_run_and_key(report):
    csv = pd.read_csv(report["csv"])
    assert len(csv) == N_RUNS
    for key in ("model", "method", "method_label", "test/acc", "params/trainable", "hparams/lr"):
        assert key in csv.columns, key
    lora = csv[csv["method_name"] == "lora"].sort_values("seed")
    assert list(lora["test/acc"]) == [0.86, 0.87, 0.91]
    assert json.loads(lora["overrides"].iloc[0]) == ["method=lora", "seed=0"]


# --- command line -----------------------------------------------------------------------


def test_cli_writes_report_and_prints_table_with_counts(sweep, tmp_path, capsys):
    assert main([str(sweep), "--out", str(tmp_path / "out"), "--title", "CLI run"]) == 0
    out = capsys.readouterr().out
    assert "CLI run" in out and "efficientnet_lite0" in out and "88.00 [81.43, 94.57]" in out
    assert f"{N_RUNS - 3} done, 1 skipped, 1 failed, 1 unreadable" in out
    assert (tmp_path / "out" / "report.md").read_text().startswith("# CLI run\n")


def test_cli_missing_dir_exits_2_naming_it(tmp_path, capsys):
    missing = tmp_path / "no_such_logs"
    assert main([str(missing)]) == 2
    err = capsys.readouterr().err
    assert str(missing) in err and "not found" in err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_cli_dir_without_results_exits_2_naming_it(tmp_path, capsys):
    (tmp_path / "runs" / "2024-01-01").mkdir(parents=True)
    assert main([str(tmp_path / "runs")]) == 2
    err = capsys.readouterr().err
    assert f"no results.json found under {tmp_path / 'runs'}" in err
    assert err.count("\n") == 1
    assert not (tmp_path / "runs" / "report.md").exists()


def test_console_script_exit_code_is_2_in_a_real_process(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(Path(ftlab.__file__).parents[1])}
    missing = tmp_path / "nothing_here"
    proc = subprocess.run(
        [sys.executable, "-m", "ftlab.report", str(missing)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"ftlab-report: error: results directory not found: {missing}"


def test_only_corrupt_results_still_give_a_report(tmp_path, capsys):
    _write(tmp_path, "runs/a", "not json at all")
    assert main([str(tmp_path / "runs")]) == 0
    md = (tmp_path / "runs" / "report.md").read_text()
    assert "No completed runs to compare." in md
    assert "runs/a/results.json" in md.split("## Unreadable results")[1]
    assert not (tmp_path / "runs" / "acc_vs_params.png").exists()


# --- atomic writes ----------------------------------------------------------------------


def test_report_leaves_no_temporary_files(report):
    out = report["report"].parent
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in report.values())
    assert not [p for p in out.iterdir() if p.name.startswith(".") or p.suffix == ".tmp"]


def test_interrupted_write_keeps_the_old_file_and_no_temp_file(tmp_path):
    target = tmp_path / "report.md"
    target.write_text("previous report\n")

    def killed_halfway(f):
        f.write(b"half of a new rep")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_write(target, killed_halfway)
    assert target.read_text() == "previous report\n"
    assert [p.name for p in tmp_path.iterdir()] == ["report.md"]


# --- units ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("n", "text"),
    [(950, "950"), (4_000, "4.0 K"), (1_234_567, "1.2 M"), (999_960, "1.0 M"), (7e9, "7.0 B")],
)
def test_human_count(n, text):
    assert human_count(n) == text


@pytest.mark.parametrize(
    ("n", "text"),
    [(512, "512 B"), (4096, "4.0 KiB"), (1.5 * 2**20, "1.5 MiB"), (3 * 2**30, "3.0 GiB")],
)
def test_human_bytes(n, text):
    assert human_bytes(n) == text


# --- generative tasks: the score follows the task, the zero-shot row is the baseline ----

LM = "logs/train/multiruns/2025-01-01_00-00-00"
SMOL, SMOL_TOTAL = "smollm2-135m", 134_515_008
# sft on asdiv: method, trainable params, (exact match, answered, forgetting) per seed
SFT_RUNS = [
    ("zero_shot", 0, [(0.10, 0.50, 0.0)]),
    ("lora", 460_800, [(0.30, 0.90, 0.10), (0.32, 0.90, 0.12), (0.34, 0.90, 0.14)]),
    ("full", SMOL_TOTAL, [(0.40, 1.0, 0.5), (0.44, 1.0, 0.7)]),
    ("prompt", 7_680, [(0.05, 0.20, 0.0)]),
]
# choice on boolq: method, trainable params, test accuracy per seed
CHOICE_RUNS = [("zero_shot", 0, [0.55]), ("lora", 460_800, [0.70, 0.72])]


def _lm_done(task, data, method, trainable, seed, run_dir, metrics: dict) -> dict:
    """A record as ``train`` writes it for a generative task."""
    return {
        "model": SMOL,
        "method": method,
        "data": data,
        "task": task,
        "score": "test/exact_match" if task == "sft" else "test/acc",
        "seed": seed,
        "status": "done",
        "params/trainable": trainable,
        "params/total": SMOL_TOTAL,
        "speed/train_samples_per_s": None if method == "zero_shot" else 40.0,
        "memory/peak_bytes": 2**30,
        "checkpoint/bytes": None if method == "zero_shot" else 2 * trainable,
        "time/fit_s": 0.0 if method == "zero_shot" else 100.0,
        "run_dir": run_dir,
        **metrics,
    }


def add_sft(root: Path, data: str = "asdiv", runs=SFT_RUNS, prefix: str = "sft") -> None:
    for method, trainable, seeds in runs:
        for seed, (exact, answered, forgetting) in enumerate(seeds):
            run_dir = f"{LM}/{prefix}_{method}_{seed}"
            metrics = {
                "test/exact_match": exact,
                "test/answered": answered,
                "test/loss": 1.5 - exact,
                "test/ppl": math.exp(1.5 - exact),
                "val/loss_best": 1.4 - exact,
                "forgetting/ce_before": 3.0,
                "test/general_ce": 3.0 + forgetting,
                "test/forgetting": forgetting,
            }
            record = _lm_done("sft", data, method, trainable, seed, run_dir, metrics)
            _write(root, run_dir, record)


def add_choice(root: Path, runs=CHOICE_RUNS) -> None:
    for method, trainable, accs in runs:
        for seed, acc in enumerate(accs):
            run_dir = f"{LM}/choice_{method}_{seed}"
            metrics = {"test/acc": acc, "test/loss": 0.7, "val/acc_best": acc + 0.01}
            record = _lm_done("choice", "boolq", method, trainable, seed, run_dir, metrics)
            _write(root, run_dir, record)


def _table_rows(md: str, heading: str | None = None) -> dict[str, str]:
    """The table lines of report.md (under ``heading`` when given), by method."""
    if heading is not None:
        md = md.split(heading, 1)[1].split("\n### ", 1)[0].split("\n## ", 1)[0]
    lines = [line for line in md.splitlines() if line.startswith("| ") and " | " in line]
    return {line.split(" | ")[2]: line for line in lines[1:]}


def _header(md: str, heading: str | None = None) -> list[str]:
    if heading is not None:
        md = md.split(heading, 1)[1]
    line = next(line for line in md.splitlines() if line.startswith("| ★ |"))
    return [cell.strip() for cell in line.strip("|").split("|")]


def test_loader_derives_each_runs_score_direction_and_best_validation_value(tmp_path, sweep):
    add_sft(tmp_path)
    add_choice(tmp_path)
    df = load_results(tmp_path).set_index("run_dir")
    lora = df.loc[f"{LM}/sft_lora_1"]
    assert lora["score_key"] == "test/exact_match" and lora["score_value"] == pytest.approx(0.32)
    assert lora["higher_is_better"]
    assert lora["val_best_key"] == "val/loss_best" and lora["val_best"] == pytest.approx(1.08)
    choice = df.loc[f"{LM}/choice_lora_0"]
    assert (choice["score_key"], choice["val_best_key"]) == ("test/acc", "val/acc_best")
    # a record from before runs named their task and score is a classifier's
    old = load_results(sweep).set_index("run_dir").loc[f"{SWEEP}/0"]
    assert old["score_key"] == "test/acc" and old["score_value"] == pytest.approx(0.80)
    assert old["val_best_key"] == "val/acc_best" and old["higher_is_better"]


def test_sft_panel_scores_exact_match_against_its_zero_shot_row(tmp_path):
    add_sft(tmp_path)
    summary = summarize(load_results(tmp_path))
    assert list(summary["method"]) == ["full", "lora", "zero_shot", "prompt"]  # best first
    lora = _row(summary, SMOL, "lora")
    assert lora["score_mean"] == pytest.approx(0.32) and lora["score_std"] == pytest.approx(0.02)
    assert math.isnan(lora["test_acc_mean"])  # test/acc itself: sft has none
    assert lora["vs_zero_shot"] == pytest.approx(0.22)
    assert lora["forgetting_mean"] == pytest.approx(0.12)
    assert lora["forgetting_std"] == pytest.approx(0.02)
    assert _row(summary, SMOL, "prompt")["vs_zero_shot"] == pytest.approx(-0.05)
    assert _row(summary, SMOL, "zero_shot")["zero_shot"]
    # the untouched model (0 trainable) beats prompt tuning's 7.7 K with a higher score
    assert dict(zip(summary["method"], summary["pareto"])) == {
        "full": True, "lora": True, "zero_shot": True, "prompt": False,
    }  # fmt: skip

    md = write_report(tmp_path, title="SFT")["report"].read_text()
    assert _header(md)[5:11] == [
        "exact match (%)", "vs zero-shot", "vs best", "answered (%)", "forgetting",
        "best val loss",
    ]  # fmt: skip
    rows = _table_rows(md)
    # the zero-shot score is one number for every seed: each seed's difference is to it
    lora = "| 3 | 32.00 [27.03, 36.97] | +22.00 [17.03, 26.97] | -11.00 (n.d., ≈3 seeds) | 90.0"
    assert lora + " | 0.120 [0.070, 0.170] | 1.080 | 460.8 K |" in rows["lora"]
    full = "| 2 | 42.00 [16.59, 67.41] | +32.00 [6.59, 57.41] | best | 100.0"
    assert full + " | 0.600 [-0.671, 1.871] | 0.980 |" in rows["full"]
    zero = "| 1 | 10.00 [—] | baseline | -32.00 [-57.41, -6.59] | 50.0 | 0.000 [—] | 1.300 | 0 |"
    assert zero in rows["zero_shot"]
    assert "| 1 | 5.00 [—] | -5.00 (1 seed) | -35.00 (1 seed) |" in rows["prompt"]
    assert "minus the zero-shot row's, in percentage points" in md
    assert "forgetting: how much the cross-entropy on general text rose" in md
    assert "lower is better" in md
    assert "No zero-shot row" not in md
    assert "### Exact match vs trainable parameters" in md and "Test accuracy vs" not in md


def test_choice_panel_without_zero_shot_says_how_to_add_one(tmp_path):
    add_choice(tmp_path, runs=CHOICE_RUNS[1:])
    md = write_report(tmp_path)["report"].read_text()
    header = _header(md)
    assert header[5] == "test acc (%)" and "best val acc (%)" in header
    assert "vs zero-shot" not in header and "answered (%)" not in header
    assert "| 2 | 71.00 [58.29, 83.71] | 72.00 |" in _table_rows(md)["lora"]
    note = next(line for line in md.splitlines() if line.startswith("No zero-shot row"))
    assert f"for {SMOL} · boolq: add `method=zero_shot` to the sweep" in note


def test_a_mixed_report_has_a_table_per_task_each_naming_its_score(tmp_path):
    make_sweep(tmp_path)  # classification
    add_sft(tmp_path)
    add_choice(tmp_path)
    summary = summarize(load_results(tmp_path))
    choice_lora = summary[(summary["task"] == "choice") & (summary["method"] == "lora")]
    assert choice_lora["vs_zero_shot"].iloc[0] == pytest.approx(0.16)  # .71 - .55
    # sft's zero-shot is not choice's baseline, nor choice's sft's
    assert summary["vs_zero_shot"][summary["task"] == "classify"].isna().all()

    md = write_report(tmp_path)["report"].read_text()
    sft, choice = "### task=sft: exact match", "### task=choice: test acc"
    classify = "### task=classify: test acc"
    assert _header(md, sft)[5:7] == ["exact match (%)", "vs zero-shot"]
    assert _header(md, choice)[5:7] == ["test acc (%)", "vs zero-shot"]
    assert _header(md, classify)[5:7] == ["test acc (%)", "vs linear probe"]
    assert (
        "| 2 | 71.00 [58.29, 83.71] | +16.00 [3.29, 28.71] | best |"
        in _table_rows(md, choice)["lora"]
    )
    assert "| 3 | 88.00 [81.43, 94.57] | +6.00 [3.52, 8.48] |" in _table_rows(md, classify)["lora"]
    assert "### Test score vs trainable parameters" in md

    from ftlab.reporting.plots import _score_axes

    assert _score_axes(summary) == {
        ("choice", "test/acc"): (100.0, "test accuracy (%)"),
        ("classify", "test/acc"): (100.0, "test accuracy (%)"),
        ("sft", "test/exact_match"): (100.0, "exact match (%)"),
    }


def test_a_lower_is_better_score_sorts_and_fronts_the_other_way(tmp_path):
    """sft on data without checkable answers has no exact match: its test loss scores it."""
    for method, trainable, loss in (("a", 10, 2.0), ("b", 100, 1.5), ("c", 1000, 1.8)):
        run_dir = f"{LM}/{method}"
        metrics = {"test/loss": loss, "test/ppl": math.exp(loss), "val/loss_best": loss}
        _write(tmp_path, run_dir, _lm_done("sft", "chat", method, trainable, 0, run_dir, metrics))
    summary = summarize(load_results(tmp_path))
    assert set(summary["score_key"]) == {"test/loss"} and not summary["higher_is_better"].any()
    assert list(summary["method"]) == ["b", "c", "a"]  # lowest loss first
    # b has fewer parameters than c and a lower loss; a is the cheapest
    assert dict(zip(summary["method"], summary["pareto"])) == {"a": True, "b": True, "c": False}
    md = write_report(tmp_path)["report"].read_text()
    assert _header(md)[5] == "test loss" and "| 1 | 1.500 [—] | best |" in _table_rows(md)["b"]
    assert "Lower test loss is better" in md
    assert pareto_mask([10, 100, 1000], [2.0, 1.5, 1.8], higher_is_better=False).tolist() == [
        True, True, False,
    ]  # fmt: skip


def test_a_few_shot_panel_is_read_against_its_models_only_zero_shot_row(tmp_path):
    add_sft(tmp_path, runs=SFT_RUNS[:1])
    lora = _lm_done("sft", "asdiv", "lora", 460_800, 0, f"{LM}/l8", {"test/exact_match": 0.3})
    _write(tmp_path, f"{LM}/l8", {**lora, "data/samples_per_class": 8})
    row = _row(summarize(load_results(tmp_path)), SMOL, "lora", spc=8)
    assert row["vs_zero_shot"] == pytest.approx(0.2)


def test_results_csv_keeps_each_runs_task_and_score(tmp_path):
    add_sft(tmp_path)
    csv = pd.read_csv(write_report(tmp_path)["csv"]).set_index("run_dir")
    lora = csv.loc[f"{LM}/sft_lora_0"]
    assert (lora["task"], lora["score"], lora["score_key"]) == ("sft", *["test/exact_match"] * 2)
    assert lora["score_value"] == pytest.approx(0.30) and lora["test/forgetting"] == 0.10


def test_also_tested_data_gets_a_column_of_its_own(tmp_path):
    """A run scored on more data (also_test=[gsm8k]) records ``gsm8k/test/exact_match``;
    the report shows it beside the run's own score, mean [95% interval] over seeds."""
    add_sft(tmp_path)
    for path in tmp_path.rglob("results.json"):
        record = json.loads(path.read_text())
        record["gsm8k/test/exact_match"] = record["test/exact_match"] / 10
        path.write_text(json.dumps(record))
    md = write_report(tmp_path, title="SFT")["report"].read_text()
    assert _header(md)[5:9] == [
        "exact match (%)", "vs zero-shot", "vs best", "gsm8k: exact match (%)",
    ]  # fmt: skip
    assert "| 32.00 [27.03, 36.97] |" in _table_rows(md)["lora"]
    assert "≈3 seeds) | 3.20 [2.70, 3.70] |" in _table_rows(md)["lora"]


def test_a_results_csv_rewrites_the_same_report_where_the_runs_are_gone(report, tmp_path):
    """A committed study keeps its results.csv, not its run folders: the report is
    rewritten from it with the same comparison."""
    csv = tmp_path / "results.csv"
    csv.write_text(report["csv"].read_text())
    assert main([str(csv), "--title", "Mini sweep"]) == 0

    def comparison(md: str) -> list[str]:
        section = md.split("## Comparison", 1)[1].split("\n## ", 1)[0]
        return [ln for ln in section.splitlines() if ln.startswith("| ")]

    table = comparison(report["report"].read_text())
    assert len(table) > 5 and comparison((tmp_path / "report.md").read_text()) == table
    assert (tmp_path / "acc_vs_params.png").stat().st_size > 20_000
    bad = tmp_path / "other.csv"
    bad.write_text("a,b\n1,2\n")
    with pytest.raises(FtlabError, match="is not a results.csv written by ftlab-report"):
        load_results(bad)
