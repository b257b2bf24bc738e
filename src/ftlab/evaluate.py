"""``ftlab-eval``: rebuild a run from its checkpoint and test it.

The checkpoint holds the trainable state and the resolved config, so evaluation builds
the pretrained backbone afresh, applies the same method, loads the state and tests.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig, OmegaConf

from ftlab.atomic import atomic_write_json
from ftlab.checkpoints import load_checkpoint
from ftlab.config import CONF_DIR, register_resolvers
from ftlab.console import quiet_console
from ftlab.errors import CheckpointError, exit_on_user_error
from ftlab.hardware import check_accelerator
from ftlab.settings import hydra_choice


def rebuild(ckpt: dict[str, Any], data_overrides: dict | None = None):
    """Backbone + method + module (+ data module) from a checkpoint, state loaded."""
    import lightning.pytorch as pl

    from ftlab.train import build

    cfg = OmegaConf.create(ckpt["ftlab"]["config"])
    if cfg.get("seed") is not None:  # randomly initialised backbones rebuild identically
        pl.seed_everything(cfg.seed, workers=True, verbose=False)
    if data_overrides:
        cfg.data = OmegaConf.merge(cfg.data, data_overrides)
    datamodule, _, module, method = build(cfg)
    method.apply(module)
    module.load_trainable_state(ckpt["state_dict"])
    return cfg, datamodule, module, method


def evaluate(cfg: DictConfig) -> dict[str, Any]:
    import lightning.pytorch as pl
    import torch
    from hydra.utils import instantiate

    check_accelerator(cfg.trainer.get("accelerator", "auto"), hydra_choice("trainer"))
    ckpt = load_checkpoint(cfg.ckpt_path)
    data_overrides = OmegaConf.to_container(cfg.data, resolve=True) if cfg.get("data") else {}
    run_cfg, datamodule, module, method = rebuild(ckpt, data_overrides)
    if cfg.get("merge_lora"):
        if not hasattr(method, "merge"):
            raise CheckpointError(
                f"merge_lora=true but method {method.name!r} has nothing to merge."
            )
        method.merge(module)
    trainer_cfg = cfg.trainer
    if module.backbone.frozen_dtype != torch.float32 and "mixed" not in str(trainer_cfg.precision):
        # half-precision frozen weights next to float32 trained ones: the run's autocast
        trainer_cfg = OmegaConf.merge(trainer_cfg, {"precision": run_cfg.trainer.precision})
    trainer: pl.Trainer = instantiate(trainer_cfg)
    metrics = trainer.test(module, datamodule=datamodule)[0]
    out = {k: float(v) for k, v in metrics.items()}
    out_dir = Path(cfg.paths.output_dir)
    atomic_write_json(out_dir / "eval.json", {"ckpt_path": str(cfg.ckpt_path), **out})
    return out


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="eval")
@exit_on_user_error
def main(cfg: DictConfig) -> None:
    quiet_console()
    metrics = evaluate(cfg)
    for key, value in sorted(metrics.items()):
        print(f"{key}: {value:.4f}")


register_resolvers()

if __name__ == "__main__":
    main()
