"""`atlas run` (microphone in, speaker out) and `atlas replay` (a file in, a WAV out).

Both build the same stack and run the same `Conversation` loop; only the source and
the sink differ, so a replay is the daemon's own behaviour on a recording.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import structlog

from atlas import sdnotify
from atlas.app import Ears, build_ears, build_store
from atlas.assistant import Assistant
from atlas.brain import Brain, build_brain
from atlas.conversation import Conversation
from atlas.filler import FillerCache
from atlas.health import DaemonHealth, MonitoredSource
from atlas.modelstore import ModelStore
from atlas.persona import Persona
from atlas.settings import Secrets, Settings
from atlas.skills.timers import TimerEvents
from atlas.turn import TurnRecord
from atlas.wake import WakeConfig, WakeGate
from atlas.wyoming.announce import TimerRouter
from atlas.wyoming.rooms import Room, RoomParts, SatelliteSpec, build_rooms, run_rooms
from voice.audio import DecodedAudio, FileSource, MicrophoneSource, decode_audio
from voice.errors import AudioDeviceError
from voice.sinks import AudioSink, NullSink, SpeakerSink, WavSink
from voice.tts import PiperSynthesizer

log = structlog.get_logger("atlas.daemon")

_REPLY_RATE = 22050
_STALL_S = 10.0
"""No audio frame for this long (outside a microphone retry): the daemon is unhealthy."""
_REPLAY_TIMER_WAIT_S = 30.0
"""A replay waits this long after the input for timers it set to ring."""


@dataclass
class Stack:
    settings: Settings
    ears: Ears
    brain: Brain
    tts: PiperSynthesizer
    sink: AudioSink
    assistant: Assistant
    conversation: Conversation

    async def aclose(self) -> None:
        await self.sink.aclose()
        await self.brain.aclose()  # flushes the ledger
        self.ears.close()
        self.tts.close()


def build_tts(settings: Settings, store: ModelStore) -> PiperSynthesizer:
    voice = store.resolve(settings.tts.voice, "piper", "tts.voice")
    config_path = voice.path.with_name(voice.path.name + ".json")
    tts = PiperSynthesizer(voice.path, config_path if config_path.exists() else None, settings.tts)
    tts.warm()
    return tts


async def build_stack(
    settings: Settings,
    secrets: Secrets,
    make_sink: Callable[[], AudioSink],
    on_turn: Callable[[TurnRecord], None],
    timer_events: TimerEvents | None = None,
) -> Stack:
    """Everything loaded and warmed: STT, embedder, local LLM, TTS, filler cache.

    The sink is made last, so a recording's clock starts when ATLAS is ready."""
    t0 = time.perf_counter()
    store = build_store(settings)
    ears = build_ears(settings, store)
    brain = await build_brain(settings, store, secrets)
    tts = build_tts(settings, store)
    persona = Persona(settings.persona)
    fillers = FillerCache(persona, tts, settings.persona.fillers)
    sink = make_sink()
    assistant = Assistant(
        router=brain.router,
        tts=tts,
        sink=sink,
        fillers=fillers,
        wake=WakeGate(settings.wake),
        persona=persona,
        chunker=settings.chunker,
        filler=settings.assistant.filler,
        wait_line_s=settings.assistant.wait_line_s,
        deadlines=settings.deadlines,
    )
    # `timer_events`: the local microphone's share when satellite rooms take theirs.
    timers = (timer_events or brain.timers) if settings.assistant.announce_timers else None
    conversation = Conversation(
        ears, assistant, settings.assistant, timers, on_turn, settings.turn_taking
    )
    log.info("ready", ms=round((time.perf_counter() - t0) * 1000), local=brain.local_backend)
    return Stack(settings, ears, brain, tts, sink, assistant, conversation)


# ---------------------------------------------------------------------- replay


