"""LoRA and DoRA through ftlab on Hugging Face decoders equal peft's own ``get_peft_model``
on the same weights: Llama (grouped-query attention), Qwen2 and GPT-2 (``Conv1D`` layers,
where peft needs ``fan_in_fan_out``). The trainable count is the closed form from the
config. (That frozen parameters stay bit-identical after training is asserted for every
decoder, LoRA and DoRA included, by ``test_hf_families``' run-or-refuse test.)"""

from __future__ import annotations

import pytest
import torch
import transformers
from tests.methods.conftest import (
    NUM_CLASSES,
    TEXTS,
    copy_lora_into_peft,
    count,
    head_count,
    method_from_config,
    train_steps,
)
from tests.methods.test_hf_families import model_dir

from ftlab.backbones import HFBackbone
from ftlab.module import FineTuneModule

#: decoder family -> whether its targeted layers are GPT-2's transposed ``Conv1D``
DECODERS = {"llama": False, "qwen2": False, "gpt2": True}
METHODS = ["lora", "dora"]


@pytest.fixture(scope="module")
def models_root(tmp_path_factory):
    return tmp_path_factory.mktemp("decoders")


def ftlab_module(family: str, method_name: str, root, tmp_path):
    """The module ``model=hf model.name=<dir> method=<method_name>`` trains, and its method
    and the HF weights it started from (before injection)."""
    method = method_from_config(method_name)
    torch.manual_seed(0)
    backbone = HFBackbone(str(model_dir(family, root)), pretrained=False)
    weights = {k: v.clone() for k, v in backbone.model.state_dict().items()}
    module = FineTuneModule(backbone, num_classes=NUM_CLASSES)
    method.apply(module)
    return module, method, weights


def padded(tokenizer, side: str) -> dict[str, torch.Tensor]:
    tokenizer.padding_side = side
    # no token type ids: the MiniLM tokenizer's would be token ids to GPT-2
    batch = dict(tokenizer(TEXTS, padding=True, return_token_type_ids=False, return_tensors="pt"))
    assert not batch["attention_mask"][0].all(), "the first text must be padded"
    return batch


@pytest.mark.parametrize("method_name", METHODS)
@pytest.mark.parametrize("family", DECODERS)
def test_lora_equals_peft_get_peft_model_on_a_decoder(models_root, family, method_name, tmp_path):
    """ftlab's module trains a few steps (so B and DoRA's magnitude are not at their
    initial values); its LoRA weights go, by module path, into peft's own model of the same
    base weights; the last hidden states then agree at every real token, either padding
    side."""
    from peft import LoraConfig, get_peft_model

    module, method, weights = ftlab_module(family, method_name, models_root, tmp_path)
    backbone = module.backbone
    train_steps(module, {**padded(backbone.tokenizer, "right"), "labels": torch.tensor([0, 2])})

    config = transformers.AutoConfig.from_pretrained(model_dir(family, models_root))
    plain = transformers.AutoModel.from_config(config)
    plain.load_state_dict(weights)
    peft_config = LoraConfig(
        r=method.r,
        lora_alpha=method.alpha,
        lora_dropout=0.0,
        target_modules=method.target_modules(backbone),
        use_dora=method.use_dora,
        fan_in_fan_out=DECODERS[family],
    )
    theirs_model = get_peft_model(plain, peft_config).eval()

    ours = copy_lora_into_peft(module, theirs_model)
    assert any("lora_magnitude" in n for n in ours) == (method_name == "dora")
    assert all(p.abs().sum() > 0 for n, p in ours.items() if "lora_B" in n), "B never trained"
    fan_in_fan_out = {
        n: sub.fan_in_fan_out for n, sub in backbone.model.named_modules() if hasattr(sub, "lora_A")
    }
    assert fan_in_fan_out and set(fan_in_fan_out.values()) == {DECODERS[family]}

    module.eval()
    for side in ("right", "left"):
        batch = padded(backbone.tokenizer, side)
        real = batch["attention_mask"].bool()
        # ftlab's positions count real tokens only; peft's model gets the same ones
        positions = (batch["attention_mask"].cumsum(1) - 1).clamp(min=0)
        with torch.no_grad():
            expected = theirs_model(**batch, position_ids=positions).last_hidden_state
            got = backbone.forward_tokens(batch)
        torch.testing.assert_close(got[real], expected[real], rtol=0, atol=1e-6)


def closed_form(config, r: int, dora: bool, gpt2: bool) -> int:
    """r * (in + out) per targeted layer (+ out for DoRA's magnitude), + the head. Targets:
    peft's presets, GPT-2's fused ``c_attn`` (hidden -> 3 hidden) or ``q_proj`` + ``v_proj``
    (hidden -> heads x head_dim, hidden -> key/value heads x head_dim)."""
    hidden = config.hidden_size
    if gpt2:
        shapes = [(hidden, 3 * hidden)]
    else:
        head_dim = getattr(config, "head_dim", None) or hidden // config.num_attention_heads
        shapes = [
            (hidden, config.num_attention_heads * head_dim),
            (hidden, config.num_key_value_heads * head_dim),
        ]
    per_layer = sum(r * (fan_in + fan_out) + (fan_out if dora else 0) for fan_in, fan_out in shapes)
    return config.num_hidden_layers * per_layer + head_count(hidden)


@pytest.mark.parametrize("method_name", METHODS)
@pytest.mark.parametrize("family", DECODERS)
def test_trainable_count_is_the_closed_form_on_a_decoder(
    models_root, family, method_name, tmp_path
):
    module, method, _ = ftlab_module(family, method_name, models_root, tmp_path)
    config = module.backbone.config
    if not DECODERS[family]:
        assert config.num_key_value_heads < config.num_attention_heads  # grouped-query
    expected = closed_form(config, method.r, method.use_dora, DECODERS[family])
    assert count(module) == expected
    assert all("lora_" in n or n.startswith("head.") for n, _ in module.trainable_parameters())
