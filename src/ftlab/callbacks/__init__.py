"""Callbacks that are not fine-tuning methods: cost accounting and friends."""

from ftlab.callbacks.cost import CostMetrics, count_parameters

__all__ = ["CostMetrics", "count_parameters"]
