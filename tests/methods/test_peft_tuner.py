"""The generic peft method and the configs built on it: each equals peft's own
``get_peft_model`` on the same weights, AdaLoRA's regulariser and rank allocator really
run, tuner layers merge, bad tuner settings get one sentence, and a user's tuner in a
directory of their own runs in a sweep."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from tests.conftest import TINY_CNN, ftlab_cli, quiet_trainer
from tests.methods.conftest import features, method_from_config, run_or_refuse, train_steps

from ftlab.config import CONF_DIR
from ftlab.errors import ConfigError
from ftlab.methods import LoRA, PeftTuner


def _configs(*classes: str) -> list[str]:
    from tests.methods.conftest import _method_config

    names = sorted(p.stem for p in (CONF_DIR / "method").glob("*.yaml"))
    return [n for n in names if _method_config(n)._target_.rpartition(".")[2] in classes]


PEFT_BACKED = _configs("PeftTuner", "LoRA")
TUNERS = _configs("PeftTuner")


def test_every_peft_tuner_config_is_a_few_lines_on_top_of_peft():
    assert {"ia3", "loha", "lokr", "oft", "boft", "hra", "fourierft", "ln_tuning", "vera"} | {
        "adalora",
        "peft",
    } <= set(TUNERS)
    assert {"pissa", "olora", "lora", "dora"} <= set(PEFT_BACKED) - set(TUNERS)


def _their_config(method, backbone):
    """The peft config a peft user would write for what the YAML says: the tuner's options
    (or LoRA's, under peft's names), the preset's modules as names in the bare HF model."""
    from hydra.utils import get_class
    from peft import LoraConfig

    targets = [t.removeprefix("model.") for t in method.target_modules(backbone)]
    if isinstance(method, LoRA):
        return LoraConfig(
            r=method.r,
            lora_alpha=method.alpha,
            lora_dropout=method.dropout,
            target_modules=targets,
            use_dora=method.use_dora,
            use_rslora=method.use_rslora,
            init_lora_weights=method.init,
        )
    options = {k: v for k, v in method.tuner.items() if k != "_target_"}
    if "total_step" in get_class(method.tuner["_target_"]).__dataclass_fields__:
        options.setdefault("total_step", 10)
    return get_class(method.tuner["_target_"])(**options, target_modules=targets)


@pytest.mark.parametrize("name", PEFT_BACKED)
def test_outputs_equal_peft_get_peft_model_on_the_same_weights(build, batches, name):
    """ftlab trains a few steps (adapters off their initial values); peft's own model of
    the same HF weights, from the config a peft user would write, takes ftlab's state under
    the same names (strict: the same layers were wrapped, with the same shapes); the
    trainable names agree and so do the hidden states (scales such as alpha / r, and any
    option ftlab dropped, live outside the state dict). PiSSA's and OLoRA's deterministic
    initialisations also leave the same residual base weights as peft's."""
    from peft import get_peft_model

    module = build("bert")
    plain = copy.deepcopy(module.backbone.model)  # the HF model before any injection
    method = method_from_config(name)
    their_config = _their_config(method, module.backbone)
    method.apply(module)
    backbone = module.backbone
    theirs = get_peft_model(plain, their_config).eval()
    ours = backbone.model
    if name in ("pissa", "olora"):
        for key, value in theirs.base_model.model.state_dict().items():
            if key.endswith("base_layer.weight"):
                torch.testing.assert_close(ours.state_dict()[key], value, msg=key)
    ours_trainable = {n for n, p in ours.named_parameters() if p.requires_grad}
    theirs_trainable = {
        n.removeprefix("base_model.model.") for n, p in theirs.named_parameters() if p.requires_grad
    }
    assert ours_trainable == theirs_trainable and ours_trainable
    train_steps(module, batches["bert"], steps=2)
    theirs.base_model.model.load_state_dict(ours.state_dict(), strict=True)
    inputs = {k: v for k, v in batches["bert"].items() if k != "labels"}
    module.eval()
    with torch.no_grad():
        torch.testing.assert_close(
            ours(**inputs).last_hidden_state, theirs(**inputs).last_hidden_state
        )


