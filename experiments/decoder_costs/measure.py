"""What each fine-tuning method costs on a Llama-shaped decoder.

A small random-weight Llama (hidden 256, 4 layers, grouped-query attention with 4 query
and 2 key/value heads, MLP 688 = Llama-2's 2.69x, vocabulary 32,000), built as
``model=hf model.name=<dir> model.pretrained=false`` builds it, under every method config
in ``conf/method``. Per method: trainable parameters and % of total, checkpoint bytes
(the trainable state ftlab saves) and training samples per CPU-second relative to ``full``.

Each figure comes from ``experiments/peft_costs``' own ``cost`` (the model and method
composed as ``ftlab-train`` composes them; fwd + bwd + AdamW on a fixed batch of 8 x 64
tokens, 2 warm-up and 3 timed steps), timed in this process's CPU time on one thread:
on a CPU other work shares, wall-clock time mostly measures how long the other work kept
this process off a core (see the README). The passes are interleaved, ``--rounds`` rounds
over all methods; a method's speed is its fastest round, and the median round's ratio to
``full``'s median is there to show how much that choice matters.

    .venv/bin/python experiments/decoder_costs/measure.py
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import statistics
import time
from pathlib import Path
from types import SimpleNamespace

import torch
import transformers

from ftlab.backbones.assets import minilm_path
from ftlab.config import CONF_DIR
from ftlab.errors import ConfigError, MethodNotApplicable

HERE = Path(__file__).resolve().parent
LLAMA = dict(
    hidden_size=256,
    num_hidden_layers=4,
    num_attention_heads=4,
    num_key_value_heads=2,
    intermediate_size=688,
    vocab_size=32000,
    max_position_embeddings=256,
)
BATCH = 8  # peft_costs' cost() takes 64 tokens per text
METHODS = sorted(p.stem for p in (CONF_DIR / "method").glob("*.yaml"))


def peft_costs():
    """``experiments/peft_costs/measure.py`` as a module (its folder is not a package)."""
    path = HERE.parent / "peft_costs" / "measure.py"
    spec = importlib.util.spec_from_file_location("peft_costs_measure", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def llama_dir(root: Path) -> Path:
    """A Llama config (no weights: ``pretrained=false``) and a tokenizer, as Llama ships
    one: an EOS token and no pad token (ftlab pads with EOS)."""
    path = root / "llama_256x4"
    transformers.LlamaConfig(**LLAMA).save_pretrained(path)
    tokenizer = transformers.AutoTokenizer.from_pretrained(minilm_path())
    tokenizer.eos_token, tokenizer.pad_token = "[SEP]", None
    tokenizer.save_pretrained(path)
    return path


def measure(rounds: int, out: Path) -> tuple[list[dict], dict]:
    costs = peft_costs()
    costs.time = SimpleNamespace(perf_counter=time.process_time)  # CPU time, not wall time
    model = "llama_256x4"
    costs.MODELS[model] = (
        ["model=hf", f"model.name={llama_dir(out)}", "model.pretrained=false"],
        BATCH,
    )
    refused: dict[str, str] = {}
    speeds: dict[str, list[float]] = {m: [] for m in METHODS}
    rows: dict[str, dict] = {}
    load = [os.getloadavg()[0]]
    start = time.time()
    for _ in range(rounds):
        for method in METHODS:
            if method in refused:
                continue
            try:
                row = costs.cost(model, method, out)
            except (MethodNotApplicable, ConfigError) as err:
                refused[method] = str(err)
                continue
            speeds[method].append(row["speed/train_samples_per_s"])
            rows[method] = row
        load.append(os.getloadavg()[0])
    for method, row in rows.items():
        row["speed/train_samples_per_s"] = max(speeds[method])
        row["speed/all_rounds"] = speeds[method]
    full = rows["full"]["speed/train_samples_per_s"]
    full_median = statistics.median(speeds["full"])
    for method, row in rows.items():
        row["speed/relative_to_full"] = row["speed/train_samples_per_s"] / full
        row["speed/median_relative_to_full"] = statistics.median(speeds[method]) / full_median
    table = [rows[m] if m in rows else {"method": m, "refused": refused[m]} for m in METHODS]
    run = {
        "minutes": round((time.time() - start) / 60, 1),
        "load_average_1min": [round(x, 2) for x in load],
    }
    return table, run


def machine() -> str:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor() or platform.machine(),
    )
    return (
        f"{cpu}, {os.cpu_count()} cores, {torch.get_num_threads()} torch threads, "
        f"torch {torch.__version__}, transformers {transformers.__version__}"
    )


def write(rows: list[dict], run: dict, rounds: int) -> str:
    where = machine()
    (HERE / "results.json").write_text(
        json.dumps(
            {"machine": where, "model": LLAMA, "batch": [BATCH, 64], "rounds": rounds, **run,
             "rows": rows},
            indent=2,
        )
    )  # fmt: skip
    lines = [
        f"Machine: {where}; shared with other work (1-min load average "
        f"{min(run['load_average_1min'])}-{max(run['load_average_1min'])} during the "
        f"{run['minutes']} min run), so the ratios are the figure that matters.",
        f"Model: random-weight Llama {LLAMA['hidden_size']} x {LLAMA['num_hidden_layers']} "
        f"layers, {LLAMA['num_attention_heads']} query / {LLAMA['num_key_value_heads']} "
        f"key-value heads, vocabulary {LLAMA['vocab_size']:,}; batch {BATCH} x 64 tokens; "
        f"speed: samples per CPU-second, the fastest of {rounds} interleaved rounds.",
        "",
        "| method | trainable | % of total | checkpoint | samples/CPU-s | vs full | median vs full | rounds, slowest-fastest |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        if "refused" in r:
            lines.append(f"| {r['method']} | refused: {r['refused']} | | | | | | |")
            continue
        every = r["speed/all_rounds"]
        lines.append(
            f"| {r['method']} | {r['params/trainable']:,} | {r['params/trainable_pct']:.2f}% | "
            f"{r['checkpoint/bytes'] / 2**20:.2f} MiB | {r['speed/train_samples_per_s']:.1f} | "
            f"{r['speed/relative_to_full']:.2f}x | {r['speed/median_relative_to_full']:.2f}x | "
            f"{min(every):.1f}-{max(every):.1f} |"
        )
    (HERE / "table.md").write_text("\n".join(lines) + "\n")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--out", default=str(HERE.parents[1] / "logs" / "decoder_costs"))
    args = parser.parse_args()
    torch.set_num_threads(1)  # CPU time of one thread: no spinning while a core is taken
    rows, run = measure(args.rounds, Path(args.out))
    print(write(rows, run, args.rounds))


if __name__ == "__main__":
    main()
