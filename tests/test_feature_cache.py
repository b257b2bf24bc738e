"""Frozen-backbone feature caching: on when valid, off when not, and the same metrics."""

from __future__ import annotations

import pytest

from ftlab.errors import ConfigError
from ftlab.train import train


def test_cached_linear_probe_matches_the_uncached_run(make_cfg):
    common = ["method=linear_probe", "trainer.max_epochs=3", "data.samples_per_class=8"]
    cached = train(make_cfg(*common, name="cached"))
    plain = train(make_cfg(*common, "feature_cache=false", name="plain"))
    assert cached["feature_cache_s"] and plain["feature_cache_s"] is None
    for key in ("test/acc", "test/loss", "val/acc_best", "val/loss"):
        assert cached[key] == pytest.approx(plain[key], rel=1e-5, abs=1e-6), key


def test_cache_stays_off_when_the_backbone_trains_or_inputs_are_random(make_cfg):
    assert train(make_cfg("method=last_n", "method.n=1", name="a"))["feature_cache_s"] is None
    augmented = train(make_cfg("method=linear_probe", "data.augment=true", name="b"))
    assert augmented["feature_cache_s"] is None


def test_insisting_on_an_impossible_cache_says_why(make_cfg):
    with pytest.raises(ConfigError, match=r"feature_cache=true.*the backbone trains"):
        train(make_cfg("method=full", "feature_cache=true"))