def test_adalora_regulariser_equals_peft_and_enters_the_training_loss(build, batches):
    """peft adds AdaLoRA's orthogonality term to a model output's ``loss``: on a wrapper
    whose loss is 0 it is exactly the term, which ftlab adds to the training loss."""
    from peft import AdaLoraModel

    class ZeroLoss(torch.nn.Module):
        def __init__(self, model):
            super().__init__()
            self.model = model

        def forward(self, **inputs):
            out = self.model(**inputs)
            return SimpleNamespace(loss=out.last_hidden_state.sum() * 0)

    module = build("bert")
    plain = copy.deepcopy(module.backbone.model)
    method = method_from_config("adalora")
    config = _their_config(method, module.backbone)
    method.apply(module)
    train_steps(module, batches["bert"], steps=2)  # P and Q away from their init
    theirs = AdaLoraModel(ZeroLoss(plain), config, "default")
    theirs.model.model.load_state_dict(module.backbone.model.state_dict())
    inputs = {k: v for k, v in batches["bert"].items() if k != "labels"}
    term = theirs(**inputs).loss
    ours = method.regularization(module)
    assert ours is not None and ours > 0
    torch.testing.assert_close(ours, term)


def test_adalora_regulariser_is_in_the_loss_a_trainer_trains(build, batches, tmp_path):
    from torch.utils.data import DataLoader

    method = method_from_config("adalora")
    module = build("bert", method)
    batch = batches["bert"]
    train_steps(module, batch, steps=2)
    for sub in module.modules():
        if isinstance(sub, torch.nn.Dropout):
            sub.p = 0.0
    module.train()
    with torch.no_grad():
        cross_entropy = module.loss_fn(module(batch).float(), batch["labels"])
        expected = cross_entropy + method.regularization(module)
    assert expected > cross_entropy
    trainer = quiet_trainer(tmp_path, max_steps=1, callbacks=[method])
    trainer.fit(module, train_dataloaders=DataLoader([batch], batch_size=None))
    torch.testing.assert_close(trainer.callback_metrics["train/loss"], expected)


@pytest.mark.parametrize("name", TUNERS)
def test_tuner_layers_merge_into_plain_layers_or_say_why_not(build, batches, name):
    method = method_from_config(name)
    module = build("vit", method)
    train_steps(module, batches["vit"], steps=2)
    expected = features(module, batches["vit"])
    try:
        merged = method.merge(module)
    except ConfigError as refusal:
        assert "cannot merge" in str(refusal) and "merge_lora=false" in str(refusal)
        return
    from peft.tuners.tuners_utils import BaseTunerLayer

    assert merged > 0
    assert not any(isinstance(m, BaseTunerLayer) for m in module.modules())
    torch.testing.assert_close(features(module, batches["vit"]), expected, rtol=1e-4, atol=1e-4)


def test_labels_keep_the_size_knob():
    assert method_from_config("ia3").label == "ia3"
    assert method_from_config("loha").label == "loha(r=8)"
    assert method_from_config("adalora").label == "adalora(init_r=12)"
    assert method_from_config("pissa").label == "pissa(r=8)"
    assert PeftTuner(tuner={"_target_": "peft.HRAConfig", "r": 4}, targets="mlp").label == (
        "peft(r=4,mlp)"
    )


@pytest.mark.parametrize(
    ("tuner", "targets", "message"),
    [
        (
            {"_target_": "peft.PrefixTuningConfig"},
            "default",
            "is a prompt-learning config, which adds tokens instead of layers; use "
            "method=prompt or method=prefix",
        ),
        ({"_target_": "peft.IA3Confg"}, "default", "Did you mean 'peft.IA3Config'"),
        ({"_target_": "torch.nn.Linear"}, "default", "is not a peft config class"),
        ({"r": 4}, "default", "must be a mapping with a _target_"),
    ],
    ids=["prompt learning", "misspelt class", "not a config", "no target"],
)
def test_a_bad_tuner_is_one_sentence_naming_what_would_work(tuner, targets, message):
    with pytest.raises(ConfigError, match="peft.IA3Config") as raised:
        PeftTuner(tuner=tuner, targets=targets)
    assert message in str(raised.value)


def test_a_bad_tuner_option_is_refused_before_anything_is_built(build):
    with pytest.raises(ConfigError, match=r"method.tuner.rank is not an option of peft's Lo"):
        PeftTuner(tuner={"_target_": "peft.LoHaConfig", "rank": 4})
    with pytest.raises(ConfigError, match=r"valid: .*alpha, .*, r, .*Did you mean"):
        PeftTuner(tuner={"_target_": "peft.LoKrConfig", "alhpa": 4})
    # a value peft's own checks refuse, when the config is built on the backbone
    with pytest.raises(ConfigError, match=r"peft's AdaLoraConfig refuses these settings"):
        PeftTuner(
            tuner={"_target_": "peft.AdaLoraConfig", "total_step": 8, "tinit": 5, "tfinal": 5}
        ).apply(build("vit"))


