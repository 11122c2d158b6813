"""The speaking commands: `atlas run`, `atlas replay`, `atlas say`."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from atlas.settings import Settings, load_secrets


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
    from atlas.daemon import replay
    from atlas.turn import TurnRecord
    from voice.audio import decode_audio

    decode_audio(args.file, settings.file_input.max_duration_s)  # bad file: fail before loading

    def on_turn(record: TurnRecord) -> None:
        if args.json:
            print(json.dumps(record.as_dict()), flush=True)
        elif record.addressed:
            lat = record.since_speech_end_ms.get("first_answer_sample")
            ms = f" [{lat:.0f} ms]" if lat is not None else ""
            said = f"({record.filler}) " if record.filler else ""
            print(f"> {record.transcript}\n< {said}{record.answer} ({record.tier}){ms}", flush=True)
        else:
            print(f"- ignored: {record.transcript!r} ({record.ignored_reason})", flush=True)

    asyncio.run(
        replay(
            settings,
            load_secrets(),
            args.file,
            out=args.out,
            realtime=args.realtime,
            no_wake=args.no_wake,
            on_turn=on_turn,
        )
    )
    if args.out:
        print(f"reply written to {args.out}", file=sys.stderr)
    return 0


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
