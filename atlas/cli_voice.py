"""The speaking commands: `atlas run`, `atlas replay`, `atlas say`."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from atlas.settings import Settings, load_secrets

if TYPE_CHECKING:
    from atlas.replay_progress import ReplayProgress
    from atlas.turn import TurnRecord
    from voice.audio import FileSource


def add_parsers(sub: Any) -> None:
    run = sub.add_parser("run", help="the daemon: microphone in, speaker out")
    run.add_argument(
        "--satellite",
        action="append",
        default=[],
        metavar="tcp://HOST:PORT[?name=N&area=A]",
        help="also serve this Wyoming satellite as a room (repeatable)",
    )
    run.add_argument(
        "--no-local-audio",
        action="store_true",
        help="no microphone or speaker here: serve only the satellites",
    )

    r = sub.add_parser("replay", help="the daemon's pipeline fed from an audio file")
    r.add_argument("file", type=Path, metavar="FILE")
    r.add_argument("--out", type=Path, metavar="REPLY.wav", help="write what ATLAS says here")
    r.add_argument("--json", action="store_true", help="one JSON object per turn")
    r.add_argument("--realtime", action="store_true", help="feed the input at wall-clock pace")
    r.add_argument("--no-wake", action="store_true", help="every utterance is for ATLAS")

    s = sub.add_parser("say", help="speak a text with the configured voice")
    s.add_argument("text", metavar="TEXT")
    s.add_argument("--out", type=Path, metavar="FILE.wav", help="write a WAV instead of playing")


def cmd_run(args: argparse.Namespace, settings: Settings) -> int:
    from atlas.daemon import run_daemon
    from atlas.wyoming.rooms import SatelliteSpec
    from atlas.wyoming.serve import UriError

    where = f"{settings.source or 'config'}: satellites: "
    try:
        satellites = [SatelliteSpec.parse(uri) for uri in settings.satellites]
        where = ""
        satellites += [SatelliteSpec.parse(uri) for uri in args.satellite]
    except UriError as e:
        print(f"atlas: {where}{e}", file=sys.stderr)
        return 2
    if args.no_local_audio and not satellites:
        print("atlas: --no-local-audio needs a satellite (--satellite or config)", file=sys.stderr)
        return 2
    local_audio = not args.no_local_audio
    return asyncio.run(run_daemon(settings, load_secrets(), satellites, local_audio=local_audio))


def cmd_replay(args: argparse.Namespace, settings: Settings) -> int:
    from atlas.app import build_store
    from atlas.replay_progress import ReplayProgress
    from voice.audio import decode_audio

    progress = ReplayProgress(0.0)
    # Until the replay's event loop takes the signals over, SIGTERM stops it the same way.
    previous = signal.signal(signal.SIGTERM, _raise_stopped)
    try:
        audio = decode_audio(args.file, settings.file_input.max_duration_s)  # bad: fail early
        progress.duration_s = audio.duration_s
        vad = build_store(settings).resolve("silero-vad", "vad", "vad.model")
        progress.count_utterances(audio, settings, vad.path)
        return _replay(args, settings, progress)
    except _Stopped as e:
        signum: int = e.signum
    except KeyboardInterrupt:
        signum = signal.SIGINT
    finally:
        signal.signal(signal.SIGTERM, previous)
        progress.stop_counting()
    print(f"atlas: {progress.cut_short(signum, args.out)}", file=sys.stderr)
    return 128 + signum


class _Stopped(Exception):
    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _raise_stopped(signum: int, frame: object) -> None:
    raise _Stopped(signum)


def _replay(args: argparse.Namespace, settings: Settings, progress: ReplayProgress) -> int:
    def on_turn(record: TurnRecord) -> None:
        progress.turns += 1
        progress.answered += record.addressed
        if args.json:
            print(json.dumps(record.as_dict()), flush=True)
        elif record.addressed:
            lat = record.since_speech_end_ms.get("first_answer_sample")
            ms = f" [{lat:.0f} ms]" if lat is not None else ""
            said = f"({record.filler}) " if record.filler else ""
            print(f"> {record.transcript}\n< {said}{record.answer} ({record.tier}){ms}", flush=True)
        else:
            print(f"- ignored: {record.transcript!r} ({record.ignored_reason})", flush=True)

    signum = asyncio.run(_replay_until_signal(args, settings, on_turn, progress))
    if signum is not None:
        return 128 + signum  # the line was printed when the signal came
    if args.out:
        print(f"reply written to {args.out}", file=sys.stderr)
    return 0


async def _replay_until_signal(
    args: argparse.Namespace,
    settings: Settings,
    on_turn: Callable[[TurnRecord], None],
    progress: ReplayProgress,
) -> int | None:
    """Run the replay; SIGTERM/SIGINT cancel it cleanly (a second one exits at once,
    e.g. while a model is still loading in a worker thread the loop must wait for).
    Returns the signal that stopped it, or None when it ran to the end."""
    from atlas.daemon import replay

    def keep(source: FileSource) -> None:
        progress.source = source

    task = asyncio.create_task(
        replay(
            settings,
            load_secrets(),
            args.file,
            out=args.out,
            realtime=args.realtime,
            no_wake=args.no_wake,
            on_turn=on_turn,
            on_source=keep,
        )
    )
    got: list[int] = []

    def stop(signum: int) -> None:
        if got:  # the clean stop (models still loading, say) is too slow for them: go now
            os._exit(128 + got[0])
        got.append(signum)
        # Said at once: how far it got does not change while the stack shuts down.
        print(f"atlas: {progress.cut_short(signum, args.out)}", file=sys.stderr, flush=True)
        task.cancel()

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop, sig)
    try:
        await task
    except asyncio.CancelledError:
        if not got:
            raise
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
    return got[0] if got else None


def cmd_say(args: argparse.Namespace, settings: Settings) -> int:
    if not args.text.strip():
        print("atlas: nothing to say (the text is empty)", file=sys.stderr)
        return 2
    return asyncio.run(_say(args, settings))


async def _say(args: argparse.Namespace, settings: Settings) -> int:
    from atlas.app import build_store
    from atlas.daemon import build_tts
    from voice.chunker import SentenceChunker, chunks
    from voice.sinks import AudioSink, SpeakerSink, WavSink

    tts = build_tts(settings, build_store(settings))
    sink: AudioSink
    if args.out:
        sink = WavSink(args.out, tts.sample_rate, realtime=False)
    else:
        speaker = SpeakerSink(settings.audio)
        await speaker.start()  # no speaker: one line, exit 78 (suggesting --out)
        sink = speaker

    async def text() -> AsyncIterator[str]:
        yield args.text

    try:
        async for piece in tts.stream(chunks(text(), SentenceChunker(settings.chunker))):
            await sink.write(piece.audio, piece.sample_rate, label=piece.text)
        await sink.wait_for_playout()
    finally:
        await sink.aclose()
        tts.close()
    return 0
