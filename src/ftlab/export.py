"""``ftlab-export``: a fine-tuned decoder as a plain Hugging Face folder, loadable without
ftlab.

    ftlab-export ckpt_path=logs/train/runs/<time>/checkpoints/best.ckpt out=DIR [overwrite=true]

The run is rebuilt from its checkpoint (no data needed), then written where the method's
change has a place outside ftlab:

- weights the method changed in place (``full``, ``last_n``, ``bitfit``, ``gradual``) and
  every peft tuner that merges (LoRA, DoRA, PiSSA, ... through peft's own
  ``merge_and_unload``): ``DIR`` is a plain folder (config, safetensors, generation config,
  tokenizer with its chat template) that ``AutoModelForCausalLM.from_pretrained(DIR)`` loads
  and that decodes greedily to ftlab's tokens;
- shallow prompts, which are peft's prompt tuning: ``DIR`` holds the untouched model, and
  ``DIR/adapter`` peft's adapter format, which ``PeftModel.from_pretrained`` loads;
- anything else (prefixes, deep prompts, bottleneck adapters) is refused in a sentence that
  says why it has no such place.

``DIR`` appears whole or not at all: it is written next to itself and renamed into place.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ftlab.errors import ConfigError, exit_code_for, suggest

KEYS = {
    "ckpt_path": "the checkpoint to export (a run's checkpoints/best.ckpt)",
    "out": "the folder to write",
    "overwrite": "true replaces what out= already holds",
}
ADAPTER_DIR = "adapter"


def export(ckpt_path: str, out: str | Path, overwrite: bool = False) -> dict[str, Any]:
    """Write the checkpoint's model to ``out``; returns what was written (``kind``: ``merged``
    or ``peft_prompt``, ``path``, ``adapter``)."""
    import lightning.pytorch as pl
    from omegaconf import OmegaConf

    from ftlab.checkpoints import load_checkpoint
    from ftlab.config import register_resolvers
    from ftlab.train import build_module, build_parts

    register_resolvers()
    out = Path(out).expanduser().absolute()
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise ConfigError(
            f"out={out} already holds files; name a new folder, or add overwrite=true to "
            "replace them."
        )
    ckpt = load_checkpoint(ckpt_path)
    cfg = OmegaConf.create(ckpt["ftlab"]["config"])
    if cfg.get("seed") is not None:  # randomly initialised backbones rebuild identically
        pl.seed_everything(cfg.seed, workers=True, verbose=False)
    task, backbone, method = build_parts(cfg)
    if not task.lm_head:
        raise ConfigError(
            f"ftlab-export writes a causal language model, and this checkpoint is "
            f"task={task.name}: a new head on pooled features, which a transformers model has "
            "no place for; score it with ftlab-eval."
        )
    module = build_module(cfg, task, backbone, ckpt["ftlab"]["num_classes"])
    method.apply(module)
    module.load_trainable_state(ckpt["state_dict"])
    if hasattr(method, "peft_model"):  # peft tuners: fold every layer into its base
        method.merge(module)
    extra = _not_in_the_architecture(backbone)
    kind = "merged" if not extra else _prompt_or_refuse(method, backbone, extra)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    try:
        if kind == "merged":
            _save_plain(backbone, staging)
        else:
            _save_plain(backbone, staging, without=extra)
            _save_prompt_adapter(backbone, method, staging / ADAPTER_DIR, out)
        if out.exists():
            shutil.rmtree(out)
        staging.rename(out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return {
        "kind": kind,
        "path": str(out),
        "adapter": str(out / ADAPTER_DIR) if kind == "peft_prompt" else None,
        "method": method.label,
    }


def _not_in_the_architecture(backbone: Any) -> list[str]:
    """Parameter and buffer names of the model that a fresh model of its architecture does
    not have: what the method added and could not fold into the model's own weights."""
    import torch
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        fresh = AutoModelForCausalLM.from_config(backbone._lm.config)
    known = set(fresh.state_dict())
    return sorted(set(backbone._lm.state_dict()) - known)


