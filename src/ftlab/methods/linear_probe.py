"""Seed method 1: train only a new head on frozen pretrained features."""

from __future__ import annotations

from ftlab.methods.base import Method


class LinearProbe(Method):
    kind = "unfreezing"
    name = "linear_probe"
