"""Bad input ends with one clear message (the bad value, what would be valid), a non-zero
exit, no traceback and nothing half-written. One table, so the list is easy to extend:
a case may name a set-up that writes the files it needs and returns more overrides."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import pytest

from tests.conftest import TINY_CNN, ftlab_cli
from tests.data.conftest import write_images

pytestmark = pytest.mark.slow  # one process each (~9 s of imports)


class Case(NamedTuple):
    id: str
    entry: str  # train | evaluate | data_cli (ftlab-data)
    overrides: list[str]
    code: int  # Hydra's own config-group errors exit 1, ftlab's exit 2
    fragments: list[str]  # "{tmp}" stands for the test's tmp_path
    setup: Callable[[Path, Callable[[str], Path]], list[str]] | None = None


# -- set-ups: each writes what its case needs under tmp and returns overrides -------------
def pets(tmp: Path, empty_class: bool = False) -> Path:
    for name, value in (("cat", 40), ("dog", 120), ("owl", 200)):
        write_images(tmp / "pets" / "train" / name, 6, value)
    if empty_class:
        (tmp / "pets" / "train" / "eel").mkdir()
        (tmp / "pets" / "train" / "eel" / "notes.txt").write_text("no images here")
    return tmp / "pets"


def text_csv(tmp: Path, train: str, val: str | None = None) -> list[str]:
    (tmp / "train.csv").write_text(train)
    out = ["model=minilm", "data=text_csv", f"data.source.train_path={tmp / 'train.csv'}"]
    if val is not None:
        (tmp / "val.csv").write_text(val)
        out.append(f"data.source.val_path={tmp / 'val.csv'}")
    return out


def empty_folder(tmp: Path, _) -> list[str]:
    (tmp / "empty" / "train").mkdir(parents=True)
    return [f"data.source.root={tmp / 'empty'}"]


def junk_checkpoint(tmp: Path, _) -> list[str]:
    (tmp / "junk.ckpt").write_bytes(b"PK\x03\x04 not really a zip")
    return [f"ckpt_path={tmp / 'junk.ckpt'}"]


def pet_shards(tmp: Path, _) -> list[str]:
    """Shards of the pets folder, written as ``ftlab-data optimize`` writes them."""
    from ftlab.data import ClassificationDataModule, ImageFolder
    from ftlab.data.streaming import write_shards

    write_shards(ClassificationDataModule(ImageFolder(pets(tmp))), tmp / "shards", workers=1)
    return [f"data.source.input_dir={tmp / 'shards'}"]


def no_gpu(tmp: Path, _) -> list[str]:
    """For the cases about a machine without a GPU."""
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    return []


def occupied(tmp: Path, _) -> list[str]:
    (tmp / "shards").mkdir()
    (tmp / "shards" / "notes.txt").write_text("mine")
    return [f"out={tmp / 'shards'}"]


ROWS = "".join(f"{t},{lab}\n" for t, lab in [("good", "pos"), ("bad", "neg")] * 4)


def decoder_records(tmp: Path, _=None, bad_gold: bool = False) -> list[str]:
    """A tiny random Llama (its tokenizer has no chat template) and a JSON-lines file of
    yes/no questions with answers, options and the gold option's index."""
    from tests.methods.test_hf_families import model_dir

    rows = [
        {"question": f"Is {i} even?", "answer": ["no", "yes"][i % 2 == 0],
         "options": ["no", "yes"], "gold": int(i % 2 == 0)}
        for i in range(12)
    ]  # fmt: skip
    if bad_gold:
        rows[3]["gold"] = 5
    (tmp / "qa.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    return [
        "model=hf", f"model.name={model_dir('llama', tmp)}", "model.pretrained=false",
        "data=hf_dataset", "data.source.path=json", f"data.source.data_files={tmp / 'qa.jsonl'}",
    ]  # fmt: skip


QA = ["task=sft", "data.source.prompt_column=question", "data.source.response_column=answer"]
DECODER_NEEDED = (
    "task=sft trains and scores through a decoder's own LM head, and {} is {}; use a decoder: "
    "model=smollm2, or model=hf model.name=<a GPT-2, Llama, Qwen, Gemma, Mistral or Phi model>."
)


