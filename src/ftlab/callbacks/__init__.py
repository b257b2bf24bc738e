"""Callbacks that are not fine-tuning methods: cost accounting, the loss watchdog and
friends."""

from ftlab.callbacks.cost import CostMetrics, count_parameters
from ftlab.callbacks.epoch_seed import EpochSeed
from ftlab.callbacks.feature_cache import FeatureCache
from ftlab.callbacks.loss_watchdog import LossWatchdog
from ftlab.callbacks.progress import ProgressBar

__all__ = [
    "CostMetrics",
    "EpochSeed",
    "FeatureCache",
    "LossWatchdog",
    "ProgressBar",
    "count_parameters",
]