def _prompt_or_refuse(method: Any, backbone: Any, extra: list[str]) -> str:
    """``peft_prompt`` when what is left is one block's prompts in the token sequence
    (shallow prompt tuning, which peft's prompt tuning is); else a sentence saying why the
    method's change has no place in a transformers or peft folder."""
    prompts = [n for n in extra if n.endswith(".prompt.tokens")]
    if backbone.token_slot is not None and extra == prompts and len(prompts) == 1:
        return "peft_prompt"
    if any(".prefix" in n for n in extra):
        why = (
            "its prefixes leave the real tokens at positions 0, 1, ... (a prefix has no "
            "position), while peft's prefix tuning puts them after its virtual tokens when it "
            "generates, so peft's adapter format would decode other tokens"
        )
    elif len(prompts) > 1:
        why = "its deep prompts replace every block's prompt positions, which neither transformers nor peft has"
    elif any(".adapter." in n for n in extra):
        why = "its bottleneck adapters are modules a transformers model has no place for, and peft has no such tuner"
    else:
        shown = ", ".join(extra[:3]) + (" ..." if len(extra) > 3 else "")
        why = f"it adds {shown}, which a transformers model has no place for"
    raise ConfigError(
        f"method={method.name} cannot be exported: {why}. Score the checkpoint with ftlab-eval."
    )


def _save_plain(backbone: Any, folder: Path, without: Sequence[str] = ()) -> None:
    """The model, its generation config and its tokenizer (chat template included)."""
    state = {k: v for k, v in backbone._lm.state_dict().items() if k not in set(without)}
    backbone._lm.save_pretrained(folder, state_dict=state, safe_serialization=True)
    backbone.tokenizer.save_pretrained(folder)


def _save_prompt_adapter(backbone: Any, method: Any, folder: Path, base: Path) -> None:
    """Shallow prompts as peft's prompt tuning: its config and ``prompt_embeddings``."""
    from peft import PromptTuningConfig
    from safetensors.torch import save_file

    tokens = next(p for n, p in backbone.named_parameters() if n.endswith(".prompt.tokens"))
    config = backbone.config
    peft_config = PromptTuningConfig(
        task_type="CAUSAL_LM",
        num_virtual_tokens=method.num_tokens,
        token_dim=config.hidden_size,
        num_transformer_submodules=1,
        num_attention_heads=config.num_attention_heads,
        num_layers=config.num_hidden_layers,
        base_model_name_or_path=str(base),
    )
    folder.mkdir(parents=True)
    peft_config.save_pretrained(folder)
    weights = {"prompt_embeddings": tokens.detach().float().contiguous().cpu()}
    save_file(weights, str(folder / "adapter_model.safetensors"))


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    own: dict[str, str] = {}
    try:
        for arg in arguments:
            key, eq, value = arg.partition("=")
            if not eq or key not in KEYS:
                raise ConfigError(
                    f"ftlab-export takes {', '.join(f'{k}=' for k in KEYS)}; got {arg!r}."
                    f"{suggest(key, KEYS)}"
                )
            own[key] = value
        missing = [k for k in ("ckpt_path", "out") if not own.get(k)]
        if missing:
            raise ConfigError(
                f"ftlab-export needs {' and '.join(f'{k}=' for k in missing)}: e.g. "
                "`ftlab-export ckpt_path=logs/train/runs/<time>/checkpoints/best.ckpt out=exported`."
            )
        overwrite = own.get("overwrite", "false").lower()
        if overwrite not in ("true", "false"):
            raise ConfigError(f"overwrite={own['overwrite']!r} must be true or false.")
        from ftlab.console import quiet_console

        quiet_console()
        done = export(own["ckpt_path"], own["out"], overwrite == "true")
    except Exception as err:
        return exit_code_for(err, "ftlab-export")
    if done["kind"] == "merged":
        print(
            f"wrote {done['method']} as a plain transformers model to {done['path']}: "
            f"AutoModelForCausalLM.from_pretrained({done['path']!r})"
        )
    else:
        print(
            f"wrote the untouched model to {done['path']} and {done['method']} in peft's "
            f"prompt-tuning format to {done['adapter']}: PeftModel.from_pretrained("
            f"AutoModelForCausalLM.from_pretrained({done['path']!r}), {done['adapter']!r})"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
