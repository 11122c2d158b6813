"""A microphone for wyoming-satellite's --mic-command: raw 16 kHz 16-bit mono on stdout,
paced like a real microphone (standard library only: it runs in the satellite's venv).

Silence until GO_FILE exists (ATLAS is connected), then DELAY_S of silence, then the
WAV (16 kHz mono 16-bit), REPEAT times with GAP_S of silence between, then silence
until stdout closes. Each time the WAV starts, one JSON line {"wall": time.time()} is
appended to MARKS (the reference for voice-to-voice latency measured from the audio).

    python paced_mic.py WAV GO_FILE MARKS [DELAY_S] [REPEAT] [GAP_S]
"""

import json
import os
import sys
import time
import wave

RATE = 16000
CHUNK = 1024  # samples per write: 64 ms


def main() -> None:
    wav, go, marks = sys.argv[1:4]
    delay = float(sys.argv[4]) if len(sys.argv) > 4 else 0.5
    repeat = int(sys.argv[5]) if len(sys.argv) > 5 else 1
    gap = float(sys.argv[6]) if len(sys.argv) > 6 else 0.0
    with wave.open(wav, "rb") as w:
        assert w.getframerate() == RATE and w.getnchannels() == 1 and w.getsampwidth() == 2
        speech = w.readframes(w.getnframes())
    silence = bytes(2 * CHUNK)
    out = sys.stdout.buffer
    t0 = time.monotonic()
    sent = 0  # samples

    def put(data: bytes) -> None:
        nonlocal sent
        out.write(data)
        out.flush()
        sent += len(data) // 2
        ahead = t0 + sent / RATE - time.monotonic()
        if ahead > 0:
            time.sleep(ahead)

    try:
        while not os.path.exists(go):
            put(silence)
        for _ in range(round(delay * RATE / CHUNK)):
            put(silence)
        for i in range(repeat):
            if i:
                for _ in range(round(gap * RATE / CHUNK)):
                    put(silence)
            with open(marks, "a") as f:
                f.write(json.dumps({"wall": time.time()}) + "\n")
            for j in range(0, len(speech), 2 * CHUNK):
                put(speech[j : j + 2 * CHUNK])
        while True:
            put(silence)
    except (BrokenPipeError, KeyboardInterrupt):
        pass


if __name__ == "__main__":
    main()
