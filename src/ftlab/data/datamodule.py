"""One LightningDataModule for every task: image and text classification, and the records
of generative tasks (read through the pipeline the task gives it, :meth:`DataModule.use_task`).

Split order, the same for every dataset:

1. validation: the source's own val split if it has one, else a stratified
   ``val_fraction`` of the *full* training split (run seed), so its size does not shrink
   with few-shot settings;
2. training: what remains, then ``samples_per_class`` (exactly k per class),
   ``train_samples`` (n examples, stratified) or ``train_fraction`` (stratified), seeded by
   the run seed;
3. test: the source's test split (official, or fixed by the source), optionally a
   stratified ``test_samples`` subset drawn with a constant seed, so every run and every
   method is scored on the same examples.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sized
from typing import Any

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset, RandomSampler, default_collate

from ftlab.data.features import FeatureServing
from ftlab.data.pipelines import PIPELINES, Pipeline, pipeline_for, preprocessing_modality
from ftlab.data.pipelines import positive_int as _positive_int
from ftlab.data.sources.base import FIXED_SPLIT_SEED, SPLITS, Source, Split
from ftlab.data.splits import per_class_sample, stratified_sample, stratified_split
from ftlab.errors import ConfigError, DataError
from ftlab.hardware import data_workers
from ftlab.settings import check_types, hydra_choice

_STAGE_SPLITS = {
    "fit": ("train", "val"),
    "validate": ("val",),
    "test": ("test",),
    "predict": ("test",),
    None: SPLITS,
}
# Independent random streams per selection, so changing one setting leaves the others alone.
_VAL_STREAM, _FEW_SHOT_STREAM, _FRACTION_STREAM, _VAL_SUBSET_STREAM = 1, 2, 3, 4
_TRAIN_SAMPLES_STREAM = 5


def _fraction(name: str, value: Any, allow_one: bool = True) -> float | None:
    if value is None:
        return None
    upper = "1]" if allow_one else "1)"
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    if not ok or not (0 < value < 1 or (allow_one and value == 1)):
        raise ConfigError(f"{name}={value!r} must be a number in (0, {upper} or null.")
    return float(value)


class DataModule(L.LightningDataModule):
    """Batches of ``{"pixel_values", "labels"}`` (images) or ``{"input_ids", "attention_mask",
    ["token_type_ids",] "labels"}`` (text) from any :class:`~ftlab.data.sources.Source`.

    ``set_preprocessing`` must be called with the backbone's timm data config (images) or
    tokenizer (text) before ``setup``. The pipeline is the one for the modality the source
    declares (:data:`ftlab.data.pipelines.PIPELINES`).
    """

    def __init__(
        self,
        source: Source | Mapping[str, Any],
        batch_size: int = 64,
        eval_batch_size: int | None = None,
        num_workers: int | str = 0,
        samples_per_class: int | None = None,
        train_fraction: float | None = None,
        train_samples: int | None = None,
        val_fraction: float = 0.1,
        val_samples: int | None = None,
        test_samples: int | None = None,
        seed: int = 0,
        augment: bool = False,
        image_size: int | None = None,
        max_length: int = 128,
        pin_memory: bool | None = None,
        persistent_workers: bool = True,
        cache: bool = True,
        name: str | None = None,
    ) -> None:
        check_types(DataModule.__init__, locals(), "data.")
        super().__init__()
        if isinstance(source, Mapping):
            from hydra.utils import instantiate

            source = instantiate(source)
        if not isinstance(source, Source):
            raise ConfigError(
                f"data.source must build a ftlab.data Source, got {type(source).__name__}."
            )
        self.source = source
        self.name = name or source.name
        self.modality = source.modality

        self.batch_size = _positive_int("batch_size", batch_size, allow_none=False)
        self.eval_batch_size = _positive_int("eval_batch_size", eval_batch_size) or self.batch_size
        if num_workers != "auto" and (
            isinstance(num_workers, bool) or not isinstance(num_workers, int) or num_workers < 0
        ):
            raise ConfigError(f"num_workers={num_workers!r} must be an integer >= 0 or auto.")
        self.num_workers = data_workers(num_workers)
        self.samples_per_class = _positive_int("samples_per_class", samples_per_class)
        self.train_fraction = _fraction("train_fraction", train_fraction)
        self.train_samples = _positive_int("train_samples", train_samples)
        shrinking = [
            f"{key}={value}"
            for key, value in (
                ("samples_per_class", samples_per_class),
                ("train_samples", train_samples),
                ("train_fraction", train_fraction),
            )
            if value is not None
        ]
        if len(shrinking) > 1:
            both = "both" if len(shrinking) == 2 else "all"
            others = "the other" if len(shrinking) == 2 else "the others"
            raise ConfigError(
                f"{' and '.join(shrinking)} {both} shrink the training set; set one of them and "
                f"{others} to null (e.g. data.{shrinking[0].partition('=')[0]}=null)."
            )
        self.val_fraction = _fraction("val_fraction", val_fraction, allow_one=False)
        self.val_samples = _positive_int("val_samples", val_samples)
        self.test_samples = _positive_int("test_samples", test_samples)
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise ConfigError(f"seed={seed!r} must be an integer >= 0.")
        self.seed = seed
        self.pin_memory = torch.cuda.is_available() if pin_memory is None else bool(pin_memory)
        self.persistent_workers = bool(persistent_workers) and self.num_workers > 0

        self.pipeline: Pipeline = pipeline_for(
            self.name,
            self.modality,
            augment=augment,
            image_size=image_size,
            max_length=max_length,
            cache=cache,
        )

        self._preprocessing: Any = None
        self._splits: dict[str, Split] | None = None
        self._datasets: dict[str, Dataset] = {}
        self.min_classes = 2  # a classifier's; a task says otherwise (use_task)

    # ----------------------------------------------------------------- metadata
    @property
    def class_names(self) -> list[str]:
        names = self.source.class_names
        if len(names) < self.min_classes:
            raise DataError(
                f"data={self.name} has {len(names)} class(es) ({names}); classification needs "
                f"at least {self.min_classes}."
            )
        return list(names)

    def use_task(self, task: Any) -> None:
        """Read the source the way ``task`` needs (its pipeline: records tokenized for
        supervised fine-tuning or answer scoring), and take its class count rule."""
        self.min_classes = task.min_classes
        pipeline = task.pipeline(self)
        if pipeline is not None and pipeline is not self.pipeline:
            self.pipeline = pipeline
            self._preprocessing = None
            self._datasets.clear()

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def splits(self) -> dict[str, Split]:
        """The selected raw examples of each split (after ``select`` or ``setup``)."""
        return dict(self._splits or {})

    @property
    def split_sizes(self) -> dict[str, int]:
        return {split: len(examples) for split, examples in self.splits.items()}

    # ------------------------------------------------------------ preprocessing
    def set_preprocessing(self, pre: Any, model_name: str | None = None) -> None:
        """The backbone's timm data config (image data) or HF tokenizer (text data)."""
        kind = preprocessing_modality(pre)
        if kind is None:
            raise ConfigError(
                f"set_preprocessing expects a timm data config (a dict, for image backbones) or a "
                f"Hugging Face tokenizer (for text backbones), got {type(pre).__name__}."
            )
        if kind != self.modality:
            model = model_name or hydra_choice("model") or getattr(pre, "name_or_path", None)
            raise ConfigError(
                f"data={self.name} is {self.modality} but model={model or '(this one)'} is "
                f"{PIPELINES[kind].backbone} backbone; use {self.pipeline.models}."
            )
        if pre is self._preprocessing:
            return
        self.pipeline.configure(pre, model_name=model_name)
        self._preprocessing = pre
        self._datasets.clear()

    # ---------------------------------------------------------------- lifecycle
    def prepare_data(self) -> None:
        self.source.prepare()

    def setup(self, stage: str | None = None) -> None:
        for split in _STAGE_SPLITS.get(stage, SPLITS):
            self._dataset(split)

    def select(self) -> dict[str, Split]:
        """Choose the examples of each split (no transforms; ``setup`` calls it). Idempotent."""
        if self._splits is None:
            self._splits = self._select()
        return dict(self._splits)

    def _select(self) -> dict[str, Split]:
        names = self.class_names
        train, val, test = (self.source.load(split) for split in SPLITS)
        if test is None:
            raise DataError(f"data={self.name} provides no test split.")
        if train is None:  # evaluation-only data (GSM8K's test problems)
            return {"test": self._test_subset(test)}
        if val is None:
            kept, held = stratified_split(train.labels, self.val_fraction, [self.seed, _VAL_STREAM])
            train, val = train.subset(kept), train.subset(held)
        if self.val_samples is not None and len(val) > self.val_samples:
            val = val.subset(
                stratified_sample(val.labels, self.val_samples, [self.seed, _VAL_SUBSET_STREAM])
            )
        if self.samples_per_class is not None:
            train = train.subset(
                per_class_sample(
                    train.labels, self.samples_per_class, [self.seed, _FEW_SHOT_STREAM], names
                )
            )
        if self.train_samples is not None and self.train_samples < len(train):
            stream = [self.seed, _TRAIN_SAMPLES_STREAM]
            train = train.subset(stratified_sample(train.labels, self.train_samples, stream))
        if self.train_fraction is not None and self.train_fraction < 1:
            n = max(1, round(len(train) * self.train_fraction))
            train = train.subset(stratified_sample(train.labels, n, [self.seed, _FRACTION_STREAM]))
        selected = {"train": train, "val": val, "test": self._test_subset(test)}
        for split, examples in selected.items():
            if len(examples) == 0:
                raise DataError(f"data={self.name}: the {split} split is empty after selection.")
        return selected

    def _test_subset(self, test: Split) -> Split:
        if self.test_samples is None:
            return test
        return test.subset(stratified_sample(test.labels, self.test_samples, FIXED_SPLIT_SEED))

    def _require_preprocessing(self) -> None:
        if self._preprocessing is None:
            raise ConfigError(
                "call set_preprocessing(timm data config or tokenizer) before setup, so the "
                "data is transformed the way the backbone expects."
            )

    def _dataset(self, split: str) -> FeatureSwitch:
        if split not in self._datasets:
            self._require_preprocessing()
            selected = self.select()
            if split not in selected:
                raise DataError(
                    f"data={self.name} has no {split} split: it is test data only; train on "
                    f"another dataset and score the checkpoint on it with `ftlab-eval "
                    f"ckpt_path=<best.ckpt> data={self.name}`."
                )
            examples = selected[split]
            self._datasets[split] = FeatureSwitch(
                self.pipeline.dataset(examples, train=split == "train")
            )
        return self._datasets[split]

    # ---------------------------------------------------------- feature caching
    def feature_serving(self) -> FeatureServing | str:
        """What serves a frozen backbone's cached features in place of this data's inputs
        (:mod:`ftlab.data.features`): its splits' datasets switch to the cached rows."""
        return SplitFeatures(self)

    # -------------------------------------------------------------- dataloaders
    def _loader(self, split: str) -> DataLoader:
        train = split == "train"
        return DataLoader(
            self._dataset(split),
            batch_size=self.batch_size if train else self.eval_batch_size,
            sampler=EpochShuffle(self._dataset(split), self.seed) if train else None,
            num_workers=self.num_workers,
            collate_fn=SwitchCollate(self.pipeline.collate_fn),
            pin_memory=self.pin_memory,
            persistent_workers=self.persistent_workers,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train")

    def val_dataloader(self) -> DataLoader:
        return self._loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._loader("test")

    def predict_dataloader(self) -> DataLoader:
        return self._loader("test")

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, source={self.source!r}, sizes={self.split_sizes})"


