"""Machine-dependent defaults (precision, loader workers, fused AdamW) and the kernel
options of the module (channels-last, torch.compile), checked on the CPU; their speed is
measured on a GPU in experiments/benchmarks."""

from __future__ import annotations

import functools

import lightning.pytorch as pl
import pytest
import torch

from ftlab import hardware
from ftlab.backbones import TimmBackbone
from ftlab.train import build, train


@pytest.mark.parametrize(
    ("cuda", "bf16", "expected"),
    [(False, False, "32-true"), (True, True, "bf16-mixed"), (True, False, "16-mixed")],
)
def test_precision_follows_the_gpu(cuda, bf16, expected, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: bf16)
    assert hardware.best_precision() == expected


def test_the_gpu_configs_resolve_precision_on_this_machine(make_cfg):
    for trainer in ("gpu", "default"):
        cfg = make_cfg(f"trainer={trainer}", name=trainer)
        assert cfg.trainer.precision == hardware.best_precision()


def test_loader_workers_feed_gpus_and_leave_a_cpu_only_machine_alone(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert hardware.data_workers("auto") == 0
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(hardware, "usable_cpus", lambda: 16)
    assert hardware.data_workers("auto") == 7  # 16 CPUs / 2 GPUs, one for the trainer
    monkeypatch.setattr(hardware, "usable_cpus", lambda: 64)
    assert hardware.data_workers("auto") == 8
    assert hardware.data_workers(3) == 3


def test_fused_adamw_only_on_cuda_and_only_when_not_chosen():
    cuda, cpu = torch.device("cuda", 0), torch.device("cpu")
    adamw = functools.partial(torch.optim.AdamW, lr=1e-3)
    assert hardware.fused_optimizer_kwargs(adamw, cuda) == {"fused": True}
    assert hardware.fused_optimizer_kwargs(adamw, cpu) == {}
    assert hardware.fused_optimizer_kwargs(functools.partial(torch.optim.SGD, lr=1), cuda) == {}
    chosen = functools.partial(torch.optim.AdamW, lr=1e-3, foreach=True)
    assert hardware.fused_optimizer_kwargs(chosen, cuda) == {}


def test_channels_last_backbone_computes_the_same_features():
    torch.manual_seed(0)
    backbone = TimmBackbone("resnet18", pretrained=False).eval()
    batch = {"pixel_values": torch.randn(2, 3, 64, 64)}
    with torch.no_grad():
        plain = backbone(batch)
        backbone.to(memory_format=torch.channels_last)
        backbone.channels_last = True
        torch.testing.assert_close(backbone(batch), plain, rtol=1e-4, atol=1e-5)
    conv = backbone.model.conv1.weight
    assert conv.is_contiguous(memory_format=torch.channels_last)


def test_configure_model_applies_channels_last_and_compile(make_cfg):
    cfg = make_cfg(
        "module.channels_last=true", "module.compile=true", "module.compile_backend=eager"
    )
    _, backbone, module, method = build(cfg)
    method.apply(module)
    module.trainer = pl.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False)
    module.configure_model()
    module.configure_model()  # fit, then test: applied once
    assert backbone.channels_last
    assert backbone._compiled_call_impl is not None
    batch = backbone.example_batch(2, 32)
    with torch.no_grad():
        assert module(batch).shape == (2, 10)


@pytest.mark.slow  # tracing and compiling take a while on 2 cores
def test_a_compiled_run_trains_like_an_eager_one(make_cfg):
    common = ["method=lora", "data.samples_per_class=8", "trainer.max_epochs=2"]
    eager = train(make_cfg(*common, name="eager"))
    compiled = train(
        make_cfg(
            *common, "module.compile=true", "module.compile_backend=aot_eager", name="compiled"
        )
    )
    assert compiled["status"] == "done"
    for key in ("test/loss", "val/loss"):
        assert compiled[key] == pytest.approx(eager[key], rel=1e-4), key


def test_progress_bar_reads_metrics_only_when_the_loss_is_logged(make_cfg, monkeypatch):
    """Lightning's bar converts its metrics to numbers after every batch (a GPU sync each);
    ftlab's reads them every log_every_n_steps, still showing the logged loss."""
    from lightning.pytorch.callbacks import RichProgressBar

    from ftlab.callbacks import ProgressBar

    reads = []
    original = RichProgressBar.get_metrics

    def counted(self, trainer, pl_module):
        if trainer.training:
            reads.append(trainer.global_step)
        return original(self, trainer, pl_module)

    monkeypatch.setattr(RichProgressBar, "get_metrics", counted)
    cfg = make_cfg(
        "trainer.max_epochs=2", "trainer.log_every_n_steps=3",
        "+callbacks.progress_bar._target_=ftlab.callbacks.ProgressBar",
    )  # fmt: skip
    bars = []
    monkeypatch.setattr(
        ProgressBar, "on_train_end", lambda self, *a: bars.append(dict(self._shown))
    )
    assert train(cfg)["status"] == "done"
    assert reads, "the bar never read the metrics"
    assert set(reads) <= {1, 3, 6, 9}, reads  # the first batch, then the logging steps
    assert 0 < len(reads) < 10  # 10 training batches
    assert isinstance(bars[0].get("train/loss"), float), bars  # still shows the loss


def test_no_gpu_value_is_read_back_every_training_step(make_cfg):
    """A tensor read on the host waits for the GPU's queue to drain. Counted on the CPU,
    where the same calls happen (with the GPU's deferred loss check): a run of 15 steps
    logging every 5 reads values at the logging steps and epoch ends, never every step."""
    from tests.probes import HostReads

    cfg = make_cfg(
        "trainer.max_epochs=3", "trainer.log_every_n_steps=5", "module.loss_check=deferred",
        "+callbacks.progress_bar._target_=ftlab.callbacks.ProgressBar",
        "+callbacks.reads._target_=tests.probes.HostReads",
    )  # fmt: skip
    assert train(cfg)["status"] == "done"
    steps = {step for step, _ in HostReads.READS}
    assert HostReads.READS, "the probe saw no read at all (not even at logging steps)"
    assert len(steps) <= 9, HostReads.READS  # 15 steps; reads at 0, 5, 10, 15 and epoch ends
