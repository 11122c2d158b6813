"""Fixtures the router's integration tests share: the settings and the fake Anthropic API."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from atlas.settings import Settings, load_settings
from atlas.testing.fake_anthropic import FakeAnthropic


@pytest.fixture(scope="module")
def settings() -> Settings:
    return load_settings()


@pytest.fixture
def anth() -> Iterator[FakeAnthropic]:
    with FakeAnthropic() as server:
        yield server