CASES = [
    # -- names --------------------------------------------------------------------------
    Case("unknown method", "train", ["method=lorax"], 1, ["method/lorax", "Available options", "lora"]),
    Case("unknown model", "train", ["model=resnet"], 1, ["model/resnet", "Available options"]),
    Case("unknown data", "train", ["data=mnist"], 1, ["data/mnist", "fashion_mnist"]),
    Case("unknown logger", "train", ["logger=wandbx"], 1, ["logger/wandbx", "wandb"]),
    Case(
        "method setting that does not exist", "train", ["method=lora", "+method.rank=16"], 2,
        ["method.rank is not a setting of method=lora", "alpha", "r, targets"],
    ),
    Case(
        "streaming without shards", "train", ["data=streaming"], 2,
        ["data=streaming needs data.source.input_dir", "ftlab-data optimize data=<data config>"],
    ),
    Case(
        "streaming from a folder optimize did not write", "train", ["data=streaming"], 2,
        ["{tmp} has no ftlab.json: it was not written by `ftlab-data optimize"],
        lambda tmp, _: [f"data.source.input_dir={tmp}"],
    ),
    Case(
        "few-shot control on streamed shards", "train",
        ["data=streaming", "data.samples_per_class=5"], 2,
        ["data.samples_per_class=5 selects with every label in view",
         "ftlab-data optimize data=<data config> data.samples_per_class=5 out=<dir>"],
        pet_shards,
    ),
    Case(
        "optimize without out=", "data_cli", ["optimize", "data=fashion_mnist"], 2,
        ["ftlab-data: optimize needs out=<folder or cloud URL>"],
    ),
    Case(
        "optimize key misspelt", "data_cli", ["optimize", "data=fashion_mnist", "outdir=x"], 2,
        ["'outdir=x' is neither a data override", "out=, chunk_bytes=, workers=, overwrite=",
         "Did you mean 'out'"],
    ),
    Case(
        "optimize into a folder that holds files", "data_cli",
        ["optimize", "data=fashion_mnist", "data.samples_per_class=2"], 2,
        ["out={tmp}/shards already holds files", "overwrite=true"],
        occupied,
    ),
    Case(
        "optimize streamed shards again", "data_cli", ["optimize", "data=streaming"], 2,
        ["data=streaming is already shards"],
        lambda tmp, trained: [*pet_shards(tmp, trained), f"out={tmp / 'again'}"],
    ),
    Case(
        "hf_dataset file that does not exist", "train",
        ["model=minilm", "data=hf_dataset", "data.source.path=parquet",
         "data.source.data_files=/nonexistent/reviews.parquet"],
        2, ["data.source.data_files names /nonexistent/reviews.parquet, which does not exist"],
    ),
    Case(
        "peft tuner class misspelt", "train", ["method=peft", "method.tuner._target_=peft.IA3Confg"],
        2, ["method.tuner._target_='peft.IA3Confg' is not an importable class", "peft.LoHaConfig",
            "Did you mean 'peft.IA3Config'"],
    ),
    Case(
        "peft tuner that adds tokens, not layers", "train",
        ["method=peft", "method.tuner._target_=peft.PromptTuningConfig"], 2,
        ["is a prompt-learning config", "use method=prompt or method=prefix"],
    ),
    Case(
        "timm name that does not exist", "train", ["model.name=resnet_18"], 2,
        ["model.name='resnet_18' is not a timm model", "Did you mean 'resnet18'"],
    ),
    Case(
        "HF model that does not exist", "train", ["model=hf", "model.name=bert-base-uncasd"], 2,
        ["model.name='bert-base-uncasd' could not be loaded", "model=minilm"],
    ),
    Case(
        "method the backbone cannot take", "train", ["method=prefix"], 2,
        ["method=prefix needs", "tf_efficientnet_lite0", "use lora, last_n or full"],
    ),
    Case(
        "ViT whose patches do not tile the data's size", "train",
        ["model=vit_tiny", "model.pretrained=false", "data.image_size=40"], 2,
        ["vit_tiny cannot be built for 40x40 images", "16x16 patches do not tile",
         "use data.image_size=32 or 48 (or null, its own 224x224)"],
    ),
    Case(
        "ViT built by hand for another size than the data's", "train",
        ["model=vit_tiny", "model.pretrained=false", "+model.model_kwargs.img_size=64"], 2,
        ["vit_tiny takes 64x64 images only", "data.image_size=32 asks for 32x32",
         "set data.image_size=64", "model.image_size=32 and no model.model_kwargs.img_size"],
    ),
    # -- sizes --------------------------------------------------------------------------
    Case("zero LoRA rank", "train", ["method=lora", "method.r=0"], 2, ["method.r=0", "positive"]),
    Case("zero last_n", "train", ["method=last_n", "method.n=0"], 2, ["method.n=0", "positive"]),
    Case(
        "last_n larger than the backbone", "train", ["method=last_n", "method.n=12"], 2,
        ["method.n=12", "7 blocks", "valid: 1..7"],
    ),
    Case(
        "negative adapter bottleneck", "train", ["method=adapter", "method.bottleneck_dim=-4"], 2,
        ["bottleneck_dim=-4", "positive"],
    ),
    Case(
        "zero prompt length", "train", ["method=prompt", "method.num_tokens=0"], 2,
        ["num_tokens=0", "positive"],
    ),
    Case(
        "negative prefix length", "train", ["method=prefix", "method.num_tokens=-2"], 2,
        ["num_tokens=-2", "positive"],
    ),
    Case(
        "zero batch size", "train", ["data.batch_size=0"], 2, ["batch_size=0", "positive"],
    ),
    # -- types --------------------------------------------------------------------------
    Case(
        "method setting of the wrong type", "train", ["method=lora", "method.lr=abc"], 2,
        ["method.lr='abc' must be a number (float) or null; got a string."],
    ),
    Case(
        "count given a bool", "train", ["method=last_n", "method.n=true"], 2,
        ["method.n=True must be an integer (int); got a bool."],
    ),
    Case(
        "module setting of the wrong type", "train", ["module.warmup_fraction=abc"], 2,
        ["module.warmup_fraction='abc' must be a number (float); got a string."],
    ),
    Case(
        "data setting of the wrong type", "train", ["data.batch_size=eight"], 2,
        ["data.batch_size='eight' must be an integer (int); got a string."],
    ),
    Case(
        "unknown loss check", "train", ["module.loss_check=sometimes"], 2,
        ["module.loss_check='sometimes' is not one of auto, step, deferred."],
    ),
    # -- the trainer --------------------------------------------------------------------
    Case(
        "GPU trainer without a GPU", "train", ["trainer=gpu"], 2,
        ["trainer=gpu needs a CUDA GPU and this machine has none",
         "use trainer=cpu, or trainer=default to take a GPU when there is one."],
        no_gpu,
    ),
    Case(
        "GPU trainer without a GPU (eval)", "evaluate", ["trainer=gpu", "ckpt_path=/any/best.ckpt"],
        2,
        ["trainer=gpu needs a CUDA GPU and this machine has none",
         "use trainer=cpu, or trainer=default to take a GPU when there is one."],
        no_gpu,
    ),
    Case(
        "DDP trainer without a GPU", "train", ["trainer=ddp"], 2,
        ["trainer=ddp needs a CUDA GPU", "use trainer=ddp_cpu"],
        no_gpu,
    ),
    Case(
        "zero epochs", "train", ["trainer.max_epochs=0"], 2,
        ["trainer.max_epochs=0 trains nothing", "set trainer.max_epochs>=1", "ftlab-eval"],
    ),
    Case(
        "zero steps", "train", ["trainer.max_steps=0"], 2,
        ["trainer.max_steps=0 trains nothing", "set trainer.max_steps>=1"],
    ),
    Case(
        "zero training batches", "train", ["trainer.limit_train_batches=0"], 2,
        ["trainer.limit_train_batches=0 trains nothing", "a fraction in (0, 1]"],
    ),
    Case(
        "a run without end", "train", ["trainer.max_epochs=-1"], 2,
        ["trainer.max_epochs=-1 with trainer.max_steps=-1 trains without end",
         "set trainer.max_epochs>=1 or trainer.max_steps>=1"],
    ),
    Case(
        "budget without a unit", "train", ["budget=fast"], 2,
        ["budget='fast' is not a number and a unit", "budget='200 steps'", "'600 seconds'"],
    ),
    Case(
        "trainer key misspelt", "train", ["+trainer.limit_train_batchs=2"], 2,
        ["trainer.limit_train_batchs is not an argument of lightning.pytorch.Trainer",
         "Did you mean 'limit_train_batches'"],
    ),
    # -- data ---------------------------------------------------------------------------
    Case(
        "missing image folder", "train",
        ["data=image_folder", "data.source.root=/nonexistent/imgs"], 2, ["/nonexistent/imgs"],
    ),
    Case(
        "empty image folder", "train", ["data=image_folder"], 2, ["{tmp}/empty", "no class folders"],
        empty_folder,
    ),
    Case(
        "class folder with no images", "train", ["data=image_folder"], 2, ["'eel'", "has no images"],
        lambda tmp, _: [f"data.source.root={pets(tmp, empty_class=True)}"],
    ),
    Case(
        "text data on an image backbone", "train", ["data=rotten_tomatoes"], 2,
        ["rotten_tomatoes", "text", "image"],
    ),
    Case(
        "CSV without the text column", "train", [], 2,
        ["no column 'text'", "'txt', 'label'"],
        lambda tmp, _: text_csv(tmp, "txt,label\n" + ROWS),
    ),
    Case(
        "CSV row with an extra field", "train", [], 2,
        ["{tmp}/train.csv is not a readable", "Expected 2 fields in line 4, saw 3"],
        lambda tmp, _: text_csv(tmp, "text,label\ngood,pos\nbad,neg\nso, so,pos\n" + ROWS),
    ),
    Case(
        "label not in the label set", "train", [], 2,
        ["'positive'", "training labels: 'neg', 'pos'"],
        lambda tmp, _: text_csv(tmp, "text,label\n" + ROWS, "text,label\nfine,positive\n"),
    ),
    Case(
        "empty text", "train", [], 2, ["empty text", "line(s) 4"],
        lambda tmp, _: text_csv(tmp, "text,label\ngood,pos\nbad,neg\n  ,pos\n" + ROWS),
    ),
    # -- generative tasks ---------------------------------------------------------------
    Case(
        "generative task on the default CNN and data", "train", ["task=sft"], 2,
        [DECODER_NEEDED.format("tf_efficientnet_lite0", "a cnn backbone, with no LM head")],
    ),
    Case(
        "generative task on a CNN", "train", ["task=choice", "data=rotten_tomatoes"], 2,
        [DECODER_NEEDED.format("tf_efficientnet_lite0", "a cnn backbone, with no LM head")
         .replace("task=sft", "task=choice")],
    ),
    Case(
        "generative task on an encoder", "train", ["task=sft", "model=minilm", "data=rotten_tomatoes"],
        2, [DECODER_NEEDED.format("minilm", "an encoder, with no causal LM head")],
    ),
    Case(
        "records without the prompt column", "train",
        [*QA, "data.source.prompt_column=questoin"], 2,
        ["the train split of json has no column 'questoin' (data.source.prompt_column); its "
         "columns: question, answer, options, gold. Did you mean 'question'?"],
        decoder_records,
    ),
    Case(
        "every response cut away", "train", [*QA, "task.max_length=2"], 2,
        ["every response is cut away at task.max_length=2 (prompts are longer); raise "
         "task.max_length or shorten the prompts."],
        decoder_records,
    ),
    Case(
        "chat template asked of a tokenizer without one", "train",
        [*QA, "task.chat_template=true"], 2,
        ["task.chat_template=true but the tokenizer of {tmp}/llama has no chat template; set "
         "task.chat_template=auto (use one when there is one) or false."],
        decoder_records,
    ),
    Case(
        "choice label not among its options", "train",
        ["task=choice", "data.source.prompt_column=question", "data.source.options_column=options",
         "data.source.label_column=gold"], 2,
        ["row 3 of the train split of json has gold=5, which is not among its options "
         "['no', 'yes']: give the gold option's index (0 to 1) or its text."],
        lambda tmp, trained: decoder_records(tmp, trained, bad_gold=True),
    ),
    Case(
        "no new tokens to generate", "train", [*QA, "task.max_new_tokens=0"], 2,
        ["task.max_new_tokens=0 generates nothing to score; set it to 1 or more (64 holds a "
         "short worked answer)."],
        decoder_records,
    ),
    # -- checkpoints and resuming ---------------------------------------------------------
    Case(
        "checkpoint that does not exist (eval)", "evaluate", ["ckpt_path=/nonexistent/best.ckpt"],
        2, ["ckpt_path='/nonexistent/best.ckpt' does not exist"],
    ),
    Case(
        "checkpoint that does not exist (train)", "train", ["ckpt_path=/nonexistent/last.ckpt"],
        2, ["ckpt_path='/nonexistent/last.ckpt' does not exist"],
    ),
    Case(
        "corrupt checkpoint", "evaluate", [], 2,
        ["ckpt_path='{tmp}/junk.ckpt' could not be read", "truncated"],
        junk_checkpoint,
    ),
    Case(
        "resume with nothing to resume", "train", ["resume=true"], 2,
        ["resume=true: no unfinished run with this config", "hydra.run.dir"],
    ),
    Case(
        "checkpoint from another method", "train", ["method=last_n"], 2,
        ["trained with method=lora", "this run uses method=last_n"],
        lambda tmp, trained: [f"ckpt_path={trained('lora')}"],
    ),
    Case(
        "checkpoint from another backbone", "train", ["method=lora", "model.name=resnet18"], 2,
        ["does not fit this model", "another backbone"],
        lambda tmp, trained: [f"ckpt_path={trained('lora')}"],
    ),
    Case(
        "checkpoint with another number of classes", "train", ["method=lora", "data=image_folder"],
        2, ["checkpoint has 10 classes, this data has 3"],
        lambda tmp, trained: [f"ckpt_path={trained('lora')}", f"data.source.root={pets(tmp)}"],
    ),
]  # fmt: skip


