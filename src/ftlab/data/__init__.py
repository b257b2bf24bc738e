"""Data for ftlab: offline-first sources and one LightningDataModule for image and text
classification. Hydra configs in ``conf/data/`` build a :class:`ClassificationDataModule`
around one source each."""

from ftlab.data.datamodule import ClassificationDataModule
from ftlab.data.hf_dataset import HFDataset
from ftlab.data.images import CIFAR10, CIFAR100, FashionMNIST, ImageFolder
from ftlab.data.sources import FIXED_SPLIT_SEED, Source, Split
from ftlab.data.streaming import Shards, StreamingDataModule
from ftlab.data.texts import BBCNews, RottenTomatoes, TextCSV
from ftlab.paths import default_data_dir

__all__ = [
    "CIFAR10",
    "CIFAR100",
    "FIXED_SPLIT_SEED",
    "BBCNews",
    "ClassificationDataModule",
    "FashionMNIST",
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
