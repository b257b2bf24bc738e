"""The task x method table: every method config on the two generative tasks (task=sft,
task=choice), on tiny random-weight decoders loaded with their LM head (Llama and GPT-2, the
tests' models), or the sentence it is refused with. Writes ``table.md`` next to this file.

Each pair: the task's and the method's checks, ``apply``, two AdamW steps on the task's own
training loss (plus the method's regulariser) over a small batch of records, the frozen
parameters checked bit-identical, then the test path: four new tokens decoded greedily with
the key/value cache (sft; checked token for token against recomputation without it) or
every option scored through the LM head (choice).

    python experiments/tasks/table.py
"""

from __future__ import annotations

import copy
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.methods.conftest import method_from_config  # noqa: E402
from tests.methods.test_hf_families import model_dir  # noqa: E402

from ftlab.backbones import HFBackbone  # noqa: E402
from ftlab.errors import ConfigError, MethodNotApplicable  # noqa: E402
from ftlab.module import FineTuneModule  # noqa: E402
from ftlab.tasks import SFT, Choice  # noqa: E402
from ftlab.tasks.generate import greedy, greedy_uncached  # noqa: E402
from ftlab.tasks.lm_data import (  # noqa: E402
    ChoiceCollate,
    ChoiceExamples,
    Formatter,
    SFTCollate,
    SFTExamples,
)

FAMILIES = ("llama", "gpt2")
RECORDS = [
    {"prompt": "Ann has 4 cats and buys 2 more. How many cats?", "response": "6 cats",
     "answer": "6", "options": ["6 cats", "2 cats"], "label": 0},
    {"prompt": "Is the sun a star?", "response": "yes", "answer": "yes",
     "options": ["no", "yes"], "label": 1},
    {"prompt": "Which lives in the sea?", "response": "an octopus", "answer": "an octopus",
     "options": ["a dog", "an octopus", "a cat"], "label": 1},
]  # fmt: skip
NEW_TOKENS = 4


def tasks():
    return {"sft": SFT(forgetting=None), "choice": Choice(forgetting=None)}


def batches(task_name: str, backbone: HFBackbone) -> tuple[dict, dict]:
    """The training batch and the test batch of the records, as the task's pipeline makes
    them."""
    fmt = Formatter(backbone.tokenizer)
    pad = backbone.tokenizer.pad_token_id
    if task_name == "sft":
        items = list(SFTExamples(RECORDS, fmt, 64, train_on_prompt=False))
        batch = SFTCollate(pad)(items)
        return batch, batch
    train = ChoiceCollate(pad)(list(ChoiceExamples(RECORDS, fmt, 64, gold_only=True)))
    test = ChoiceCollate(pad)(list(ChoiceExamples(RECORDS, fmt, 64, gold_only=False)))
    return train, test


