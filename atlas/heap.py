"""Keep a long-running process's heap from creeping up (glibc only; a no-op elsewhere).

glibc serves big allocations with mmap and returns them to the system on free, but
after the first such free it raises its mmap threshold (up to 32 MiB), so later big
buffers (Whisper's and Piper's tensors, audio arrays) come from the heap, where freed
memory is fragmented and rarely returned. RSS then climbs with every new largest
input. Two fixes were measured (Piper synthesising 120 texts of growing length, with a
Whisper transcription after each, one process; onnxruntime's arena off, see voice.tts):

* defaults: RSS 503 -> 1014 MB;
* the mmap threshold pinned at 128 KiB: 346 -> 353 MB, but every big buffer is then a
  fresh mmap with its page faults: Whisper took ~50% longer (331 -> 500 ms p50 on a
  1.6 s command, quiet box), on the latency path of every turn;
* `malloc_trim(0)` after each turn (what ATLAS does): 367 -> 394 MB, Whisper at its
  normal speed. The trim runs once a turn is over, on a worker thread.
"""

from __future__ import annotations

import ctypes
import time

import structlog

log = structlog.get_logger("atlas.heap")


def trim() -> bool:
    """Give the heap's free pages back to the system; False where that is not glibc."""
    try:
        libc = ctypes.CDLL("libc.so.6")  # already loaded: dlopen just hands it back
        malloc_trim = libc.malloc_trim
    except (OSError, AttributeError):  # not glibc (musl, macOS): nothing to do
        return False
    started = time.perf_counter()
    malloc_trim(0)
    log.debug("heap.trimmed", ms=round((time.perf_counter() - started) * 1000, 1))
    return True