def test_a_misspelt_preset_is_refused_when_applied(build):
    with pytest.raises(ConfigError, match=r"method.targets='atention' is not a preset.*Did you"):
        PeftTuner(tuner={"_target_": "peft.LoHaConfig"}, targets="atention").apply(build("vit"))


@pytest.mark.slow
def test_adalora_allocates_its_rank_budget_in_a_run_and_ftlab_eval_rebuilds_it(tmp_path):
    """Through ftlab-train: AdaLoRA's budget falls from init_r to target_r per layer over
    the fit (peft's allocator, called after each optimizer step, zeroes the rest of the
    singular values E, which would otherwise all have trained away from 0); ftlab-eval
    rebuilds the run and reproduces its test accuracy."""
    run = tmp_path / "run"
    with_checkpoints = [o for o in TINY_CNN if o not in ("callbacks=none", "trainer.max_epochs=1")]
    done = ftlab_cli(
        "train",
        *with_checkpoints,
        "method=adalora",
        "trainer.max_epochs=2",
        f"hydra.run.dir={run}",
    )
    assert done.returncode == 0, done.stderr[-2000:]
    record = json.loads((run / "results.json").read_text())
    assert record["method"] == "adalora" and record["method_label"] == "adalora(init_r=12)"
    state = torch.load(run / "checkpoints" / "last.ckpt", weights_only=False)["state_dict"]
    singular = [v for k, v in state.items() if "lora_E" in k]
    assert singular, "no AdaLoRA layer in the checkpoint"
    kept = sum(int((e != 0).sum()) for e in singular)
    assert 0 < kept <= 8 * len(singular) < 12 * len(singular)
    evaluated = ftlab_cli(
        "evaluate",
        f"ckpt_path={run / 'checkpoints' / 'best.ckpt'}",
        f"hydra.run.dir={tmp_path / 'eval'}",
    )
    assert evaluated.returncode == 0, evaluated.stderr[-2000:]
    result = json.loads((tmp_path / "eval" / "eval.json").read_text())
    assert result["test/acc"] == pytest.approx(record["test/acc"])


@pytest.mark.slow
def test_a_users_own_tuner_runs_in_a_sweep_from_their_own_config_directory(tmp_path):
    """No Python: a YAML in the user's directory, found through hydra.searchpath, swept
    next to a shipped method; each job records its own method name."""
    mine = tmp_path / "my_conf" / "method"
    mine.mkdir(parents=True)
    (mine / "my_tuner.yaml").write_text(
        "defaults:\n  - peft\n  - _self_\nname: my_tuner\n"
        "tuner:\n  _target_: peft.LoKrConfig\n  r: 4\n  alpha: 8\n"
    )
    sweep = tmp_path / "sweep"
    done = ftlab_cli(
        "train",
        "-m",
        *TINY_CNN,
        f"hydra.searchpath=[file://{tmp_path / 'my_conf'}]",
        "method=my_tuner,ia3",
        f"hydra.sweep.dir={sweep}",
    )
    assert done.returncode == 0, done.stderr[-2000:]
    records = [json.loads(p.read_text()) for p in sorted(Path(sweep).glob("*/results.json"))]
    assert {(r["method"], r["method_label"], r["status"]) for r in records} == {
        ("my_tuner", "my_tuner(r=4)", "done"),
        ("ia3", "ia3", "done"),
    }


def test_a_tuner_whose_layers_fail_on_the_backbones_input_is_refused_when_built(tmp_path):
    """peft's OFT unfolds any 4-D input as a convolution's, so on ConvNeXt-T's Linear MLP,
    which reads channels-last [B, H, W, C] tokens, its layers would fail in the first step:
    the tuner is tried on the backbone's own example input when it is built."""
    from tests.methods.test_timm_families import _batch, template

    outcome = run_or_refuse(template("convnext"), "oft", _batch("convnext"), tmp_path)
    assert outcome.startswith("refused: method=oft (peft's OFTModel) builds layers in")
    assert "fail on its input" in outcome
    assert run_or_refuse(template("convnext"), "ia3", _batch("convnext"), tmp_path) == "ran"