async def replay(
    settings: Settings,
    secrets: Secrets,
    path: Path,
    *,
    out: Path | None,
    realtime: bool,
    no_wake: bool,
    on_turn: Callable[[TurnRecord], None],
    on_source: Callable[[FileSource], None] | None = None,
) -> None:
    """Run the daemon's pipeline on `path`; what ATLAS says goes to `out` with real timing.

    `on_source` gets the file source once it exists (to tell how far a cut-short run got).

    With `realtime`, sample 0 of the reply WAV is the moment sample 0 of the input was
    fed, so the gap between the end of speech in the input and the first sound in the
    reply is the latency a person would hear.
    """
    audio = decode_audio(path, settings.file_input.max_duration_s)
    if no_wake:
        settings = replace(settings, wake=replace(settings.wake, enabled=False))
    lead = settings.file_input.lead_silence_ms / 1000
    started: list[float] = []

    def make_sink() -> AudioSink:
        # Stream time 0 of the input; `lead` s of padding come before the file's sample 0.
        started.append(time.monotonic() + 0.05)  # a moment to set up, so no frame is late
        start_at = started[0] + lead
        if out is None:
            return NullSink(_REPLY_RATE, start_at=start_at, realtime=realtime)
        return WavSink(out, _REPLY_RATE, start_at=start_at, realtime=realtime)

    stack = await build_stack(settings, secrets, make_sink, on_turn)
    try:
        await serve_recording(
            stack,
            audio,
            sink=stack.sink,
            start_at=started[0],
            realtime=realtime,
            wake=settings.wake,
            on_turn=on_turn,
            on_source=on_source,
        )
    finally:
        await stack.aclose()


async def serve_recording(
    stack: Stack,
    audio: DecodedAudio,
    *,
    sink: AudioSink,
    start_at: float,
    realtime: bool,
    wake: WakeConfig,
    on_turn: Callable[[TurnRecord], None],
    wait_for_timers: bool = True,
    on_source: Callable[[FileSource], None] | None = None,
) -> None:
    """One recording through the daemon's own loop: `atlas replay` and the benchmark.

    Stream time 0 of the input (its lead silence included) is the monotonic `start_at`;
    `sink` places the reply on the same clock. `realtime` paces the input like a
    microphone; otherwise each turn runs to completion before the next frame is read."""
    assistant = stack.assistant.with_sink(sink, WakeGate(wake))
    timers = stack.brain.timers if stack.settings.assistant.announce_timers else None
    conversation = Conversation(
        stack.ears,
        assistant,
        stack.settings.assistant,
        timers,
        on_turn,
        stack.settings.turn_taking,
    )
    source = stack.ears.file_source(audio, realtime=realtime)
    source.start_at = start_at
    if on_source is not None:
        on_source(source)
    announcer = asyncio.create_task(conversation.announce_timers())
    try:
        await conversation.serve(source, sequential=not realtime)
        if wait_for_timers:
            await _wait_for_timers(stack, conversation)
    finally:
        announcer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await announcer
        await conversation.wait_idle()


async def _wait_for_timers(stack: Stack, conversation: Conversation) -> None:
    timers = stack.brain.timers
    deadline = time.monotonic() + _REPLAY_TIMER_WAIT_S
    while timers.list() and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    # Let a just-fired timer's announcement start.
    await asyncio.sleep(0.1)
    while not timers.events.empty() and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    await conversation.wait_idle()


# ---------------------------------------------------------------------- daemon


