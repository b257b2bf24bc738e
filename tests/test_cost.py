"""The cost columns measure the job, not the process: a job run inside a sweep's process
reports its own peak memory, not the largest of every job before it."""

from __future__ import annotations

import sys

import pytest
import torch

from ftlab.callbacks.cost import peak_rss_bytes, reset_peak_rss


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="VmHWM is Linux's")
def test_the_peak_memory_starts_again_for_each_job():
    big = torch.ones(64 * 2**20)  # 256 MiB, touched: resident
    assert float(big[-1]) == 1.0
    del big
    before = peak_rss_bytes()
    assert reset_peak_rss()
    after = peak_rss_bytes()
    assert after < before - 200 * 2**20, (before, after)
    # new pages show in the new peak: more than the allocator could have kept from before
    bigger = torch.ones(128 * 2**20)  # 512 MiB
    assert float(bigger[-1]) == 1.0
    assert peak_rss_bytes() >= after + 200 * 2**20
    del bigger
