"""Shared pieces for the rooms tests: the replay tests' model parts, a free port."""

from __future__ import annotations

import os

import pytest

from atlas.testing.satellite import install_satellite
from atlas.testing.serving import free_port
from tests.replay.conftest import anthropic, parts

__all__ = ["anthropic", "free_port", "parts", "satellite_python"]


@pytest.fixture(scope="session")
def satellite_python() -> str:
    """The real wyoming-satellite's python: skip when it cannot be installed, except
    under CI (CI=true), where that FAILS: CI must talk to the real program."""
    python, why = install_satellite()
    if python is None:
        message = f"wyoming-satellite could not be installed: {why}"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return python
