"""Shared pieces for the rooms tests: the replay tests' model parts, a free port."""

from __future__ import annotations

import socket

from tests.replay.conftest import anthropic, parts

__all__ = ["anthropic", "free_port", "parts"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port
