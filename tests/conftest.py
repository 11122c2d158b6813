from __future__ import annotations

import csv
import importlib
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
import structlog

ROOT = Path(__file__).resolve().parent.parent
SHARED_AUDIO = ROOT.parent / "shared" / "audio"
FIXTURES = ROOT / "tests" / "fixtures" / "audio"
SCRIPTS = ROOT / "scripts"


def shared_audio(name: str) -> Path:
    """A third-party recording from ../shared/audio; skips the test when absent."""
    p = SHARED_AUDIO / name
    if not p.is_file():
        pytest.skip(f"{name} not present in ../shared/audio")
    return p


def fixture_rows() -> list[dict[str, str]]:
    """The project's own replay fixtures (tests/fixtures/audio/manifest.tsv)."""
    manifest = FIXTURES / "manifest.tsv"
    if not manifest.is_file():
        return []
    with manifest.open(encoding="utf-8") as f:
        return list(csv.DictReader(f, delimiter="\t"))


def script_module(name: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    """A dev tool of scripts/ imported as a module (its own imports resolve there too);
    forgotten afterwards. Use from a fixture: `yield from script_module(...)`."""
    monkeypatch.syspath_prepend(str(SCRIPTS))
    yield importlib.import_module(name)
    sys.modules.pop(name, None)


@pytest.fixture(autouse=True)
def _fresh_logging() -> Iterator[None]:
    """structlog's configuration is process-wide: give every test the defaults back."""
    yield
    structlog.reset_defaults()