class EpochShuffle(RandomSampler):
    """A shuffle that depends on (seed, epoch) only, not on what ran before.

    Lightning calls ``set_epoch`` before every epoch, so a run resumed at epoch k sees the
    same order as an uninterrupted one. The permutation is ``randperm`` seeded with
    ``seed + epoch``, as in ``DistributedSampler``: one process with batch 2B sees exactly
    the union of what two DDP ranks with batch B see at each step. Being a
    ``RandomSampler``, Lightning still swaps it for a ``DistributedSampler`` under DDP.
    """

    def __init__(self, data_source: Sized, seed: int = 0) -> None:
        super().__init__(data_source)
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[int]:
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        yield from torch.randperm(len(self.data_source), generator=generator).tolist()


class FeatureSwitch(Dataset):
    """A split's dataset whose items become ``{"features", "labels"}`` once a feature
    cache is attached. Dataloaders made before the cache exists (Lightning builds the
    train loader early to count steps) see the switch, since they hold this object."""

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset
        self.features: torch.Tensor | None = None
        self.labels: torch.Tensor | None = None

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int) -> dict[str, Any]:
        if self.features is None:
            return self.dataset[i]
        return {"features": self.features[i], "labels": self.labels[i]}


class SplitFeatures:
    """A :class:`DataModule`'s :class:`~ftlab.data.features.FeatureServing`:
    each split's :class:`FeatureSwitch` serves the cached rows once they are set."""

    def __init__(self, datamodule: DataModule) -> None:
        self.datamodule = datamodule

    def random_transform(self, split: str) -> bool:
        return self.datamodule.pipeline.random_transform(train=split == "train")

    def raw_loader(self, split: str) -> DataLoader:
        dm = self.datamodule
        return DataLoader(
            dm._dataset(split).dataset,
            batch_size=dm.eval_batch_size,
            shuffle=False,
            num_workers=dm.num_workers,
            collate_fn=dm.pipeline.collate_fn,
            pin_memory=dm.pin_memory,
        )

    def set_features(self, split: str, features: torch.Tensor, labels: torch.Tensor) -> None:
        dataset = self.datamodule._dataset(split)
        if len(features) != len(dataset):
            raise ValueError(f"{len(features)} cached rows for {len(dataset)} {split} items.")
        dataset.features, dataset.labels = features, labels

    def clear_features(self) -> None:
        for dataset in self.datamodule._datasets.values():
            dataset.features = dataset.labels = None


class SwitchCollate:
    """The pipeline's collate for inputs; stacking for cached features."""

    def __init__(self, collate: Any) -> None:
        self.collate = collate

    def __call__(self, items: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        if "features" in items[0]:
            return {
                "features": torch.stack([item["features"] for item in items]),
                "labels": torch.stack([torch.as_tensor(item["labels"]) for item in items]).long(),
            }
        return self.collate(items) if self.collate is not None else default_collate(items)


#: the name before the data module served every task: configs and checkpoints that name
#: it still build
ClassificationDataModule = DataModule
