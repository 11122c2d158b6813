"""`atlas run --satellite ... --no-local-audio`: the daemon on a box with no sound card,
serving the real wyoming-satellite; and its bad input."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from atlas.settings import DEFAULT_CONFIG
from atlas.testing.satellite import RealSatellite
from atlas.wyoming.rooms import SatelliteSpec
from tests.conftest import ROOT
from tests.rooms.conftest import free_port

TIMEOUT_S = 240.0


def _atlas(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "atlas.cli", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize(
    ("args", "problem"),
    [
        (["--satellite", "http://127.0.0.1:10700"], "use tcp://"),
        (["--satellite", "tcp://kitchen"], "needs a host and a port"),
        (["--satellite", "unix:///tmp/sat.sock"], "use tcp://HOST:PORT"),
        (["--no-local-audio"], "needs a satellite"),
        (["--satellite", "tcp://127.0.0.1:10700?room=kitchen"], "only one name= and one area="),
        (["--satellite", "tcp://127.0.0.1:10700?name="], "only one name= and one area="),
        (["--satellite", "tcp://127.0.0.1:10700?name=a&name=b"], "only one name= and one area="),
    ],
)
def test_bad_satellite_arguments_are_one_line(args: list[str], problem: str) -> None:
    run = _atlas("run", *args)
    assert run.returncode == 2
    assert problem in run.stderr
    assert len(run.stderr.strip().splitlines()) == 1


_ATLAS = [sys.executable, "-m", "atlas.cli"]
_CLOUD_ENV = {"ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL", "CREDENTIALS_DIRECTORY", "ATLAS_CONFIG"}


def _config(tmp: Path, satellites: list[str] | None = None) -> Path:
    """The shipped config with the ledger in `tmp` and the embedded local model."""
    data: dict[str, Any] = yaml.safe_load(DEFAULT_CONFIG.read_text(encoding="utf-8"))
    data["satellites"] = satellites or []
    data["budget"]["db_path"] = str(tmp / "ledger.sqlite3")
    data["llm"]["local"]["backend"] = "embedded"
    path = tmp / "atlas.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    shutil.copy(DEFAULT_CONFIG.parent / data.get("routing_file", "routing.yaml"), tmp)
    return path


def test_bad_satellite_in_config_names_the_file(tmp_path: Path) -> None:
    config = _config(tmp_path, satellites=["kitchen:10700"])
    run = _atlas("--config", str(config), "run", "--no-local-audio")
    assert run.returncode == 2
    assert f"{config}: satellites: bad satellite 'kitchen:10700'" in run.stderr
    assert len(run.stderr.strip().splitlines()) == 1


def test_satellite_spec_takes_name_and_area() -> None:
    spec = SatelliteSpec.parse("tcp://192.168.1.31:10700?name=kitchen&area=Living%20Room")
    assert (spec.host, spec.port, spec.name, spec.area) == (
        "192.168.1.31",
        10700,
        "kitchen",
        "Living Room",
    )
    assert SatelliteSpec.parse("tcp://127.0.0.1:10700").name is None


def _turns(log: Path) -> list[dict[str, object]]:
    out = []
    for line in log.read_text(errors="replace").splitlines():
        if '"turn.done"' in line and '"room"' in line:
            out.append(json.loads(line))
    return out


@pytest.mark.slow
def test_daemon_serves_a_satellite_without_a_sound_card(
    satellite_python: str, tmp_path: Path
) -> None:
    sat = RealSatellite(
        satellite_python, tmp_path, name="hall", port=free_port(), wav="local_what_time.wav"
    )
    log = tmp_path / "atlas.log"
    config = _config(tmp_path)
    # No key: nothing may leave loopback (the cloud tiers are simply unavailable).
    env = {k: v for k, v in os.environ.items() if k not in _CLOUD_ENV}
    args = ["--config", str(config), "--log-level", "info", "run", "--no-local-audio"]
    args += ["--satellite", f"tcp://127.0.0.1:{sat.port}"]
    with open(log, "wb") as err:
        daemon = subprocess.Popen(
            [*_ATLAS, *args],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=err,
            env=env,
        )
    try:
        deadline = time.monotonic() + TIMEOUT_S
        while "satellite.connected" not in log.read_text(errors="replace"):
            assert daemon.poll() is None, log.read_text()[-2000:]
            assert time.monotonic() < deadline, "the daemon never connected"
            time.sleep(0.2)
        sat.go()
        while not (_turns(log) and sat.playbacks()):
            assert daemon.poll() is None, log.read_text()[-2000:]
            assert time.monotonic() < deadline, "no turn through the satellite"
            time.sleep(0.2)
        [turn] = _turns(log)
        assert turn["room"] == "hall"
        assert "what time" in str(turn["transcript"]).lower()
        assert turn["tier"] == "skill"
        assert sat.playbacks()[0].audio.size > 0
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(timeout=120) == 0
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.wait()
        sat.stop()
