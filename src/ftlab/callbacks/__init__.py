"""Callbacks that are not fine-tuning methods: cost accounting and friends."""

from ftlab.callbacks.cost import CostMetrics, count_parameters
from ftlab.callbacks.epoch_seed import EpochSeed
from ftlab.callbacks.feature_cache import FeatureCache

__all__ = ["CostMetrics", "EpochSeed", "FeatureCache", "count_parameters"]
