"""A speaker for wyoming-satellite's --snd-command (standard library only): each
playback's raw 22050 Hz 16-bit mono goes to OUTDIR/play-<n>.raw, with a JSON file
saying when its first byte arrived (wall clock), for latency measured from the audio.

    python record_snd.py OUTDIR
"""

import json
import os
import sys
import time


def main() -> None:
    outdir = sys.argv[1]
    os.makedirs(outdir, exist_ok=True)
    name = os.path.join(outdir, f"play-{time.time_ns()}")
    first = None
    size = 0
    with open(name + ".raw", "wb") as f:
        while True:
            data = os.read(0, 65536)
            if not data:
                break
            if first is None:
                first = time.time()
            f.write(data)
            f.flush()
            size += len(data)
    with open(name + ".json", "w") as f:
        json.dump({"first_byte_wall": first, "bytes": size}, f)


if __name__ == "__main__":
    main()
