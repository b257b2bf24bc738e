"""The method board, untuned beside tuned: what choosing each method's learning rate on
validation changed, read from the four committed results.csv files.

    .venv/bin/ftlab-train -m experiment=method_board_text tune=lr method=<14 methods> \\
        logger=csv hydra.sweep.dir=logs/studies/board_tuned/text/a     # and .../b: the rest
    .venv/bin/ftlab-train -m experiment=method_board_image tune=lr method=<all 28> \\
        logger=csv hydra.sweep.dir=logs/studies/board_tuned/image
    .venv/bin/ftlab-report logs/studies/board_tuned/text --out experiments/method_board/text_tuned
    .venv/bin/ftlab-report logs/studies/board_tuned/image --out experiments/method_board/image_tuned
    .venv/bin/python experiments/method_board/tuned.py       # writes tuned.md here

Per half, one row per method: the untuned board's rate (the config's default) and test
accuracy, the tuned board's rate (chosen on validation, *(edge)* where it is still the
highest or lowest tried) and test accuracy, each with its 95% interval over the seeds; the
tuned row against the tuned linear probe, and tuned against untuned, each paired by seed
(the two boards' runs of one seed share the split and the data order). Rows are in the
tuned board's order, best first.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

from ftlab.config import compose_config
from ftlab.reporting.load import load_results_csv
from ftlab.reporting.protocol import rate
from ftlab.reporting.stats import Paired, mean_ci, paired

HERE = Path(__file__).parent
HALVES = {
    "text": "MiniLM (all-MiniLM-L6-v2) / Rotten Tomatoes, 150 snippets per class, 3 epochs",
    "image": "EfficientNet-Lite0 / Fashion-MNIST (96 px), 30 images per class, 4 epochs",
}
PROBE = "linear_probe"


def by_seed(csv: Path) -> tuple[dict[str, dict[int, float]], dict[str, dict], dict[str, str]]:
    """Per method: its final runs' test accuracy by seed, its tuning record (if tuned), and
    the reason it did not run (if it did not)."""
    df = load_results_csv(csv)
    df = df[df["stage"].fillna("") != "select"]
    scores: dict[str, dict[int, float]] = {}
    tuning: dict[str, dict] = {}
    reasons: dict[str, str] = {}
    for method, group in df.groupby("method", sort=False):
        done = group[group["status"] == "done"]
        if done.empty:
            reasons[method] = (
                str(group["reason"].dropna().iloc[0]) if group["reason"].notna().any() else ""
            )
            continue
        scores[method] = {
            int(s): float(v) for s, v in zip(done["seed"], done["test/acc"], strict=True)
        }
        record = done["tuning"].dropna() if "tuning" in done else ()
        if len(record):
            tuning[method] = json.loads(record.iloc[0])
    return scores, tuning, reasons


def default_rate(method: str) -> float | None:
    return compose_config([f"method={method}"]).method.get("lr")


def _acc(seeds: dict[int, float]) -> str:
    ci = mean_ci(seeds.values())
    if not math.isfinite(ci.low):
        return f"{100 * ci.mean:.2f}"
    return f"{100 * ci.mean:.2f} [{100 * ci.low:.1f}, {100 * ci.high:.1f}]"


def _diff(p: Paired | None) -> str:
    if p is None:
        return "—"
    if not p.has_interval:
        return f"{100 * p.diff:+.2f}"
    text = f"{100 * p.diff:+.2f} [{100 * p.low:+.1f}, {100 * p.high:+.1f}]"
    return f"**{text}**" if p.distinguishable else f"{text} n.d."


def half(name: str) -> list[str]:
    untuned, _, _ = by_seed(HERE / name / "results.csv")
    tuned, tuning, reasons = by_seed(HERE / f"{name}_tuned" / "results.csv")
    probe = tuned.get(PROBE, {})
    order = sorted(tuned, key=lambda m: -mean_ci(tuned[m].values()).mean)
    lines = [
        "| method | untuned lr | untuned test acc (%) | tuned lr | tuned test acc (%) "
        "| tuned vs tuned probe | tuned vs untuned |",
        "|:--|--:|--:|--:|--:|--:|--:|",
    ]
    for method in order:
        choice = tuning.get(method, {})
        chosen = choice.get("chosen")
        grid = [float(g) for g in choice.get("grid") or []]
        edge = len(grid) > 1 and chosen is not None and chosen in (min(grid), max(grid))
        default = default_rate(method)
        lines.append(
            f"| {method} | {rate(default) if default is not None else '—'} "
            f"| {_acc(untuned[method]) if method in untuned else '—'} "
            f"| {rate(chosen) if chosen is not None else '—'}{' *(edge)*' if edge else ''} "
            f"| {_acc(tuned[method])} "
            f"| {'baseline' if method == PROBE else _diff(paired(tuned[method], probe))} "
            f"| {_diff(paired(tuned[method], untuned[method])) if method in untuned else '—'} |"
        )
    out = [*lines]
    if reasons:
        out += ["", f"Did not run on this backbone ({len(reasons)}):", ""]
        out += [f"- `{m}`: {r}" for m, r in sorted(reasons.items())]
    return out


def main() -> int:
    out = [
        "# Method board: untuned beside tuned",
        "",
        "Generated by `experiments/method_board/tuned.py` from the four `results.csv` files in",
        "this folder. Test accuracy: mean over seeds 0-2 with its 95% t interval. *untuned*: every",
        "method at its config's default learning rate. *tuned*: at the rate chosen on validation",
        "(`tune=lr`: stage 1 on seed 0, fit and validate only; *(edge)*: still the highest or",
        "lowest rate tried after up to two steps past the grid). Differences are in points,",
        "paired by seed, with their 95% interval; **bold** where it excludes 0, n.d. where it",
        "does not.",
    ]
    for name, title in HALVES.items():
        if not (HERE / f"{name}_tuned" / "results.csv").is_file():
            print(
                f"{name}_tuned/results.csv is missing: run the tuned sweep first", file=sys.stderr
            )
            return 1
        out += ["", f"## {title}", "", *half(name)]
    (HERE / "tuned.md").write_text("\n".join(out) + "\n")
    print((HERE / "tuned.md").read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
