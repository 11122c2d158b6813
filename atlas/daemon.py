"""`atlas run` (microphone in, speaker out) and `atlas replay` (a file in, a WAV out).

Both build the same stack and run the same `Conversation` loop; only the source and
the sink differ, so a replay is the daemon's own behaviour on a recording.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import Callable
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
from atlas.heap import fix_mmap_threshold
from atlas.modelstore import ModelStore
from atlas.persona import Persona
from atlas.settings import Secrets, Settings
from atlas.turn import TurnRecord
from atlas.wake import WakeConfig, WakeGate
from voice.audio import DecodedAudio, MicrophoneSource, decode_audio
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
) -> Stack:
    """Everything loaded and warmed: STT, embedder, local LLM, TTS, filler cache.

    The sink is made last, so a recording's clock starts when ATLAS is ready."""
    t0 = time.perf_counter()
    fix_mmap_threshold()  # a daemon runs for months: see atlas.heap
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
        deadlines=settings.deadlines,
    )
    timers = brain.timers if settings.assistant.announce_timers else None
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
) -> None:
    """Run the daemon's pipeline on `path`; what ATLAS says goes to `out` with real timing.

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


async def run_daemon(settings: Settings, secrets: Secrets) -> int:
    """Serve turns from the microphone until SIGTERM/SIGINT. Returns the exit code."""
    notifier = sdnotify.Notifier.from_env()
    mic = MicrophoneSource(settings.audio)
    await mic.start()  # no microphone at start: AudioDeviceError -> exit 78 in the CLI
    speaker = SpeakerSink(settings.audio)
    await speaker.start()
    stack = await build_stack(settings, secrets, lambda: speaker, _log_turn)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    health = DaemonHealth(stall_s=_STALL_S)
    listen = asyncio.create_task(_listen_forever(stack, mic, settings, health), name="listen")
    timers = asyncio.create_task(stack.conversation.announce_timers(), name="timers")
    health.watch("listen", listen)
    health.watch("timers", timers)
    tasks = [
        listen,
        timers,
        asyncio.create_task(sdnotify.run(notifier, health), name="watchdog"),
    ]
    notifier.ready("listening")
    log.info("daemon.listening")
    await stop.wait()
    notifier.stopping("stopping")
    log.info("daemon.stopping")
    await stack.conversation.shutdown(settings.assistant.shutdown_grace_s)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    with contextlib.suppress(Exception):
        await mic.aclose()
    await stack.aclose()  # closes the speaker, flushes the ledger
    return 0


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
