"""Reproduce the daemon's RSS creep in minutes, and measure what a heap setting costs.

One process loads Whisper and Piper the way the daemon does (build_ears, build_tts;
`--llama` adds the embedded SmolLM2), then runs N rounds: Piper synthesises a text
longer than the last one (the soak's steps came with every longer answer), Whisper
transcribes the soak's fixtures in turn, and the latency probe (a command) is
transcribed first in each round, right after the last round's trim, and timed. It
prints RSS every `--every` rounds and ends with one JSON line: RSS after the warm-up
and at the end, growth, Whisper p50/p90 on the probe after the warm-up.

glibc's malloc is tuned before anything else is imported (numpy starts threads on
import, and M_ARENA_MAX only binds arenas made after it). The figures in atlas/heap.py
came from these (a few minutes each on 2 busy cores):

    python scripts/heap_experiment.py                               # glibc defaults
    python scripts/heap_experiment.py --trim                        # malloc_trim each round
    python scripts/heap_experiment.py --mallopt arena_max=1 --trim
    python scripts/heap_experiment.py --mallopt mmap_threshold=131072 --trim
    python scripts/heap_experiment.py --piper-process --trim        # Piper in a worker
    python scripts/heap_experiment.py --rounds 30 --settled 6 --max-sentences 6 --trim

Every setting runs in a fresh process: compare runs taken side by side on the same load.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from atlas.modelstore import ModelStore
    from atlas.settings import Settings

_MALLOPT = {"trim_threshold": -1, "top_pad": -2, "mmap_threshold": -3, "arena_max": -8}


def _tune(spec: list[str]) -> None:
    libc = ctypes.CDLL("libc.so.6")
    for item in spec:
        name, value = item.split("=")
        if libc.mallopt(_MALLOPT[name], int(value)) != 1:
            raise SystemExit(f"mallopt {name}={value} refused")


def _rss_mb(pid: int | str = "self") -> float:
    with open(f"/proc/{pid}/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def _tree_rss_mb() -> float:
    """This process and its children (a worker's memory is the daemon's too)."""
    total = _rss_mb()
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                with open(f"/proc/{pid}/stat", encoding="ascii") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
                if ppid == os.getpid():
                    total += _rss_mb(pid)
            except (OSError, ValueError):
                continue
    return total


_SENTENCES = (
    "A heat pump moves warmth from the air outside into the house.",
    "It does so much as a refrigerator moves heat out of its box, and uses little power.",
    "Lisbon in spring is mild, with long evenings and very few crowds.",
    "The train from Porto takes about three hours and the views are lovely.",
    "Dinner tonight could be a simple risotto, with mushrooms and a little thyme.",
    "The sky is blue because the air scatters short wavelengths of sunlight the most.",
)


def _text(n_sentences: int) -> str:
    return " ".join(_SENTENCES[i % len(_SENTENCES)] for i in range(n_sentences))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--mallopt", nargs="*", default=[], metavar="NAME=VALUE")
    p.add_argument("--trim", action="store_true", help="malloc_trim(0) after each round")
    p.add_argument("--rounds", type=int, default=48)
    p.add_argument("--settled", type=int, default=12, help="growth counted after this round")
    p.add_argument("--every", type=int, default=6)
    p.add_argument("--max-sentences", type=int, default=10)
    p.add_argument("--llama", action="store_true", help="also a local-model answer per round")
    p.add_argument("--piper-process", action="store_true", help="Piper in a worker process")
    p.add_argument("--label", default="")
    args = p.parse_args(argv)
    _tune(args.mallopt)  # before numpy & co start their threads

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from atlas.app import build_ears, build_store
    from atlas.bench.ears import FIXTURES
    from atlas.bench.soak import UTTERANCES
    from atlas.daemon import build_tts
    from atlas.heap import trim
    from atlas.settings import load_settings
    from voice.decode import decode_audio

    settings = load_settings()
    store = build_store(settings)
    ears = build_ears(settings, store)
    tts = _PiperProcess(settings) if args.piper_process else build_tts(settings, store)
    llama = _llama(settings, store) if args.llama else None
    audio = [decode_audio(FIXTURES / name).samples for name, _ in UTTERANCES]
    probe = decode_audio(FIXTURES / "local_what_time.wav").samples

    rss: list[tuple[int, float]] = []
    probe_ms: list[float] = []
    for i in range(args.rounds):
        # The probe comes first: like the next turn's Whisper, it runs right after the
        # last round's trim (and pays for any page the trim gave back).
        probe_ms.append(ears.transcriber.transcribe_sync(probe).stt_ms)
        ears.transcriber.transcribe_sync(audio[i % len(audio)])
        n = 1 + i * args.max_sentences // args.rounds  # a longer answer every few rounds
        tts.synthesize(_text(n))
        if llama is not None:
            llama(i)
        if args.trim:
            trim()
        if i % args.every == 0 or i == args.rounds - 1:
            rss.append((i, _tree_rss_mb()))
            print(f"round {i:4d}  {n:2d} sentences  RSS {rss[-1][1]:7.1f} MB", flush=True)
    settled = next(mb for r, mb in rss if r >= args.settled)
    end = rss[-1][1]
    tail = probe_ms[args.settled :]
    q = statistics.quantiles(tail, n=10)
    print(
        json.dumps(
            {
                "label": args.label or " ".join([*args.mallopt, *(["trim"] if args.trim else [])]),
                "rss_settled_mb": round(settled, 1),
                "rss_end_mb": round(end, 1),
                "growth_pct": round(100 * (end / settled - 1), 1),
                "whisper_p50_ms": round(statistics.median(tail), 1),
                "whisper_p90_ms": round(q[8], 1),
                "load": [round(x, 2) for x in os.getloadavg()],
            }
        ),
        flush=True,
    )
    tts.close()
    ears.close()
    return 0


class _PiperProcess:
    """Piper synthesising in a child process (stdin/stdout pipes, length-prefixed)."""

    def __init__(self, settings: Settings) -> None:
        import subprocess

        code = (
            "import sys,struct\n"
            "out=sys.stdout.buffer; sys.stdout=sys.stderr\n"  # logs must not mix with audio
            "from atlas.app import build_store\n"
            "from atlas.daemon import build_tts\n"
            "from atlas.settings import load_settings\n"
            "s=load_settings(); t=build_tts(s, build_store(s))\n"
            "for line in sys.stdin:\n"
            "    a=t.synthesize(line.rstrip('\\n')).tobytes()\n"
            "    out.write(struct.pack('<Q',len(a))+a); out.flush()\n"
        )
        self._proc = subprocess.Popen(
            [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE
        )

    def synthesize(self, text: str) -> bytes:
        import struct

        assert self._proc.stdin is not None and self._proc.stdout is not None
        self._proc.stdin.write(text.encode() + b"\n")
        self._proc.stdin.flush()
        (size,) = struct.unpack("<Q", self._proc.stdout.read(8))
        return self._proc.stdout.read(size)

    def close(self) -> None:
        assert self._proc.stdin is not None
        self._proc.stdin.close()
        self._proc.wait(timeout=30)


def _llama(settings: Settings, store: ModelStore) -> Callable[[int], None]:
    from atlas.llm.embedded import _open_llama  # the daemon's own way to open it

    local = settings.llm.local
    path = store.resolve(local.embedded_model, "gguf", "llm.local.embedded_model").path
    llm = _open_llama(path, local)

    def answer(i: int) -> None:
        q = ("Tell me about the sea.", "What is a good name for a cat?", "Say something kind.")
        for _ in llm.create_chat_completion(
            [{"role": "user", "content": q[i % 3]}], stream=True, max_tokens=96
        ):
            pass

    return answer


if __name__ == "__main__":
    started = time.monotonic()
    code = main()
    print(f"# {time.monotonic() - started:.0f} s", file=sys.stderr)
    sys.exit(code)
