"""The heap fix is applied where glibc is the allocator and harmless elsewhere."""

from __future__ import annotations

import platform

import pytest

from atlas.heap import fix_mmap_threshold


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc only")
def test_glibc_takes_the_pinned_mmap_threshold() -> None:
    assert fix_mmap_threshold() is True
