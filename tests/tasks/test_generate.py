"""Greedy decoding with the key/value cache equals recomputing the whole sequence at every
step, token for token, for every mechanism on Llama, Qwen2 and GPT-2 (the one check that
catches a wrong position or a stale cache: prompts enter the cache once and their positions
count, prefixes join every layer at every step without entering it). A sequence generated
alone equals itself inside a left-padded batch, and a stopped sequence is padded."""

from __future__ import annotations

import pytest
import torch
from tests.methods.conftest import method_from_config
from tests.tasks.conftest import LM_FAMILIES, fresh, left_padded, lm_module, move_trainable

from ftlab.errors import MethodNotApplicable
from ftlab.tasks.generate import decoded, greedy, greedy_uncached

NEW = 6
#: every kind of mechanism: peft's LoRA (and merged), DoRA, two other peft tuners, the three
#: adapters, what unfreezes layers, shallow and deep prompts, prefixes (plain and through
#: the MLP)
MECHANISMS = [
    "lora",
    "lora_merged",
    "dora",
    "ia3",
    "loha",
    "adapter",
    "adapter_pfeiffer",
    "adapter_parallel",
    "full",
    "last_n",
    "prompt",
    "prompt_deep",
    "prefix",
    "prefix_mlp",
]
#: (family, mechanism) -> what its refusal says
REFUSED = {("gpt2", "loha"): "Target module of type <class 'transformers.pytorch_utils.Conv1D'>"}


def generations(backbone, ids, mask, stop=(), cached=True) -> torch.Tensor:
    decode = greedy if cached else greedy_uncached
    return decode(backbone, ids, mask, NEW, list(stop), backbone.tokenizer.pad_token_id)


@pytest.fixture(scope="module")
def untouched(lm_templates) -> dict[str, torch.Tensor]:
    """Each family's generations without a method: what a method must change."""
    out = {}
    for family in LM_FAMILIES:
        backbone = lm_templates[family]
        out[family] = generations(backbone, *left_padded(backbone))
    return out


@pytest.mark.parametrize("mechanism", MECHANISMS)
@pytest.mark.parametrize("family", LM_FAMILIES)
def test_cached_decoding_equals_recomputation_for_every_mechanism(
    lm_templates, untouched, family, mechanism
):
    backbone = fresh(lm_templates, family)
    method = method_from_config(mechanism.removesuffix("_merged"))
    if (family, mechanism) in REFUSED:
        with pytest.raises(MethodNotApplicable, match=REFUSED[family, mechanism]) as refusal:
            lm_module(backbone, method)
        assert str(refusal.value).endswith(".") and backbone.label in str(refusal.value)
        return
    module = lm_module(backbone, method)
    assert move_trainable(module) > 0
    ids, mask = left_padded(backbone)
    cached = generations(backbone, ids, mask)
    assert cached.shape == (len(ids), NEW)
    # the method reaches the output: otherwise equality below would prove nothing
    assert not torch.equal(cached, untouched[family]), f"{mechanism} changed no generation"
    if mechanism == "lora_merged":
        assert method.merge(module) > 0
        assert not any("lora_" in n for n, _ in module.named_parameters())
        torch.testing.assert_close(generations(backbone, ids, mask), cached, rtol=0, atol=0)
    torch.testing.assert_close(
        generations(backbone, ids, mask, cached=False), cached, rtol=0, atol=0
    )
    # each padded prompt alone, unpadded, generates what it generates in the batch
    for row in range(len(ids)):
        if mask[row].all():
            continue
        real = mask[row].bool()
        alone = generations(backbone, ids[row : row + 1, real], mask[row : row + 1, real])
        assert alone[0].tolist() == cached[row].tolist(), f"row {row} alone differs"


def test_generation_stops_at_a_stop_token_and_pads_after_it(lm_templates, untouched):
    """A stop token that one sequence generates early and another never does: the first
    keeps its stop token then pads, the other runs to the end; both decoding paths agree,
    and the text ends before the stop token."""
    backbone = fresh(lm_templates, "llama")
    pad = backbone.tokenizer.pad_token_id
    ids, mask = left_padded(backbone)
    free = untouched["llama"].tolist()
    step, stop = next(
        (k, token)
        for k, token in enumerate(free[0][: NEW - 1])
        if token != pad and token not in free[1] and token not in free[0][:k]
    )
    expected = []
    for row in free:
        end = row.index(stop) + 1 if stop in row else len(row)
        expected.append(row[:end] + [pad] * (len(row) - end))
    for cached in (True, False):
        out = generations(backbone, ids, mask, stop=[stop], cached=cached)
        assert out.tolist() == expected
    assert out[0, step] == stop and (out[0, step + 1 :] == pad).all()
    texts = decoded(backbone.tokenizer, out, [stop])
    assert texts[0] == backbone.tokenizer.decode(free[0][:step], skip_special_tokens=True)
    assert texts[1] == backbone.tokenizer.decode(free[1], skip_special_tokens=True)


def test_generation_ends_when_every_sequence_has_stopped(lm_templates, untouched):
    backbone = fresh(lm_templates, "gpt2")
    ids, mask = left_padded(backbone)
    free = untouched["gpt2"]
    stops = set(free[:, 0].tolist())  # every sequence stops at its first token
    for cached in (True, False):
        out = generations(backbone, ids, mask, stop=stops, cached=cached)
        assert out.tolist() == free[:, :1].tolist()
