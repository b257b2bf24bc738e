"""The LM head a generative task predicts with: where the model ties it to the input
embeddings (SmolLM2, and a tiny Llama built the same way) it stays tied whatever the method
does, frozen with the embeddings under LoRA, trained once with them under full; methods that
would train a new head are refused, and last_n trains the last blocks and the final norm."""

from __future__ import annotations

import copy
import functools

import pytest
import torch
from tests.methods.conftest import method_from_config
from tests.tasks.conftest import lm_module

from ftlab import optim
from ftlab.backbones import HFBackbone
from ftlab.errors import MethodNotApplicable
from ftlab.methods import LastN
from ftlab.tasks import SFT, Choice
from ftlab.tasks.lm_data import Formatter, SFTCollate, SFTExamples

RECORDS = [
    {"prompt": "Ann has 4 cats. How many cats has she?", "response": "4"},
    {"prompt": "Lea has 7 shells and finds 2. How many now?", "response": "9"},
]


def tied(backbone: HFBackbone) -> torch.nn.Parameter:
    """The one parameter that is both the input embedding table and the LM head."""
    table = backbone.model.get_input_embeddings().weight
    assert backbone.lm_head.weight is table
    return table


def sft_batch(backbone: HFBackbone) -> dict:
    items = SFTExamples(RECORDS, Formatter(backbone.tokenizer), 64, False)
    return SFTCollate(backbone.tokenizer.pad_token_id)(list(items))


def one_step(module) -> None:
    params = [p for _, p in module.trainable_parameters()]
    optimizer = torch.optim.AdamW(params, lr=1e-2)
    module.train()
    module.task.training_step(module, sft_batch(module.backbone)).backward()
    optimizer.step()
    module.eval()


@pytest.fixture
def tied_llama(lm_templates) -> HFBackbone:
    return copy.deepcopy(lm_templates["tied_llama"])


def test_lora_leaves_the_tied_head_frozen_and_tied(tied_llama):
    table = tied(tied_llama)
    before = table.detach().clone()
    module = lm_module(tied_llama, method_from_config("lora"))
    assert tied(tied_llama) is table and not table.requires_grad
    names = [n for n, _ in module.trainable_parameters()]
    assert names and all("lora_" in n for n in names)
    one_step(module)
    assert torch.equal(table, before)


def test_full_trains_the_tied_head_once_and_keeps_it_tied(tied_llama):
    table = tied(tied_llama)
    before = table.detach().clone()
    method = method_from_config("full")
    module = lm_module(tied_llama, method)
    assert tied(tied_llama) is table and table.requires_grad
    shared = [n for n, p in module.trainable_parameters() if p is table]
    assert shared == ["backbone.model.embed_tokens.weight"]
    groups = optim.param_groups(module, method, lr=1e-3, weight_decay=0.01)
    assert sum(p is table for g in groups for p in g["params"]) == 1
    one_step(module)
    assert tied(tied_llama) is table and not torch.equal(table, before)
    # the checkpoint holds it once, under its first name, and a rebuild ties it again
    state = module.trainable_state_dict()
    assert "backbone.model.embed_tokens.weight" in state
    assert "backbone.lm_head.weight" not in state
    fresh = copy.deepcopy(tied_llama)
    with torch.no_grad():
        tied(fresh).zero_()
    rebuilt = lm_module(fresh, method_from_config("full"))
    rebuilt.load_trainable_state(state)
    assert torch.equal(tied(fresh), table)


def test_frozen_weights_in_bfloat16_stay_tied(models_root):
    from tests.tasks.conftest import tied_llama_dir

    backbone = HFBackbone(
        str(tied_llama_dir(models_root)), pretrained=False, lm_head=True, dtype="bfloat16"
    )
    lm_module(backbone, method_from_config("lora"))
    assert tied(backbone).dtype == torch.bfloat16


@pytest.mark.parametrize("task", [functools.partial(SFT, forgetting=None),
                                  functools.partial(Choice, forgetting=None)])  # fmt: skip
def test_linear_probe_on_an_lm_task_is_refused_with_its_sentence(tied_llama, task):
    task = task()
    with pytest.raises(MethodNotApplicable) as refusal:
        task.check(tied_llama, method_from_config("linear_probe"))
    assert str(refusal.value) == (
        f"method=linear_probe trains a new head on pooled features, and task={task.name} "
        "predicts with tied_llama's own LM head, so there is no new head to train; the "
        "untouched model is the baseline (method=zero_shot)."
    )
    task.check(tied_llama, method_from_config("lora"))  # a method that adapts the model: fine


def test_last_n_trains_the_last_blocks_and_the_final_norm(tied_llama):
    table = tied(tied_llama)
    module = lm_module(tied_llama, LastN(n=1))
    trainable = {n.removeprefix("backbone.") for n, _ in module.trainable_parameters()}
    last = {n for n, _ in tied_llama.named_parameters() if n.startswith("model.layers.1.")}
    assert last and trainable == last | {"model.norm.weight"}
    assert not table.requires_grad  # the tied head is the embedding table: the stem


@pytest.mark.slow
def test_smollm2s_tied_head_under_lora_and_full(data_dir):
    from tests.conftest import found_or_fetched

    from ftlab.backbones.assets import SmolLM2

    path = found_or_fetched(SmolLM2(data_dir))
    backbone = HFBackbone(str(path), lm_head=True)
    table = tied(backbone)
    lora = lm_module(copy.deepcopy(backbone), method_from_config("lora"))
    assert not tied(lora.backbone).requires_grad
    full = lm_module(backbone, method_from_config("full"))
    assert tied(backbone) is table and table.requires_grad
    assert [n for n, p in full.trainable_parameters() if p is table] == [
        "backbone.model.embed_tokens.weight"
    ]
    assert sum(p.numel() for _, p in full.trainable_parameters()) == 134_515_008