@pytest.fixture(scope="module")
def trained(tmp_path_factory, data_dir) -> Callable[[str], Path]:
    """``trained(method)``: the last checkpoint of a tiny real run, trained once."""
    done: dict[str, Path] = {}

    def get(method: str) -> Path:
        if method not in done:
            out = tmp_path_factory.mktemp(f"trained_{method}")
            base = [o for o in TINY_CNN if o != "callbacks=none"]
            proc = ftlab_cli("train", *base, f"method={method}", f"hydra.run.dir={out}")
            assert proc.returncode == 0, proc.stderr[-3000:]
            done[method] = out / "checkpoints" / "last.ckpt"
        return done[method]

    return get


def base_overrides(entry: str, overrides: list[str], tmp_path: Path) -> list[str]:
    """The tiny CNN run, minus whatever group the case replaces."""
    if entry == "data_cli":  # ftlab-data optimize writes only where out= says
        return []
    base = [f"paths.root_dir={tmp_path}"]
    if entry != "train":
        return base
    replaced = {o.split("=")[0] for o in overrides if "=" in o and "." not in o.split("=")[0]}
    for o in TINY_CNN:
        group = o.split("=")[0].split(".")[0]
        if group not in replaced:
            base.append(o)
    return base


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_is_one_clear_message(case: Case, tmp_path, data_dir, trained):
    extra = case.setup(tmp_path, trained) if case.setup else []
    overrides = [*case.overrides, *extra]
    proc = ftlab_cli(case.entry, *base_overrides(case.entry, overrides, tmp_path), *overrides)
    output = proc.stdout + proc.stderr
    assert proc.returncode == case.code, output[-3000:]
    for fragment in case.fragments:
        fragment = fragment.replace("{tmp}", str(tmp_path))
        assert fragment in output, f"{fragment!r} not in:\n{output[-3000:]}"
    assert "Traceback" not in output, output[-3000:]
    # nothing half-written: a run that started records why it failed, complete
    for results in tmp_path.rglob("results.json"):
        data = json.loads(results.read_text())
        assert data["status"] in ("failed", "skipped")  # skipped: the method cannot apply
        assert data.get("error") or data.get("reason")
    assert not list(tmp_path.rglob("*.tmp"))
