"""Data for ftlab: sources (one file each, in :mod:`ftlab.data.sources`) and the data
modules that batch them for image and text classification. Hydra configs in
``conf/data/`` build a :class:`DataModule` (or, for shards, a
:class:`StreamingDataModule`) around one source each, by these names."""

from ftlab.data.datamodule import ClassificationDataModule, DataModule
from ftlab.data.features import FeatureServing
from ftlab.data.sources import (
    CIFAR10,
    CIFAR100,
    FIXED_SPLIT_SEED,
    BBCNews,
    FashionMNIST,
    HFDataset,
    ImageFolder,
    RottenTomatoes,
    Shards,
    Source,
    Split,
    TextCSV,
)
from ftlab.data.streaming import StreamingDataModule
from ftlab.paths import default_data_dir

__all__ = [
    "CIFAR10",
    "CIFAR100",
    "FIXED_SPLIT_SEED",
    "BBCNews",
    "ClassificationDataModule",
    "DataModule",
    "FashionMNIST",
    "FeatureServing",
    "HFDataset",
    "ImageFolder",
    "RottenTomatoes",
    "Shards",
    "Source",
    "Split",
    "StreamingDataModule",
    "TextCSV",
    "default_data_dir",
]
