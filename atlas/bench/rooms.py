"""Voice-to-voice through real wyoming-satellites, 1, 2, 3 ... speaking at the same moment.

    python scripts/satellite_benchmark.py [--rooms 1 2 3] [--runs 5] [--wav FILE] [--json]

Each satellite (the real wyoming-satellite 1.0.0 on loopback, scripts/dev-wyoming-
satellite.sh) says the same recording `--runs` times; all start at the same moment.
Latency is measured from the audio: the end of speech in the input (energy end-point)
to the first reply sample >= 0.01 of full scale that the satellite was given to play.
The local path (the same recording through `atlas replay --realtime`'s loop) is
measured the same way for comparison. Peak RSS of the ATLAS process is reported.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import soundfile as sf

from atlas.bench.heard import energy_spans, first_audible
from atlas.bench.stats import Dist
from atlas.daemon import Stack, build_stack, room_parts, serve_recording
from atlas.logs import configure_logging
from atlas.settings import Secrets, Settings, load_settings
from atlas.testing.satellite import FIXTURES, RealSatellite, install_satellite
from atlas.testing.serving import free_port
from atlas.turn import TurnRecord
from atlas.wyoming.link import REPLY_RATE
from atlas.wyoming.rooms import SatelliteSpec, build_rooms, run_rooms
from voice.audio import decode_audio
from voice.sinks import NullSink, WavSink

_RATE = REPLY_RATE
_AUDIBLE = 0.01


def _speech_end_s(wav: Path) -> float:
    samples, rate = sf.read(str(wav), dtype="float32")
    return energy_spans(samples, rate)[-1].end_s


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def _local_path(stack: Stack, wav: Path, end_s: float, runs: int, tmp: Path) -> list[float]:
    settings = stack.settings
    audio = decode_audio(wav, settings.file_input.max_duration_s)
    lead = settings.file_input.lead_silence_ms / 1000
    out: list[float] = []
    for i in range(runs):
        started = time.monotonic() + 0.05
        path = tmp / f"local-{i}.wav"
        sink = WavSink(path, _RATE, start_at=started + lead, realtime=True)
        await serve_recording(
            stack,
            audio,
            sink=sink,
            start_at=started,
            realtime=True,
            wake=settings.wake,
            on_turn=lambda r: None,
            wait_for_timers=False,
        )
        await sink.aclose()
        reply, rate = sf.read(str(path), dtype="float32")
        first = first_audible(reply, rate, _AUDIBLE, start_s=end_s)
        out.append(float("nan") if first is None else (first - end_s) * 1000)
    return out


async def _satellites(
    stack: Stack, python: str, n: int, wav: Path, end_s: float, runs: int, gap_s: float, tmp: Path
) -> dict[str, object]:
    sats = [
        RealSatellite(
            python,
            tmp / f"n{n}",
            name=f"room{i}",
            port=free_port(),
            wav=wav,
            delay_s=0.5,
            repeat=runs,
            gap_s=gap_s,
        )
        for i in range(n)
    ]
    records: list[tuple[str, TurnRecord]] = []
    wall_offset = time.time() - time.monotonic()
    try:
        for sat in sats:
            await asyncio.to_thread(sat.wait_listening)
        parts = room_parts(stack)
        specs = [SatelliteSpec("127.0.0.1", s.port) for s in sats]
        rooms = build_rooms(parts, specs, lambda room, r: records.append((room, r)))
        serving = asyncio.create_task(run_rooms(rooms))
        for room in rooms:
            await asyncio.wait_for(room.connected.wait(), 60)
        for sat in sats:
            sat.go()
        deadline = time.monotonic() + runs * (end_s + gap_s + 10) + 60
        while time.monotonic() < deadline:
            if all(len(s.playbacks()) >= runs for s in sats):
                break
            await asyncio.sleep(0.25)
        await asyncio.sleep(1.0)
        serving.cancel()
        await asyncio.gather(serving, return_exceptions=True)
    finally:
        for sat in sats:
            sat.stop()
    per_room: dict[str, object] = {}
    all_ms: list[float] = []
    lost = 0
    # ATLAS's first answer sample (its own clock, as wall time) -> the satellite's speaker
    # process got its first byte: the hop through the satellite, for each room's turns.
    hop_ms: list[float] = []
    for sat in sats:
        written = sorted(
            r.timestamps["first_answer_sample"] + wall_offset
            for room, r in records
            if room == sat.name and "first_answer_sample" in r.timestamps
        )
        for play in sat.playbacks():
            before = [w for w in written if w <= play.first_byte_wall]
            if before:
                hop_ms.append((play.first_byte_wall - before[-1]) * 1000)
    for sat in sats:
        starts = sat.speech_starts()
        plays = sat.playbacks()
        ms: list[float] = []
        for k, start in enumerate(starts):
            end_wall = start + end_s
            until = starts[k + 1] if k + 1 < len(starts) else float("inf")
            heard = [p.first_audible_wall for p in plays if end_wall < p.first_audible_wall < until]
            if heard:
                ms.append((heard[0] - end_wall) * 1000)
            else:
                lost += 1
        all_ms += ms
        per_room[sat.name] = Dist.of(ms).as_dict()
    return {
        "rooms": n,
        "turns_expected": n * runs,
        "turns_lost": lost,
        "turns_logged": len(records),
        "all": Dist.of(all_ms).as_dict(),
        "satellite_hop": Dist.of(hop_ms).as_dict(),
        "per_room": per_room,
        "peak_rss_mb": round(_peak_rss_mb()),
    }


async def run(args: argparse.Namespace) -> dict[str, object]:
    python, why = install_satellite()
    if python is None:
        raise SystemExit(f"satellite-benchmark: wyoming-satellite unavailable: {why}")
    wav = Path(args.wav) if args.wav else FIXTURES / "local_what_time.wav"
    end_s = _speech_end_s(wav)
    with tempfile.TemporaryDirectory(prefix="atlas-satbench-") as tmp_name:
        tmp = Path(tmp_name)
        settings: Settings = load_settings(args.config)
        settings = replace(settings, budget=replace(settings.budget, db_path=str(tmp / "l.db")))
        stack = await build_stack(settings, Secrets(), lambda: NullSink(_RATE), lambda r: None)
        try:
            await _local_path(stack, wav, end_s, 1, tmp)  # warm-up, not counted
            local = await _local_path(stack, wav, end_s, args.runs, tmp)
            results = [
                await _satellites(stack, python, n, wav, end_s, args.runs, args.gap, tmp)
                for n in args.rooms
            ]
        finally:
            await stack.aclose()
    return {
        "wav": str(wav),
        "speech_end_s": round(end_s, 3),
        "runs": args.runs,
        "local": Dist.of(local).as_dict(),
        "satellites": results,
    }


def _table(report: dict[str, object]) -> str:
    local = report["local"]
    assert isinstance(local, dict)
    lines = [
        f"voice-to-voice from the audio ({report['wav']}, {report['runs']} runs per room)",
        f"local path           p50 {local['p50']} ms  p95 {local['p95']} ms",
        "rooms  p50 ms  p95 ms  max ms  lost  hop p50  peak RSS MB   per room p50/p95",
    ]
    sats = report["satellites"]
    assert isinstance(sats, list)
    for r in sats:
        per = "  ".join(f"{k} {v['p50']}/{v['p95']}" for k, v in r["per_room"].items())
        a, hop = r["all"], r["satellite_hop"]
        lines.append(
            f"{r['rooms']:5d}  {a['p50']!s:>6}  {a['p95']!s:>6}  {a['max']!s:>6}  "
            f"{r['turns_lost']:4d}  {hop['p50']!s:>7}  {r['peak_rss_mb']:11d}   {per}"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="satellite_benchmark", description=__doc__.splitlines()[0])
    p.add_argument("--rooms", type=int, nargs="+", default=[1, 2, 3], help="satellites at once")
    p.add_argument("--runs", type=int, default=5, help="utterances per satellite")
    p.add_argument("--gap", type=float, default=7.0, help="seconds between utterances")
    p.add_argument("--wav", help="16 kHz mono 16-bit WAV (default: local_what_time.wav)")
    p.add_argument("--config", type=Path)
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    if any(n < 1 or n > 8 for n in args.rooms) or not 1 <= args.runs <= 50:
        p.error("--rooms must be 1..8 and --runs 1..50")
    configure_logging("warning", "console")
    report = asyncio.run(run(args))
    print(json.dumps(report) if args.json else _table(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
