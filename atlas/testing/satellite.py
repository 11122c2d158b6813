"""The real wyoming-satellite 1.0.0 (its own venv, scripts/dev-wyoming-satellite.sh),
started with a paced WAV as its microphone (paced_mic.py) and a recorder as its speaker
(record_snd.py): for the rooms tests and the satellite latency benchmark."""

from __future__ import annotations

import json
import os
import shlex
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from voice.types import Samples

HERE = Path(__file__).parent
ROOT = HERE.parent.parent
SCRIPT = ROOT / "scripts" / "dev-wyoming-satellite.sh"
FIXTURES = ROOT / "tests" / "fixtures" / "audio"
SND_RATE = 22050


_EVENT_HOOKS = (
    ("--stt-start-command", "stt-start"),
    ("--stt-stop-command", "stt-stop"),
    ("--transcript-command", "transcript"),
    ("--tts-start-command", "tts-start"),
)


def install_satellite() -> tuple[str | None, str]:
    """(python of the satellite's venv, or None; why not)."""
    try:
        run = subprocess.run(
            [str(SCRIPT), "install"], capture_output=True, text=True, timeout=600, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        return None, str(e)
    if run.returncode != 0:
        return None, (run.stderr.strip().splitlines() or ["install failed"])[-1]
    return run.stdout.strip().splitlines()[-1], ""


@dataclass(frozen=True)
class Playback:
    audio: Samples
    first_byte_wall: float

    @property
    def first_audible_wall(self) -> float:
        """When a speaker fed at once would sound: first sample >= 0.01 of full scale."""
        loud = np.flatnonzero(np.abs(self.audio) >= 0.01)
        return self.first_byte_wall + (loud[0] / SND_RATE if len(loud) else 0.0)


class RealSatellite:
    """`python -m wyoming_satellite` on 127.0.0.1:`port`, saying `wav` once told to go."""

    def __init__(
        self,
        python: str,
        workdir: Path,
        *,
        name: str,
        port: int,
        wav: str | Path,
        area: str | None = None,
        delay_s: float = 0.5,
        repeat: int = 1,
        gap_s: float = 0.0,
    ) -> None:
        self.name = name
        self.port = port
        self.dir = workdir / name
        self.dir.mkdir(parents=True, exist_ok=True)
        self.go_file = self.dir / "go"
        self.marks = self.dir / "marks"
        self.snd = self.dir / "snd"
        mic_args = [HERE / "paced_mic.py", FIXTURES / wav, self.go_file, self.marks]
        mic = shlex.join([python, *map(str, [*mic_args, delay_s, repeat, gap_s])])
        args = [python, "-m", "wyoming_satellite", "--uri", f"tcp://127.0.0.1:{port}"]
        args += ["--name", name, "--no-zeroconf", "--debug", "--mic-command", mic]
        # -S: no site import, so the recorder (started per playback) starts quickly.
        snd = [python, "-S", str(HERE / "record_snd.py"), str(self.snd)]
        args += ["--snd-command", shlex.join(snd)]
        # Pipeline events as the satellite's own hooks see them, one line each, in order.
        self.events = self.dir / "events"
        for flag, name in _EVENT_HOOKS:
            line = f"{name!r} + ' ' + sys.stdin.read().strip() + '\\n'"
            note = f"import sys; open(sys.argv[1], 'a').write({line})"
            args += [flag, shlex.join([python, "-S", "-c", note, str(self.events)])]
        if area:
            args += ["--area", area]
        self._log = open(self.dir / "satellite.log", "ab")  # noqa: SIM115 (closed in stop)
        self.proc = subprocess.Popen(
            args, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True
        )

    def wait_listening(self, timeout_s: float = 60.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"satellite {self.name} exited: {self.log_text()[-500:]}")
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.1)
        raise TimeoutError(f"satellite {self.name} is not listening on {self.port}")

    def pipeline_events(self) -> list[str]:
        """The pipeline events the satellite's hooks ran for, in order: stt-start,
        stt-stop, transcript (with its text), tts-start."""
        if not self.events.exists():
            return []
        return self.events.read_text(encoding="utf-8").splitlines()

    def go(self) -> None:
        self.go_file.touch()

    def speech_starts(self) -> list[float]:
        if not self.marks.exists():
            return []
        return [json.loads(line)["wall"] for line in self.marks.read_text().splitlines()]

    def playbacks(self) -> list[Playback]:
        """Finished playbacks, in order (one per audio-start ... audio-stop)."""
        out = []
        for meta in sorted(self.snd.glob("play-*.json")):
            info = json.loads(meta.read_text())
            pcm = np.frombuffer(meta.with_suffix(".raw").read_bytes(), "<i2")
            out.append(Playback(pcm.astype(np.float32) / 32768.0, info["first_byte_wall"] or 0.0))
        return out

    def playing(self) -> bool:
        """A playback has started (its .raw exists) but may not be finished."""
        return any(self.snd.glob("play-*.raw"))

    def log_text(self) -> str:
        return (self.dir / "satellite.log").read_text(errors="replace")

    def stop(self) -> None:
        """Gone at once, like a board pulled from the wall (its mic and speaker too)."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)
        self._log.close()
