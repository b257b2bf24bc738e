"""ftlab-export: a fine-tuned decoder leaves ftlab as a plain transformers folder (or, for
shallow prompts, peft's prompt-tuning format) that decodes greedily to the same tokens as
ftlab itself; what has no place outside ftlab is refused in a sentence."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import transformers

from ftlab.checkpoints import load_checkpoint
from ftlab.config import register_resolvers
from ftlab.errors import ConfigError
from ftlab.export import export
from ftlab.tasks.generate import greedy
from ftlab.train import build_module, build_parts, train
from tests.conftest import compose, ftlab_cli
from tests.methods.test_hf_families import model_dir

QUESTIONS = ["two plus two is", "the capital of a country is a", "seven times six"]


@pytest.fixture(scope="module")
def tiny_sft(tmp_path_factory):
    """Overrides that train a tiny random Llama on a dozen prompt/response pairs."""
    root = tmp_path_factory.mktemp("export")
    rows = [
        {"q": f"question {i} about {w}", "a": f"answer {i}"} for i, w in enumerate("abcdefghijkl")
    ]
    (root / "qa.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return root, [
        "task=sft", "task.forgetting=null", "task.max_new_tokens=4", "task.max_length=32",
        "model=hf", f"model.name={model_dir('llama', root)}", "model.pretrained=false",
        "data=hf_dataset", "data.source.path=json", f"data.source.data_files={root / 'qa.jsonl'}",
        "data.source.prompt_column=q", "data.source.response_column=a", "data.batch_size=4",
        "trainer.max_epochs=1", "logger=none", "print_config=false",
        "callbacks=default", "~callbacks.progress_bar", "~callbacks.lr_monitor",
    ]  # fmt: skip


@pytest.fixture(scope="module")
def trained(tiny_sft):
    """One checkpoint per method, trained once (with a learning rate that moves it)."""
    root, base = tiny_sft
    runs = {}

    def get(method: str) -> str:
        if method not in runs:
            cfg = compose([*base, f"method={method}", "method.lr=0.05"], root / method)
            runs[method] = train(cfg)["checkpoint/path"]
        return runs[method]

    return get


def ftlab_tokens(ckpt_path: str, batch: dict) -> torch.Tensor:
    """What ftlab itself decodes from the checkpoint (rebuilt as ftlab-eval rebuilds it)."""
    from omegaconf import OmegaConf

    register_resolvers()
    ckpt = load_checkpoint(ckpt_path)
    cfg = OmegaConf.create(ckpt["ftlab"]["config"])
    torch.manual_seed(cfg.seed)
    task, backbone, method = build_parts(cfg)
    module = build_module(cfg, task, backbone, ckpt["ftlab"]["num_classes"])
    method.apply(module)
    module.load_trainable_state(ckpt["state_dict"])
    module.eval()
    return greedy(backbone, batch["input_ids"], batch["attention_mask"], 6, [10**9], 0)


def prompts(folder: Path) -> dict:
    tokenizer = transformers.AutoTokenizer.from_pretrained(folder)
    tokenizer.padding_side = "left"
    return dict(
        tokenizer(QUESTIONS, padding=True, return_token_type_ids=False, return_tensors="pt")
    )


def generate(model, batch: dict, **kwargs) -> torch.Tensor:
    out = model.generate(
        **batch, max_new_tokens=6, min_new_tokens=6, do_sample=False, pad_token_id=0, **kwargs
    )
    return out[:, batch["input_ids"].shape[1] :]


@pytest.mark.parametrize("method", ["lora", "full"])
def test_a_merged_or_fully_trained_model_decodes_the_same_tokens_in_transformers(
    trained, method, tmp_path
):
    done = export(trained(method), tmp_path / "out")
    assert done["kind"] == "merged"
    assert (tmp_path / "out" / "model.safetensors").is_file()
    plain = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "out").eval()
    batch = prompts(tmp_path / "out")
    ours = ftlab_tokens(trained(method), batch)
    assert torch.equal(generate(plain, batch), ours)
    untouched = transformers.AutoModelForCausalLM.from_config(plain.config)
    assert not torch.equal(  # training moved the weights the export holds
        plain.model.layers[0].self_attn.q_proj.weight,
        untouched.model.layers[0].self_attn.q_proj.weight,
    )


def test_shallow_prompts_are_written_in_pefts_prompt_tuning_format(trained, tmp_path):
    """peft 0.21.2's cached generate re-inserts the virtual tokens at every step under
    transformers 5.25 (it looks for past_key_values, now called cache); without the cache
    it decodes ftlab's tokens, one prompt at a time (it does not count left padding)."""
    import peft

    done = export(trained("prompt"), tmp_path / "out")
    assert done["kind"] == "peft_prompt"
    base = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "out").eval()
    model = peft.PeftModel.from_pretrained(base, done["adapter"]).eval()
    assert model.peft_config["default"].num_virtual_tokens == 10
    tokenizer = transformers.AutoTokenizer.from_pretrained(tmp_path / "out")
    for question in QUESTIONS:
        batch = dict(tokenizer([question], return_token_type_ids=False, return_tensors="pt"))
        theirs = generate(model, batch, use_cache=False)
        assert torch.equal(theirs, ftlab_tokens(trained("prompt"), batch))


@pytest.mark.parametrize(
    ("method", "why"),
    [
        ("prefix", "peft's prefix tuning puts them after its virtual tokens"),
        ("prompt_deep", "deep prompts replace every block's prompt positions"),
        ("adapter", "bottleneck adapters are modules"),
    ],
)
def test_what_has_no_place_outside_ftlab_is_refused_and_nothing_is_written(
    trained, method, why, tmp_path
):
    with pytest.raises(ConfigError, match=why):
        export(trained(method), tmp_path / "out")
    assert not (tmp_path / "out").exists() and list(tmp_path.iterdir()) == []


def test_a_classifier_and_an_occupied_folder_are_refused(tmp_path, data_dir):
    from tests.conftest import TINY_CNN

    cfg = compose([*TINY_CNN, "method=linear_probe", "callbacks=default"], tmp_path / "run")
    classifier = train(cfg)["checkpoint/path"]
    with pytest.raises(ConfigError, match="this checkpoint is task=classify"):
        export(classifier, tmp_path / "out")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    with pytest.raises(ConfigError, match="already holds files"):
        export(classifier, tmp_path / "full")


@pytest.mark.slow
def test_the_command_line_says_what_it_wrote_and_refuses_a_misspelt_key(trained, tmp_path):
    proc = ftlab_cli("export", f"ckpt_path={trained('lora')}", f"out={tmp_path / 'out'}")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "as a plain transformers model" in proc.stdout
    bad = ftlab_cli("export", f"ckpt={trained('lora')}", f"out={tmp_path / 'x'}")
    assert bad.returncode == 2 and "Did you mean 'ckpt_path'" in bad.stderr
