"""One room per Wyoming satellite: its own conversation over the shared engines.

Each room has its own VAD state and endpointer, its own wake gate (so its own follow-up
window), its own echo guard (the floor) and its own turn handle: barge-in in the kitchen
does not cut the study. Whisper, Piper and the local model are shared; each runs one job
at a time in its own worker thread, and each room has at most one turn and one
speculative transcript in flight, so the shared work is bounded by the number of rooms.

A satellite that cannot be reached, or goes away, is retried with backoff; the other
rooms never notice. A dropped connection mid-reply stops that reply (an interruption,
not a failure of the model: no breaker counts it).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import parse_qs

import structlog
from wyoming.asr import Transcript
from wyoming.event import Event
from wyoming.vad import VoiceStarted, VoiceStopped

from atlas.app import Ears
from atlas.assistant import Assistant
from atlas.conversation import Conversation
from atlas.endofturn import TurnTakingConfig
from atlas.home.stage import room_area
from atlas.llm.memory import conversation_room
from atlas.logs import redact_text
from atlas.settings import AssistantConfig
from atlas.skills.timers import timer_room
from atlas.turn import TurnRecord
from atlas.wake import WakeConfig, WakeGate
from atlas.wyoming.announce import TimerRouter
from atlas.wyoming.link import SatelliteInfo, SatelliteLink, SatelliteSink, SatelliteSource
from atlas.wyoming.serve import UriError, parse_uri
from voice.vad import SileroVad

log = structlog.get_logger("atlas.wyoming.rooms")

RETRY_FIRST_S = 1.0


@dataclass(frozen=True)
class SatelliteSpec:
    """Where a satellite listens, and (optionally) what to call its room."""

    host: str
    port: int
    name: str | None = None
    area: str | None = None

    @property
    def uri(self) -> str:
        return f"tcp://{self.host}:{self.port}"

    @classmethod
    def parse(cls, uri: str) -> SatelliteSpec:
        """tcp://HOST:PORT, optionally ?name=kitchen&area=Kitchen; UriError if not."""
        base, _, query = uri.partition("?")
        endpoint = parse_uri(base, what="satellite", unix=False)
        assert endpoint.host is not None and endpoint.port is not None  # tcp://
        try:
            params = parse_qs(query, keep_blank_values=True, strict_parsing=bool(query))
        except ValueError:
            raise UriError(f"bad satellite {uri!r}: use ?name=...&area=...") from None
        unknown = sorted(set(params) - {"name", "area"})
        if unknown or any(len(v) != 1 or not v[0].strip() for v in params.values()):
            raise UriError(f"bad satellite {uri!r}: only one name= and one area= may follow")
        name, area = (params.get(k, [None])[0] for k in ("name", "area"))
        return cls(endpoint.host, endpoint.port, name, area)


@dataclass(frozen=True)
class RoomParts:
    """The shared engines and settings every room is built on."""

    ears: Ears
    vad_model: Path
    assistant: Assistant
    assistant_config: AssistantConfig
    turn_taking: TurnTakingConfig
    wake: WakeConfig
    retry_max_s: float = 30.0