def run_or_refuse(task_name: str, template: HFBackbone, method_name: str) -> str:
    """Ran, or refused with a sentence ("ran", "refused: <it>"); "failed: <what>" is a bug."""
    task = tasks()[task_name]
    backbone = copy.deepcopy(template)
    method = method_from_config(method_name)
    torch.manual_seed(0)
    module = FineTuneModule(backbone, num_classes=task.min_classes, task=task)
    try:
        method.check(backbone.anatomy, backbone.label)
        task.check(backbone, method)
        method.apply(module)
    except (MethodNotApplicable, ConfigError) as refusal:
        said = str(refusal)
        if not said.endswith(".") or "\n" in said:
            return f"failed: a refusal that is not one sentence: {said!r}"
        return f"refused: {said}"
    train_batch, test_batch = batches(task_name, backbone)
    before = {n: p.detach().clone() for n, p in module.named_parameters()}
    trainable = [p for _, p in module.trainable_parameters()]
    if method.trains:
        optimizer = torch.optim.AdamW(trainable, lr=1e-2)
        module.train()
        for _ in range(2):
            optimizer.zero_grad()
            loss = task.training_step(module, train_batch)
            extra = method.regularization(module)
            loss = loss if extra is None else loss + extra
            if not torch.isfinite(loss):
                return f"failed: loss {float(loss)}"
            loss.backward()
            optimizer.step()
    elif trainable:
        return f"failed: method={method_name} trains nothing but left {len(trainable)} trainable"
    names = {n for n, _ in module.trainable_parameters()}
    changed = {n for n, p in module.named_parameters() if not torch.equal(p, before[n])}
    if changed - names:
        return f"failed: frozen parameters changed: {sorted(changed - names)[:3]}"
    if method.trains and not changed:
        return "failed: nothing trained"
    module.eval()
    with torch.no_grad():
        if task_name == "sft":
            args = (
                test_batch["gen_input_ids"],
                test_batch["gen_attention_mask"],
                NEW_TOKENS,
                backbone.stop_token_ids,
                backbone.tokenizer.pad_token_id,
            )
            cached = greedy(backbone, *args)
            if not torch.equal(cached, greedy_uncached(backbone, *args)):
                return "failed: cached decoding differs from recomputation"
        else:
            task.test_step(module, test_batch)
            acc = float(module.test_acc.compute())
            if not 0.0 <= acc <= 1.0:
                return f"failed: accuracy {acc}"
    return "ran"


def main() -> None:
    methods = sorted(p.stem for p in (ROOT / "conf" / "method").glob("*.yaml"))
    torch.set_num_threads(1)
    reasons: dict[str, int] = {}
    lines = [
        "| task | family | " + " | ".join(methods) + " |",
        "|---|---|" + "---|" * len(methods),
    ]
    counts = {"ran": 0, "refused": 0, "failed": 0}
    started = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        templates = {}
        for family in FAMILIES:
            torch.manual_seed(0)
            templates[family] = HFBackbone(
                str(model_dir(family, Path(tmp))), pretrained=False, lm_head=True
            )
        for task_name in ("sft", "choice"):
            for family in FAMILIES:
                template = templates[family]
                cells = []
                for name in methods:
                    outcome = run_or_refuse(task_name, template, name)
                    kind = outcome.partition(":")[0]
                    counts[kind] += 1
                    if kind != "ran":
                        sentence = outcome.partition(": ")[2].replace(template.label, "<model>")
                        number = reasons.setdefault(f"{kind}: {sentence}", len(reasons) + 1)
                        outcome = f"{kind} ({number})"
                    cells.append(outcome)
                lines.append(f"| {task_name} | {family} | " + " | ".join(cells) + " |")
                print(lines[-1], flush=True)
    took = time.time() - started
    failed = f", {counts['failed']} failed" if counts["failed"] else ""
    out = [
        "# Every method config on the generative tasks",
        "",
        f"Written by `python experiments/tasks/table.py` in {took:.0f} s on the 2-core CPU "
        f"({platform.machine()}, one torch thread): task=sft and task=choice on tiny "
        "random-weight decoders loaded with their LM head (`model_dir` of "
        "`tests/methods/test_hf_families.py`: Llama with grouped-query attention, GPT-2 with "
        "its tied head and Conv1D layers). Per pair: the method's and the task's checks, "
        "`apply`, two AdamW steps on the task's training loss over three records, frozen "
        f"parameters checked bit-identical, then {NEW_TOKENS} new tokens decoded greedily "
        "with the cache and checked against recomputation (sft) or every option scored "
        "(choice). "
        f"{counts['ran']} pairs ran, {counts['refused']} were refused with a sentence{failed}.",
        "",
        *lines,
        "",
        "## Refusals (`<model>` stands for the backbone's name)",
        "",
        *(f"{n}. {sentence.partition(': ')[2]}" for sentence, n in reasons.items()),
        "",
    ]
    (Path(__file__).parent / "table.md").write_text("\n".join(out))


if __name__ == "__main__":
    main()
