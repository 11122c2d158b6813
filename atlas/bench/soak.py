"""`atlas bench soak`: many turns in one daemon process, with every fault, watching growth.

The daemon's own stack (`build_stack`: Whisper, the router with its real classifier and
the embedded SmolLM2, Piper, the filler cache, the ledger) answers recorded fixture
utterances one after another. The cloud is the fake Anthropic server on 127.0.0.1
(through the real SDK); before each cloud turn it is given one case of the fault matrix
(tests/integration/test_router_faults.py): success, a status error retried then
answered, errors until the local fallback, a first token too late, an error event, a
stall or a dropped connection mid-answer, an answer trickling past its deadline, and a
barge-in. One turn refuses the API key near the end (the tier is then off for good,
as in the daemon). Every turn is transcribed by Whisper from the fixture's audio (the
VAD/endpointer is not in the loop: the utterance is the whole fixture).

The simulated speaker is not waited for (no real-time playback); it is cleared after
each turn so its timeline never runs ahead of the clock. Measured: whether each turn
was answered (something was said), deadline misses, latency from the end of speech to
the first sound per tier, and every `window` turns the process's RSS, open file
descriptors and OS threads.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import structlog

from atlas.bench.ears import FIXTURES
from atlas.bench.soak_report import SoakReport, SoakTurn, Vitals
from atlas.settings import Secrets, Settings
from atlas.testing.fake_anthropic import FakeAnthropic, FakeScript
from atlas.turn import TurnRecord
from voice.decode import decode_audio
from voice.listener import Heard
from voice.sinks import NullSink
from voice.types import Samples, Utterance

if TYPE_CHECKING:
    from atlas.assistant import Assistant
    from atlas.daemon import Stack

log = structlog.get_logger("atlas.bench.soak")

FAKE_KEY = "sk-ant-soak-fake-key"
_LONG = (
    "Certainly. A heat pump moves warmth from the air outside into the house, much as a "
    "refrigerator moves it out of its box, and it does so using rather little power."
)
# Fixtures the daemon answers (wake phrase included), by what should answer them.
UTTERANCES: tuple[tuple[str, str], ...] = (
    ("local_what_time.wav", "skill"),
    ("haiku_heat_pump.wav", "cloud"),
    ("pause_one_two_three.wav", "local"),
    ("local_date_today.wav", "skill"),
    ("haiku_sky_blue.wav", "cloud"),
    ("nowake_what_about_tomorrow.wav", "local"),
    ("local_living_room_lights.wav", "home"),
    ("agent_lisbon_trip.wav", "cloud"),
    ("local_good_morning.wav", "skill"),
    ("haiku_recipe_dinner.wav", "cloud"),
    ("nowake_fifteen_percent.wav", "skill"),
    ("espeak_m3_rainbow.wav", "cloud"),
    ("safety_chest_pain.wav", "cloud"),
    ("local_timer_ten_seconds.wav", "skill"),
)


@dataclass(frozen=True)
class Fault:
    name: str
    scripts: tuple[FakeScript, ...]
    barge_in: bool = False


def fault_matrix(settings: Settings, *, dense: bool = False) -> tuple[Fault, ...]:
    """One cycle of cloud cases; successes between faults keep the breakers closed
    most of the time (they open, and recover, when faults meet). `dense`: the faults
    alone (a short run that must meet each of them)."""
    anth = settings.llm.anthropic
    tries = anth.retries + 1
    ok = Fault("ok", (FakeScript(text="Certainly. It is a pleasure to help with that."),))
    late = max(anth.haiku.first_token_deadline_s, anth.agent.first_token_deadline_s) + 0.5
    trickle = settings.deadlines.answer_s / 10 + 0.05  # 20+ words: past the answer deadline
    faults = (
        Fault("429_then_ok", (FakeScript.error(429), *ok.scripts)),
        Fault("529_until_fallback", (FakeScript.error(529),) * tries),
        Fault("500_until_fallback", (FakeScript.error(500),) * tries),
        Fault("first_token_late", (FakeScript(text=_LONG, first_token_delay_s=late),) * tries),
        Fault("error_event_mid_answer", (FakeScript(text=_LONG, error_after_deltas=4),)),
        Fault(
            "stall_mid_answer",
            (FakeScript(text=_LONG, stall_after_deltas=4, stall_s=anth.stall_timeout_s + 1),),
        ),
        Fault("dropped_mid_answer", (FakeScript(text=_LONG, drop_after_deltas=4),)),
        Fault("dropped_before_answer", (FakeScript(text=_LONG, drop_after_deltas=0),) * tries),
        Fault("trickle_past_deadline", (FakeScript(text=_LONG, token_delay_s=trickle),)),
        Fault("barge_in", (FakeScript(text=_LONG, token_delay_s=0.05),), barge_in=True),
    )
    return faults if dense else tuple(x for f in faults for x in (ok, f))


KEY_REFUSED = Fault("key_refused", (FakeScript.error(401),))


def soak_settings(settings: Settings, base_url: str, ledger: Path) -> Settings:
    """The daemon's settings, pointed at the fake cloud and a scratch ledger, with the
    waits scaled down so faults cost seconds, not minutes."""
    anth = settings.llm.anthropic
    llm = replace(
        settings.llm,
        anthropic=replace(
            anth,
            base_url=base_url,
            retry_initial_s=0.05,
            retry_max_s=0.2,
            stall_timeout_s=1.5,
            haiku=replace(anth.haiku, first_token_deadline_s=1.5),
            agent=replace(anth.agent, first_token_deadline_s=2.5),
        ),
        # Questions go to the local model too: the soak wants it to run often.
        local=replace(settings.llm.local, backend="embedded", decline_questions="no"),
    )
    return replace(
        settings,
        llm=llm,
        wake=replace(settings.wake, enabled=False),
        budget=replace(settings.budget, db_path=str(ledger), daily_usd=1e4, monthly_usd=1e5),
        breaker=replace(settings.breaker, reset_timeout_s=5.0),
        deadlines=replace(settings.deadlines, answer_s=6.0),
        home_assistant=replace(settings.home_assistant, url=None),
        assistant=replace(settings.assistant, announce_timers=False),
    )


def vitals(fake_port: int | None = None) -> Vitals:
    """RSS (MB), open file descriptors and OS threads of this process (Linux /proc).

    The fake cloud runs in this process but stands for a remote server: its sockets
    (those on `fake_port`) and its per-connection handler threads are not counted."""
    rss_kb = threads = 0
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss_kb = int(line.split()[1])
            elif line.startswith("Threads:"):
                threads = int(line.split()[1])
    fake = _sockets_on(fake_port) if fake_port else set()
    fds = 0
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            target = os.readlink(f"/proc/self/fd/{fd}")
            fds += not (target.startswith("socket:[") and target[8:-1] in fake)
    handlers = sum("process_request" in t.name for t in threading.enumerate())
    return Vitals(rss_kb / 1024, fds, threads - handlers)


def _sockets_on(port: int) -> set[str]:
    """Inodes of this process's TCP sockets whose local port is `port`."""
    inodes: set[str] = set()
    for table in ("/proc/self/net/tcp", "/proc/self/net/tcp6"):
        with contextlib.suppress(OSError), open(table, encoding="ascii") as f:
            for line in f.readlines()[1:]:
                cols = line.split()
                if int(cols[1].rsplit(":", 1)[1], 16) == port:
                    inodes.add(cols[9])
    return inodes


