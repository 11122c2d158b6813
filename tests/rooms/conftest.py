"""Shared pieces for the rooms tests: the replay tests' model parts, a free port."""

from __future__ import annotations

import os
import socket

import pytest

from tests.replay.conftest import anthropic, parts
from tests.rooms.satellites import install_satellite

__all__ = ["anthropic", "free_port", "parts", "satellite_python"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


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