class Room:
    def __init__(
        self,
        spec: SatelliteSpec,
        parts: RoomParts,
        on_turn: Callable[[str, TurnRecord], None],
        timers: TimerRouter | None = None,
    ) -> None:
        self.spec = spec
        self.name = spec.name or spec.uri
        self.area = spec.area
        self._parts = parts
        self._on_turn = on_turn
        self._timers = timers.room(spec.uri) if timers else None
        # Own VAD state; the transcriber is shared.
        vad = SileroVad(parts.vad_model, parts.ears.settings.vad)
        self._ears = replace(parts.ears, vad=vad)
        self._wake = WakeGate(parts.wake)
        self.connected = asyncio.Event()
        self.sessions = 0
        self._sends: set[asyncio.Task[None]] = set()

    async def run(self) -> None:
        """Serve this satellite for the daemon's life, reconnecting with backoff."""
        delay = RETRY_FIRST_S
        while True:
            try:
                link, info = await SatelliteLink.open(self.spec.host, self.spec.port, self.name)
            except (OSError, TimeoutError) as e:
                log.warning(
                    "satellite.unreachable", room=self.name, error=_why(e), retry_in_s=delay
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, self._parts.retry_max_s)
                continue
            delay = RETRY_FIRST_S
            try:
                await self._session(link, info)
            except Exception as e:  # a fault in one room must never end the others
                log.error(
                    "room.failed", room=self.name, error=redact_text(f"{type(e).__name__}: {e}")
                )
            log.warning("satellite.lost", room=self.name, retry_in_s=delay)
            await asyncio.sleep(delay)

    async def _session(self, link: SatelliteLink, info: SatelliteInfo) -> None:
        timer_room.set(self.spec.uri)  # this task's context: timers set here ring here
        conversation_room.set(self.spec.uri)  # and a follow-up continues this room's talk
        self.name = self.spec.name or info.name
        self.area = self.spec.area or info.area
        self.sessions += 1
        room_area.set(self.area)  # "turn on the lights" means this room's lights
        sink = SatelliteSink(link)
        assistant = self._parts.assistant.with_sink(sink, self._wake)

        def on_turn(record: TurnRecord) -> None:
            self._on_turn(self.name, record)

        conversation = Conversation(
            self._ears,
            assistant,
            self._parts.assistant_config,
            self._timers,
            on_turn,
            self._parts.turn_taking,
            listening=_SatelliteEvents(link, self._sends),
        )
        log.info("satellite.connected", room=self.name, area=self.area, uri=self.spec.uri)
        self.connected.set()
        announcer = asyncio.create_task(conversation.announce_timers(), name="room-timers")
        watcher = asyncio.create_task(_stop_when_gone(link, assistant), name="room-watch")
        try:
            await conversation.serve(SatelliteSource(link))
        finally:
            self.connected.clear()
            for task in (announcer, watcher):
                task.cancel()
            await asyncio.gather(announcer, watcher, return_exceptions=True)
            with contextlib.suppress(Exception):
                await conversation.wait_idle()
            await sink.aclose()
            await link.close()


class _SatelliteEvents:
    """What the room hears, told to its satellite as Home Assistant's pipeline does:
    voice-started, voice-stopped, then the transcript before the reply's audio."""

    def __init__(self, link: SatelliteLink, sends: set[asyncio.Task[None]]) -> None:
        self._link = link
        self._sends = sends

    def voice_started(self) -> None:
        self._send(VoiceStarted().event())

    def voice_stopped(self) -> None:
        self._send(VoiceStopped().event())

    def transcript(self, text: str) -> None:
        self._send(Transcript(text=text).event())

    def _send(self, event: Event) -> None:
        task = asyncio.get_running_loop().create_task(self._deliver(event))
        self._sends.add(task)
        task.add_done_callback(self._sends.discard)

    async def _deliver(self, event: Event) -> None:
        await self._link.send(event)  # a satellite gone meanwhile: a no-op


async def _stop_when_gone(link: SatelliteLink, assistant: Assistant) -> None:
    """Nobody hears a reply to a satellite that went away: stop it (not a failure)."""
    await link.gone.wait()
    if assistant.busy:
        assistant.interrupt("satellite_gone")


def _why(e: BaseException) -> str:
    if isinstance(e, TimeoutError):
        return "no answer"
    return getattr(e, "strerror", None) or str(e) or type(e).__name__


def build_rooms(
    parts: RoomParts,
    satellites: Sequence[SatelliteSpec],
    on_turn: Callable[[str, TurnRecord], None],
    timers: TimerRouter | None = None,
) -> list[Room]:
    """One room per satellite; each announces the timers set in it."""
    return [Room(spec, parts, on_turn, timers) for spec in satellites]


async def run_rooms(rooms: list[Room]) -> None:
    """All rooms at once; one room's trouble never ends another's."""
    await asyncio.gather(*(room.run() for room in rooms))
