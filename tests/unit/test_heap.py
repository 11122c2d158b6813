"""The heap is trimmed where glibc is the allocator, and harmlessly not elsewhere."""

from __future__ import annotations

import platform

import pytest

from atlas.heap import trim


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc only")
def test_glibc_trims_the_heap() -> None:
    assert trim() is True
    assert trim() is True  # again: idempotent, nothing held
