"""tune=lr: every method at its own learning rate, chosen on validation data (never on the
test split), then every seed at the chosen rate; the choice recorded, the sweep resumable."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from ftlab.records import find_records, load_record
from ftlab.tune import _override_value, _past_edge, _records
from tests.conftest import TINY_CNN, ftlab_cli


def test_a_tuning_record_is_an_override_hydra_reads_back():
    from hydra.core.override_parser.overrides_parser import OverridesParser

    choice = {
        "param": "method.lr", "metric": "val/acc_best", "seeds": [0, 1],
        "grid": [0.001, 0.003], "scores": {"0.001": 0.5, "0.003": 0.625}, "chosen": 0.003,
        "at_edge": True,
    }  # fmt: skip
    parsed = OverridesParser.create().parse_overrides([f"tuning={_override_value(choice)}"])
    value = parsed[0].value()
    assert value["metric"] == "val/acc_best" and value["chosen"] == 0.003
    assert value["at_edge"] is True
    assert value["scores"] == [[0.001, 0.5], [0.003, 0.625]]  # pairs: Hydra keys are names


@pytest.mark.parametrize(
    ("grid", "chosen", "past"),
    [
        ([1e-3, 3e-3, 1e-2], 1e-2, 3e-2),  # the top: one step of the grid's ratio up
        ([1e-3, 3e-3, 1e-2], 1e-3, 3e-4),  # the bottom: one step down
        ([1e-3, 3e-3, 1e-2], 3e-3, None),  # inside: the grid brackets its best
        ([1e-4, 1e-3], 1e-3, 1e-2),
        ([5e-3], 5e-3, None),  # one rate: no step to take
    ],
)
def test_a_choice_at_the_grids_edge_sends_stage_one_one_step_past_it(grid, chosen, past):
    found = _past_edge(grid, {"chosen": chosen})
    assert found == (pytest.approx(past) if past is not None else None)


@pytest.fixture(scope="module")
def tuned_sweep(tmp_path_factory, data_dir):
    root = tmp_path_factory.mktemp("tuned")
    args = [
        "-m", *[o for o in TINY_CNN if o != "callbacks=none"], "callbacks=default",
        "~callbacks.progress_bar", "~callbacks.lr_monitor",
        "method=linear_probe,last_n", "method.lr_grid=[0.001,0.03]", "seed=0,1",
        "tune=lr", "hydra.sweeper.seeds=[0]", "hydra.sweeper.extend=1",
        f"hydra.sweep.dir={root}",
    ]  # fmt: skip
    proc = ftlab_cli("train", *args, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return root, args, proc


@pytest.mark.slow
def test_stage_one_chooses_on_validation_and_stage_two_runs_every_seed_at_the_choice(
    tuned_sweep,
):
    root, _, _ = tuned_sweep
    records = [load_record(p) for p in find_records(root)]
    select = [r for r in records if r.get("stage") == "select"]
    final = [r for r in records if r.get("stage") == "final"]
    # methods x (2 rates + 1 past the edge: a 2-rate grid's choice is always at an edge),
    # methods x seeds
    assert len(select) == 2 * 3 and len(final) == 2 * 2
    assert all(not any(k.startswith("test/") for k in r) for r in select)  # never tested
    assert all("test/acc" in r for r in final)
    tuning = json.loads((root / "tuning.json").read_text())
    for choice in tuning:
        method = next(o for o in choice["configuration"] if o.startswith("method=")).split("=")[1]
        runs = [r for r in select if r["method"] == method]
        by_lr = {
            OmegaConf.load(Path(r["run_dir"]) / "config.yaml").method.lr: r["val/acc_best"]
            for r in runs
        }
        best = max(v for v in by_lr.values() if v == v)  # NaN never wins
        assert by_lr[choice["chosen"]] == best, (method, by_lr)  # a tie: either rate is right
        # the first round's choice was 1e-3 or 3e-2; one more rate, a step of 30x past it
        assert choice["metric"] == "val/acc_best" and len(choice["grid"]) == 3
        assert choice["grid"] in ([3e-05, 0.001, 0.03], [0.001, 0.03, 0.9])
        ran = sorted(OmegaConf.load(Path(r["run_dir"]) / "config.yaml").method.lr for r in runs)
        assert ran == pytest.approx(choice["grid"])
        assert choice["at_edge"] == (choice["chosen"] in (choice["grid"][0], choice["grid"][-1]))
        for record in (r for r in final if r["method"] == method):
            config = OmegaConf.load(Path(record["run_dir"]) / "config.yaml")
            assert config.method.lr == pytest.approx(choice["chosen"])
            assert record["tuning"]["chosen"] == pytest.approx(choice["chosen"])
    assert sorted(r["seed"] for r in final) == [0, 0, 1, 1]
    assert len(_records(root, stage="final", configuration=("method=last_n",))) == 2


@pytest.mark.slow
def test_the_tuned_sweeps_report_shows_the_choice_and_compares_only_final_runs(tuned_sweep):
    root, _, _ = tuned_sweep
    md = (root / "report.md").read_text()
    tuning = {
        next(o for o in c["configuration"] if o.startswith("method=")).split("=")[1]: c
        for c in json.loads((root / "tuning.json").read_text())
    }
    assert "- Training budget: 1 epoch for every run." in md
    assert "Learning rate: chosen per method on validation (`val/acc_best`), never on test" in md
    assert "its 6 selection runs are not in the comparison" in md
    section = md.split("## Learning rate chosen on validation", 1)[1].split("##", 1)[0]
    assert "on seed 0," in section
    for method, choice in tuning.items():
        row = next(ln for ln in section.splitlines() if f"| {method}" in ln)
        chosen = {0.001: "1e-3", 0.03: "3e-2", 0.9: "9e-1", 3e-05: "3e-5"}[choice["chosen"]]
        edge = " *(edge)*" if choice["at_edge"] else ""
        assert row.rstrip().endswith(f"| {chosen}{edge} |"), row
        assert f"**{chosen}: " in row  # the chosen rate's score in bold
        shown = [float(cell.split(":")[1].strip(" *")) for cell in row.split("|")[-3].split(",")]
        scores = [100 * choice["scores"][f"{lr:g}"] for lr in choice["grid"]]
        assert shown == pytest.approx(scores, abs=0.006)  # in the grid's order
    # the comparison: one row per method over its 2 final seeds, none of the selection runs
    table = md.split("## Comparison", 1)[1].split("## Learning rate", 1)[0]
    rows = [ln for ln in table.splitlines() if "| linear_probe |" in ln or "| last_n" in ln]
    assert len(rows) == 2 and all("| 2 |" in ln for ln in rows), rows


@pytest.mark.slow
def test_from_dir_takes_each_rate_from_the_best_run_of_an_earlier_search(tuned_sweep, tmp_path):
    earlier, args, _ = tuned_sweep
    keep = [a for a in args if not a.startswith(("method=", "seed=", "hydra.sweep.dir="))]
    keep = [a for a in keep if not a.startswith(("method.lr_grid=", "hydra.sweeper.seeds="))]
    proc = ftlab_cli(
        "train", *keep, "method=linear_probe", "seed=1", f"hydra.sweeper.from_dir={earlier}",
        f"hydra.sweep.dir={tmp_path}", timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs = [r for r in map(load_record, find_records(earlier)) if r["method"] == "linear_probe"]
    best = max(runs, key=lambda r: r["val/acc_best"])
    best_lr = OmegaConf.load(Path(best["run_dir"]) / "config.yaml").method.lr
    (choice,) = json.loads((tmp_path / "tuning.json").read_text())
    assert choice["from"] == str(earlier) and choice["chosen"] == pytest.approx(best_lr)
    (record,) = [load_record(p) for p in find_records(tmp_path) if "zero_shot" not in str(p)]
    assert record["stage"] == "final" and record["seed"] == 1  # no stage 1: nothing selected
    assert OmegaConf.load(Path(record["run_dir"]) / "config.yaml").method.lr == best_lr


@pytest.mark.slow
def test_the_tuned_sweep_resumes_without_training_again(tuned_sweep):
    root, args, _ = tuned_sweep
    before = {p: p.stat().st_mtime for p in find_records(root)}
    proc = ftlab_cli("train", *args, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert {p: p.stat().st_mtime for p in find_records(root)} == before


@pytest.mark.parametrize(
    ("budget", "expected", "trainer"),
    [
        ("200 steps", "200 steps", {"max_steps": 200, "max_epochs": -1}),
        ("3 epochs", "3 epochs", {"max_epochs": 3, "max_steps": -1}),
        ("1 epoch", "1 epoch", {"max_epochs": 1}),
        ("600 seconds", "600 seconds", {"max_time": {"seconds": 600}}),
        (None, "1 epoch", {"max_epochs": 1}),  # TINY_CNN's trainer.max_epochs=1
    ],
)
def test_a_budget_sets_the_trainer_and_is_recorded_as_said(budget, expected, trainer, make_cfg):
    from ftlab.train import apply_budget

    cfg = make_cfg(*([f"budget={budget}"] if budget else []))
    assert apply_budget(cfg) == expected
    for key, value in trainer.items():
        got = cfg.trainer[key]
        assert (OmegaConf.to_container(got) if hasattr(got, "keys") else got) == value


@pytest.mark.parametrize("budget", ["five steps", "0 epochs", "3 fortnights", "200"])
def test_a_budget_that_is_not_a_number_and_a_unit_is_a_sentence(budget, make_cfg):
    from ftlab.errors import ConfigError
    from ftlab.train import apply_budget

    with pytest.raises(
        ConfigError, match=r"is not a number and a unit; use e.g. budget='200 steps'"
    ):
        apply_budget(make_cfg(f"budget='{budget}'"))


def test_a_method_the_backbone_cannot_take_is_skipped_without_stopping_the_tuned_sweep(
    tmp_path, data_dir
):
    # prompts need a token input, which a CNN lacks: every selection run is skipped, so no
    # rate is chosen; the sweep still finishes, the final run skipped with its reason
    proc = ftlab_cli(
        "train", "-m", *TINY_CNN, "method=prompt", "method.lr_grid=[0.001,0.01]", "tune=lr",
        f"hydra.sweep.dir={tmp_path}", timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    (choice,) = json.loads((tmp_path / "tuning.json").read_text())
    assert choice["chosen"] is None
    assert choice["not_chosen"].startswith(
        "selection runs skipped: method=prompt needs token_input"
    )
    records = [load_record(p) for p in find_records(tmp_path)]
    assert len(records) == 3 and all(r["status"] == "skipped" for r in records)  # 2 rates + final


@pytest.mark.parametrize(
    ("override", "sentence"),
    [
        ("hydra.sweeper.extend=-1", "hydra.sweeper.extend=-1 must be >= 0 (0: never go past"),
        ("method.lr_grid=[0.01,-1]", "method.lr_grid=[0.01, -1.0] of method=linear_probe must"),
        ("hydra.sweeper.extend=two", "hydra.sweeper.extend='two' must be an integer (int)"),
        ("hydra.sweeper.seeds=12", "hydra.sweeper.seeds=12 must be a list of integers"),
        ("hydra.sweeper.factors=[1,x]", "hydra.sweeper.factors=[1, 'x'] must be a list of numbers"),
    ],
)
def test_a_sweep_level_mistake_is_a_sentence_before_any_job(tmp_path, data_dir, override, sentence):
    proc = ftlab_cli(
        "train", "-m", *TINY_CNN, "method=linear_probe", "tune=lr", override,
        f"hydra.sweep.dir={tmp_path}", timeout=300,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert sentence in proc.stderr and "Traceback" not in proc.stderr
    assert not list(tmp_path.glob("*/results.json"))  # nothing trained


def test_the_selection_table_marks_an_edge_and_says_why_nothing_was_chosen():
    import pandas as pd

    from ftlab.reporting.markdown import _selection_section
    from ftlab.reporting.protocol import SELECTION_COLUMNS

    base = {
        "model": "minilm", "data": "rotten_tomatoes", "task": "classify",
        "samples_per_class": 150, "param": "method.lr", "metric": "val/acc_best",
        "seeds": [0], "source": None, "not_chosen": None,
    }  # fmt: skip
    rows = [
        {**base, "method": "lora", "grid": [1e-3, 1e-2, 3e-2],
         "scores": {1e-3: 0.6, 1e-2: 0.7, 3e-2: 0.72}, "chosen": 3e-2},
        {**base, "method": "full", "grid": [1e-4, 3e-4, 1e-3],
         "scores": {1e-4: 0.7, 3e-4: 0.74, 1e-3: 0.6}, "chosen": 3e-4},
        {**base, "method": "vera", "grid": [1e-2], "scores": {}, "chosen": None,
         "not_chosen": "selection runs failed: CUDA out of memory"},
    ]  # fmt: skip
    md = "\n".join(_selection_section(pd.DataFrame(rows, columns=list(SELECTION_COLUMNS))))
    line = {
        m: next(ln for ln in md.splitlines() if f"| {m} |" in ln) for m in ("lora", "full", "vera")
    }
    assert line["lora"].endswith("| 3e-2 *(edge)* |") and "**3e-2: 72.00**" in line["lora"]
    assert line["full"].endswith("| 3e-4 |")  # inside its grid: no mark
    assert "none (selection runs failed: CUDA out of memory); the config's rate" in line["vera"]
    assert "may lie further out (lora)" in md