async def run_daemon(
    settings: Settings,
    secrets: Secrets,
    satellites: Sequence[SatelliteSpec] = (),
    *,
    local_audio: bool = True,
) -> int:
    """Serve turns from the microphone and/or Wyoming satellites until SIGTERM/SIGINT.
    Returns the exit code."""
    notifier = sdnotify.Notifier.from_env()
    mic: MicrophoneSource | None = None
    sink: AudioSink = NullSink(_REPLY_RATE)  # --no-local-audio: no sound card at all
    if local_audio:
        mic = MicrophoneSource(settings.audio)
        await mic.start()  # no microphone at start: AudioDeviceError -> exit 78 in the CLI
        speaker = SpeakerSink(settings.audio)
        await speaker.start()
        sink = speaker
    # With satellites, one router hands each finished timer to the room that set it.
    announce = settings.assistant.announce_timers and bool(satellites)
    default_room = satellites[0].uri if mic is None and satellites else None
    timer_router = TimerRouter(default_room) if announce else None
    local_timers = timer_router.default if timer_router and mic is not None else None
    stack = await build_stack(settings, secrets, lambda: sink, _log_turn, local_timers)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    health = DaemonHealth(stall_s=_STALL_S)
    tasks = [asyncio.create_task(sdnotify.run(notifier, health), name="watchdog")]
    if mic is not None:
        listen = asyncio.create_task(_listen_forever(stack, mic, settings, health), name="listen")
        timers = asyncio.create_task(stack.conversation.announce_timers(), name="timers")
        health.watch("listen", listen)
        health.watch("timers", timers)
        tasks += [listen, timers]
    else:
        # No local audio path to watch: satellites come and go (each is retried).
        health.retrying(True)
    if satellites:
        serving = asyncio.create_task(run_rooms(_rooms(stack, satellites, timer_router)))
        health.watch("rooms", serving)
        tasks.append(serving)
    if timer_router is not None:
        routing = asyncio.create_task(timer_router.run(stack.brain.timers), name="timer-router")
        health.watch("timer-router", routing)
        tasks.append(routing)
    notifier.ready("listening")
    log.info("daemon.listening", local_audio=local_audio, satellites=len(satellites))
    await stop.wait()
    notifier.stopping("stopping")
    log.info("daemon.stopping")
    await stack.conversation.shutdown(settings.assistant.shutdown_grace_s)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    if mic is not None:
        with contextlib.suppress(Exception):
            await mic.aclose()
    await stack.aclose()  # closes the speaker, flushes the ledger
    return 0


def _rooms(
    stack: Stack, satellites: Sequence[SatelliteSpec], timers: TimerRouter | None
) -> list[Room]:
    """One room per satellite over the stack's shared engines."""
    return build_rooms(room_parts(stack), satellites, _log_room_turn, timers)


def room_parts(stack: Stack) -> RoomParts:
    """What every satellite room shares: the stack's ears, voice and brain."""
    settings = stack.settings
    return RoomParts(
        ears=stack.ears,
        vad_model=build_store(settings).resolve("silero-vad", "vad", "vad.model").path,
        assistant=stack.assistant,
        assistant_config=settings.assistant,
        turn_taking=settings.turn_taking,
        wake=settings.wake,
        retry_max_s=settings.assistant.mic_retry_max_s,
    )


def _log_room_turn(room: str, record: TurnRecord) -> None:
    log.info("turn.done", room=room, **record.as_dict())


async def _listen_forever(
    stack: Stack, mic: MicrophoneSource, settings: Settings, health: DaemonHealth
) -> None:
    """Keep listening; when the microphone disappears, retry with backoff (the
    watchdog counts that as healthy; a source that stalls without an error is not)."""
    delay = 1.0
    source = mic
    while True:
        try:
            await stack.conversation.serve(MonitoredSource(source, health))
            delay = 1.0
        except AudioDeviceError as e:
            log.error("mic.lost", error=str(e), retry_in_s=delay)
        health.retrying(True)
        await asyncio.sleep(delay)
        delay = min(delay * 2, settings.assistant.mic_retry_max_s)
        with contextlib.suppress(Exception):
            await source.aclose()
        source = MicrophoneSource(settings.audio)
        try:
            await source.start()
            log.info("mic.back")
            health.retrying(False)
        except AudioDeviceError as e:
            log.warning("mic.still_missing", error=str(e))


def _log_turn(record: TurnRecord) -> None:
    log.info("turn.done", **record.as_dict())