def _cases(n: int, faults: tuple[Fault, ...]) -> Iterator[tuple[str, str, Fault | None]]:
    clouds = 0
    refuse_from = n - 3 * len(UTTERANCES)  # the key is refused once, near the end
    for i in range(n):
        name, kind = UTTERANCES[i % len(UTTERANCES)]
        fault = None
        if kind == "cloud":
            fault = faults[clouds % len(faults)]
            if 0 < refuse_from <= i:
                fault, refuse_from = KEY_REFUSED, 0
            clouds += 1
        elif i % 23 == 11:  # a barge-in on a local turn now and then (llama.cpp stops)
            fault = Fault("barge_in", (), barge_in=True)
        yield name, kind, fault


async def _interrupt_when_audible(assistant: Assistant, limit_s: float = 10.0) -> None:
    """Barge in once ATLAS is audible (the turn has started: see _one_turn)."""
    deadline = time.monotonic() + limit_s
    while assistant.answer_audible_at is None and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.05)
    assistant.interrupt("barge_in")


async def run_soak(
    settings: Settings,
    turns: int,
    *,
    window: int = 50,
    progress: Callable[[int, Vitals], None] | None = None,
    dense: bool = False,
    settled_after: int = 100,
) -> SoakReport:
    from atlas.daemon import build_stack  # late: loads the whole daemon

    audio: dict[str, Samples] = {
        name: decode_audio(FIXTURES / name).samples for name, _ in UTTERANCES
    }
    with FakeAnthropic() as fake, tempfile.TemporaryDirectory(prefix="atlas-soak-") as tmp:
        cfg = soak_settings(settings, fake.base_url, Path(tmp) / "ledger.sqlite3")
        port = int(fake.base_url.rsplit(":", 1)[1].split("/")[0])
        stack = await build_stack(
            cfg, Secrets(FAKE_KEY), lambda: NullSink(22050, realtime=False), _forget
        )
        report = SoakReport(window=window, settled_after=settled_after)
        try:
            for i, (name, kind, fault) in enumerate(_cases(turns, fault_matrix(cfg, dense=dense))):
                if i % window == 0:
                    report.vitals.append((i, vitals(port)))
                    if progress:
                        progress(i, report.vitals[-1][1])
                fake.forget()
                if fault is not None:
                    fake.enqueue(*fault.scripts)
                report.turns.append(await _one_turn(stack, audio[name], name, kind, fault))
            report.vitals.append((turns, vitals(port)))
        finally:
            await stack.aclose()
    return report


def _forget(record: TurnRecord) -> None:
    """The soak keeps its own small per-turn summary (SoakTurn), not every record."""


async def _one_turn(
    stack: Stack, audio: Samples, name: str, kind: str, fault: Fault | None
) -> SoakTurn:
    started = time.monotonic()
    transcript = await stack.ears.transcriber.transcribe(audio)
    end = len(audio) / 16000
    u = Utterance(audio, 0.0, 0.0, end, end, started)
    heard = Heard(u, transcript, time.monotonic())
    # The daemon's own per-turn path (the turn lock, then the heap trim: atlas.heap).
    turn = asyncio.create_task(stack.conversation.answer(heard, live=False))
    await asyncio.sleep(0)  # the turn starts (and forgets the last turn's audible time)
    if fault is not None and fault.barge_in:
        barge = asyncio.create_task(_interrupt_when_audible(stack.assistant))
        await asyncio.wait({turn, barge}, return_when=asyncio.FIRST_COMPLETED)
        barge.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await barge
    rec = await turn
    await stack.conversation.heap_trimmed()
    stack.sink.clear()  # no real-time playback: the simulated speaker starts afresh
    return SoakTurn.of(rec, name, kind, fault.name if fault else "none", started, time.monotonic())
