"""`atlas serve-wyoming`'s command line: the URI it serves, and bad input."""

from __future__ import annotations

import subprocess
import sys

import pytest

from atlas.wyoming.serve import parse_uri
from tests.conftest import ROOT


def test_uri_parsing() -> None:
    assert parse_uri("tcp://127.0.0.1:10300").is_loopback
    assert not parse_uri("tcp://0.0.0.0:10300").is_loopback
    assert parse_uri("unix:///tmp/atlas.sock").port is None


@pytest.mark.parametrize(
    ("uri", "problem"),
    [("http://127.0.0.1:1", "use tcp://"), ("tcp://127.0.0.1", "needs a host and a port")],
)
def test_cli_bad_uri_is_one_line(uri: str, problem: str) -> None:
    run = subprocess.run(
        [sys.executable, "-m", "atlas.cli", "serve-wyoming", "--uri", uri],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 2
    assert problem in run.stderr
    assert len(run.stderr.strip().splitlines()) == 1
