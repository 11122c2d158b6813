"""Keep a long-running process's heap from creeping up (glibc only; a no-op elsewhere).

glibc serves big allocations with mmap and returns them to the system on free, but
after the first such free it raises its mmap threshold (up to 32 MiB), so later big
buffers (Whisper's and Piper's tensors, audio arrays) come from the heap, where freed
memory is fragmented and rarely returned. RSS then climbs with every new largest
input. Measured in one process, Piper synthesising 120 texts of growing length with a
Whisper transcription of a 1.6 s command after each (onnxruntime's arena off, see
voice.tts; 2 cores, other work running):

| heap policy                                  | RSS          | Whisper p50 |
|----------------------------------------------|--------------|-------------|
| glibc's defaults                             | 503 -> 1014  | fastest     |
| threshold pinned at 128 KiB                  | 346 -> 352   | 544 ms      |
| defaults + malloc_trim after each turn       | 367 -> 378   | 398 ms      |
| threshold pinned at 32 MiB + malloc_trim     | 340 -> 345   | 414 ms      |

A low pinned threshold makes every big buffer a fresh mmap with its page faults, on the
latency path of every turn; a 300-turn soak with the trim alone still grew 8.9% after
turn 100. So ATLAS pins the threshold at glibc's own ceiling (which stops the dynamic
raising) and trims once each turn is over, on a worker thread.
"""

from __future__ import annotations

import ctypes

_M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD_BYTES = 32 * 1024 * 1024


def _malloc(name: str) -> object | None:
    try:
        fn: object = getattr(ctypes.CDLL("libc.so.6"), name)  # already loaded: handed back
        return fn
    except (OSError, AttributeError):  # not glibc (musl, macOS): nothing to do
        return None


def fix_mmap_threshold(size: int = MMAP_THRESHOLD_BYTES) -> bool:
    """Pin glibc's mmap threshold (which also turns off its dynamic raising)."""
    mallopt = _malloc("mallopt")
    return bool(mallopt(_M_MMAP_THRESHOLD, size)) if callable(mallopt) else False


def trim() -> bool:
    """Give the heap's free pages back to the system; False where that is not glibc."""
    malloc_trim = _malloc("malloc_trim")
    if not callable(malloc_trim):
        return False
    malloc_trim(0)
    return True
