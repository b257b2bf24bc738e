"""task.packing=true: whole examples in one row without padding, positions restarting at
each. transformers reads the restarts (no attention mask, no cache) as sequence boundaries
and keeps the examples apart for SDPA and eager attention alike: the packed loss equals the
unpacked one, and changing one example changes nothing in the next."""

from __future__ import annotations

import copy

import pytest
import torch
from tests.methods.conftest import method_from_config
from tests.tasks.conftest import lm_backbone, lm_module, move_trainable

from ftlab.errors import MethodNotApplicable
from ftlab.tasks import SFT
from ftlab.tasks.lm import token_loss
from ftlab.tasks.lm_data import IGNORE, Formatter, PackedExamples, SFTCollate, SFTExamples

RECORDS = [
    {"prompt": f"question {i}: " + "and more words " * (i % 3), "response": f"answer {i}" + " so" * (i % 4)}
    for i in range(7)
]  # fmt: skip
ROW = 40  # tokens per packed row: two or three examples each


def examples(backbone, train_on_prompt: bool = False) -> SFTExamples:
    return SFTExamples(RECORDS, Formatter(backbone.tokenizer), 64, train_on_prompt)


def batches(backbone, train_on_prompt: bool = False) -> tuple[dict, dict, PackedExamples]:
    """The same examples as one right-padded batch and as packed rows (padded to a batch)."""
    items = examples(backbone, train_on_prompt)
    collate = SFTCollate(backbone.tokenizer.pad_token_id)
    packed = PackedExamples(items, ROW)
    assert packed.examples == len(items) and 1 < len(packed) < len(items)
    return collate(list(items)), collate([packed[i] for i in range(len(packed))]), packed


@pytest.fixture(scope="module", params=["sdpa", "eager"])
def llama(request, models_root):
    return lm_backbone("llama", models_root, attn_implementation=request.param)


@pytest.mark.parametrize(
    ("method_name", "train_on_prompt"),
    [(None, False), (None, True), ("lora", False), ("prefix", False)],
)
def test_the_packed_loss_equals_the_unpacked_loss(llama, method_name, train_on_prompt):
    """Token-level mean over the same labelled tokens, the task's own training loss (with
    train_on_prompt, an example's first token is no target in either); with prefixes too,
    whose keys every packed example sees (the mask is widened for them)."""
    backbone = copy.deepcopy(llama)
    method = method_from_config(method_name) if method_name else None
    module = lm_module(backbone, method, task=SFT(packing=True, forgetting=None))
    if method is not None:
        move_trainable(module)
    unpacked, packed, _ = batches(backbone, train_on_prompt)
    assert "attention_mask" not in packed and "position_ids" in packed
    counted = [int((b["labels"][:, 1:] != IGNORE).sum()) for b in (unpacked, packed)]
    assert counted[0] == counted[1] > 0
    with torch.no_grad():
        losses = [float(module.task.training_step(module, b)) for b in (unpacked, packed)]
    assert losses[1] == pytest.approx(losses[0], rel=1e-5, abs=1e-5)
    # what the loss would be if the examples saw each other: visibly different
    with torch.no_grad():
        logits = backbone._lm(input_ids=packed["input_ids"]).logits
    leaked, n = token_loss(logits, packed["labels"])
    assert abs(float(leaked / n) - losses[0]) > 1e-2


def test_packed_rows_restart_positions_and_keep_examples_apart(llama):
    _, _, rows = batches(llama, train_on_prompt=True)
    items = examples(llama, train_on_prompt=True)
    row = rows[0]
    parts = rows.rows[0]
    assert len(parts) >= 2
    assert row["input_ids"].tolist() == sum((p["input_ids"].tolist() for p in parts), [])
    assert row["position_ids"].tolist() == sum(
        (list(range(len(p["input_ids"]))) for p in parts), []
    )
    start = 0
    for part in parts:  # no example's first token is predicted from the one before
        n = len(part["input_ids"])
        assert row["labels"][start] == IGNORE
        assert row["labels"][start + 1 : start + n].tolist() == part["labels"][1:].tolist()
        start += n
    assert sum(len(r) for r in rows.rows) == len(items)
    # other tokens in the first example: its logits change, the second's stay
    first = len(parts[0]["input_ids"])
    ids = row["input_ids"][None].clone()
    changed = ids.clone()
    changed[0, 1:first] = torch.randint(1000, 2000, (first - 1,))
    positions = row["position_ids"][None]
    with torch.no_grad():
        before, _ = llama.lm_forward(ids, None, position_ids=positions)
        after, _ = llama.lm_forward(changed, None, position_ids=positions)
    assert (after[0, 1:first] - before[0, 1:first]).abs().max() > 1e-2
    torch.testing.assert_close(after[0, first:], before[0, first:], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("method_name", ["prompt", "prompt_deep"])
def test_a_prompt_method_with_packing_is_refused(llama, method_name):
    method = method_from_config(method_name)
    with pytest.raises(MethodNotApplicable) as refusal:
        SFT(packing=True, forgetting=None).check(llama, method)
    assert str(refusal.value) == (
        f"method={method_name} puts virtual tokens before each example's text, and "
        "task.packing=true puts several examples in one row; set task.packing=false."
    )
    SFT(packing=False, forgetting=None).check(llama, method)  # unpacked: fine
    SFT(packing=True, forgetting=None).check(llama, method_from_config("prefix"))
