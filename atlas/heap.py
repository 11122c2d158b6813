"""Keep a long-running process's heap from creeping up (glibc only; a no-op elsewhere).

glibc serves big allocations with mmap and returns them to the system on free, but
after the first such free it raises its mmap threshold (up to 32 MiB), so later big
buffers (Whisper's and Piper's tensors, audio arrays) come from the heap, where freed
pages stay resident. RSS then climbs with every new largest input. The daemon calls
`trim()` (`malloc_trim(0)`: every arena's free pages go back to the system) once each
turn is over, on a worker thread (`Conversation.answer`), so nothing on a turn's path
waits for it and nothing allocates differently while a turn runs.

Measured with scripts/heap_experiment.py: one process with Whisper and Piper loaded
as the daemon loads them, a longer answer synthesised every few rounds, Whisper on the
soak's fixtures; each setting in a fresh process on the 2-core box, load average 3-7.
RSS from the end of the warm-up (a quarter of the rounds) to the last round:

    glibc defaults                       536 -> 548 MB; 30 rounds, 4 runs: +0.3..+19%
    trim after each round                384 -> 384 MB (one sample of 9 at 426)
    M_ARENA_MAX 1 + trim                 345 -> 345 MB (steady in all 3 runs)
    M_ARENA_MAX 2 + trim                 372 -> 373 MB
    mmap threshold 128 KiB .. 8 MiB      347 -> 347 MB (any value)
    M_TRIM_THRESHOLD 32 MiB, M_TOP_PAD 0 349 -> 349 MB (either one also pins the mmap
                                         threshold at 128 KiB)
    Piper in a worker process + trim     689 -> 673 MB, both processes (a second
                                         onnxruntime costs more than it saves)

Whisper on a 3.4 s command, p50 of 24 decodes per run, runs alternated side by side:
defaults 439/533/594/407 ms, trim 505/495/533/347 ms (no cost), arena_max 1 + trim
530/303 ms, mmap threshold 128 KiB + trim 1007/760 ms: pinned, the threshold no longer
rises, and Whisper's buffers become a fresh mmap, page faults and all, on every
decode (512 KiB: 1113 ms and 2 MiB: 1321 ms in runs of their own; 8 MiB: 696 ms).

`atlas bench soak` answers through `Conversation.answer`, so it trims as the daemon
does: 300 turns +1.0% and +2.0% after turn 100 in two runs (653 -> 660 and 653 -> 667
MB), 1,000 turns +0.3% (687 -> 689 MB, never above 698). Before it went through the
conversation it never trimmed: +6.9% over 300 turns (838 -> 896 MB). With
GLIBC_TUNABLES=glibc.malloc.arena_max=1 as well: 300 turns +1.8% (631 -> 642 MB); one
arena is shared by every engine's threads, and the target is met without it, so it is
left to the operator.

What the trim cannot give back is memory still in use (or pages partly in use). Runs
vary: four more 300-turn soaks of the same code grew +3.4% (659 -> 682 MB), +1.8% (658
-> 670 MB; 690 at turn 250), merged with the int8 router embedder +4.2% (624 -> 650
MB), and with a gc.collect() before each trim (an experiment, not adopted) +6.1%: flat
at 668-669 MB up to turn 250, then 709 MB. The steps come in the last 42 turns of a
run, after the refused key sends every cloud question to the local model; a 1,000-turn
soak meets that phase after its RSS has settled higher and showed no step there. They
are not llama.cpp's context buffers (one 186 MB mapping whose pages become resident as
longer contexts are first used: 45 -> 70 MB from a 20- to a 1,000-word prompt when
measured alone; 48-49 MB resident throughout a soak), nor file pages (176 MB
throughout); what they are is not known yet.
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
