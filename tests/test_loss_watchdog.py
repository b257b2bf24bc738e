"""The loss watchdog on its own: a toy regression whose loss turns non-finite at a chosen
step, trained by a real Lightning Trainer on the CPU. ``step`` stops at that batch;
``deferred`` records it and stops at the next read; no checkpoint written after it holds
the diverged weights; a finite run is the same with or without the watchdog."""

from __future__ import annotations

import lightning.pytorch as pl
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from torch.utils.data import DataLoader, TensorDataset

from ftlab.callbacks import LossWatchdog
from ftlab.errors import ConfigError, TrainingDiverged
from tests.conftest import quiet_trainer


class Toy(pl.LightningModule):
    """A linear regression whose loss is ``bad[step]`` (nan, inf) at the steps in ``bad``."""

    def __init__(self, bad: dict[int, float] | None = None) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(4, 1)
        self.bad = bad or {}
        self.steps_run: list[int] = []

    def training_step(self, batch, batch_idx):
        self.steps_run.append(self.global_step)
        x, y = batch
        loss = torch.nn.functional.mse_loss(self.layer(x), y)
        if self.global_step in self.bad:
            loss = loss * self.bad[self.global_step]
        return loss

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)

    def train_dataloader(self):
        generator = torch.Generator().manual_seed(0)
        x = torch.randn(64, 4, generator=generator)
        return DataLoader(TensorDataset(x, x.sum(1, keepdim=True)), batch_size=4)


def fit(tmp_path, module: Toy, check: str, **trainer_options) -> pl.Trainer:
    options = {"max_steps": 12, "log_every_n_steps": 5, **trainer_options}
    callbacks = [LossWatchdog(check), *options.pop("callbacks", [])]
    trainer = quiet_trainer(tmp_path, callbacks=callbacks, **options)
    trainer.fit(module)
    return trainer


def test_step_stops_at_the_batch_whose_loss_went_non_finite(tmp_path):
    module = Toy(bad={3: float("nan")})
    with pytest.raises(TrainingDiverged) as raised:
        fit(tmp_path, module, "step")
    assert module.steps_run == [0, 1, 2, 3]
    message = str(raised.value)
    assert message.startswith("non-finite training loss (nan) at step 3 (epoch 0)"), message
    for fragment in ("learning rate up to 0.1", "precision 32-true", "lower method.lr"):
        assert fragment in message
    assert message.endswith("No checkpoint was saved yet.")


def test_deferred_records_the_first_bad_step_and_stops_at_the_next_read(tmp_path):
    """Bad at steps 2 (nan) and 3 (inf): nothing is read back until the logging step 5,
    which stops the run and names step 2, not the later one."""
    module = Toy(bad={2: float("nan"), 3: float("inf")})
    with pytest.raises(TrainingDiverged, match=r"\(nan\) at step 2 \(epoch 0\)"):
        fit(tmp_path, module, "deferred")
    assert module.steps_run == [0, 1, 2, 3, 4]  # the batch that made global_step 5 ends it


def test_auto_reads_every_step_in_one_cpu_process(tmp_path):
    module = Toy(bad={2: float("inf")})
    with pytest.raises(TrainingDiverged, match=r"\(inf\) at step 2 "):
        fit(tmp_path, module, "auto")
    assert module.steps_run == [0, 1, 2]


@pytest.mark.parametrize("check", ["step", "deferred"])
def test_no_checkpoint_is_written_after_the_bad_step(check, tmp_path):
    """A checkpoint after every step: the ones after steps 1 and 2 are written, the one
    after the bad third batch (step 3) never is, even in deferred mode, whose next read
    would otherwise be the logging step 5. The message names the last good one."""
    saver = ModelCheckpoint(
        dirpath=tmp_path / "ckpt", filename="{step}", every_n_train_steps=1, save_top_k=-1
    )
    module = Toy(bad={2: float("nan")})
    with pytest.raises(TrainingDiverged) as raised:
        fit(tmp_path, module, check, callbacks=[saver], enable_checkpointing=True)
    written = sorted(p.name for p in (tmp_path / "ckpt").iterdir())
    assert written == ["step=1.ckpt", "step=2.ckpt"]
    assert f"The last good checkpoint is {tmp_path / 'ckpt' / 'step=2.ckpt'}." in str(raised.value)


@pytest.mark.parametrize("check", ["step", "deferred"])
def test_a_finite_run_is_untouched(check, tmp_path):
    """Same steps, same weights, bit for bit, as the run without a watchdog."""
    torch.manual_seed(0)
    watched = Toy()
    trainer = fit(tmp_path / "watched", watched, check, max_steps=10)
    torch.manual_seed(0)
    alone = Toy()
    quiet_trainer(tmp_path / "alone", max_steps=10, log_every_n_steps=5).fit(alone)
    assert trainer.global_step == 10 and watched.steps_run == alone.steps_run
    for a, b in zip(watched.parameters(), alone.parameters(), strict=True):
        assert torch.equal(a, b)


def test_an_unknown_check_names_the_valid_ones():
    with pytest.raises(ConfigError, match=r"module.loss_check='sometimes'.*auto, step, deferred"):
        LossWatchdog("sometimes")


@pytest.mark.parametrize("check", ["step", "deferred"])
def test_every_run_has_a_watchdog_also_with_callbacks_none(check, make_cfg):
    """``module.loss_check`` still chooses the mode; the TINY_CNN config has
    ``callbacks=none``, and the poisoned run still stops with the step."""
    from ftlab.train import train

    cfg = make_cfg(
        f"module.loss_check={check}", "method=full", "trainer.log_every_n_steps=1",
        "+callbacks.fault._target_=tests.faults.PoisonAt", "+callbacks.fault.step=2",
    )  # fmt: skip
    with pytest.raises(TrainingDiverged, match=r"at step 2 \(epoch 0\)"):
        train(cfg)
