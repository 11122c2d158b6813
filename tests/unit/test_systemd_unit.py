"""systemd/atlas.service: verified by systemd-analyze, and its sandbox exposure measured.

How verification is made robust: the unit is a USER unit whose paths hang off %h
(ExecStart=%h/atlas/.venv/bin/atlas). `systemd-analyze --user verify` resolves %h, %C
and friends from $HOME / $XDG_* and needs $XDG_RUNTIME_DIR, and it fails when the
ExecStart binary does not exist. So each test builds a throw-away home in tmp_path with
a fake executable at exactly the ExecStart path, and runs systemd-analyze with HOME,
XDG_RUNTIME_DIR and the XDG base directories pointing into it. No running systemd is
needed and nothing outside tmp_path is read for the unit's own paths. systemd-analyze
exits 0 on unknown keys or bad values (it only warns), so the tests also fail on any
warning that names the unit.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "systemd" / "atlas.service"
ENV_EXAMPLE = ROOT / "systemd" / "atlas.env.example"
SYSTEMD_ANALYZE = shutil.which("systemd-analyze")
needs_analyze = pytest.mark.skipif(SYSTEMD_ANALYZE is None, reason="systemd-analyze missing")

BARE_UNIT = "[Service]\nExecStart=/bin/true\n"
MAX_EXPOSURE = 6.0  # 9.x is systemd's UNSAFE verdict for a unit without any sandboxing
EXPOSURE_RE = re.compile(r"Overall exposure level for \S+: (\d+(?:\.\d+)?) (\w+)")


def parse_unit(text: str) -> dict[str, dict[str, list[str]]]:
    """Sections -> key -> every value assigned (keys may repeat)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        key, _, value = line.partition("=")
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


def service() -> dict[str, list[str]]:
    return parse_unit(UNIT.read_text(encoding="utf-8"))["Service"]


class Sandbox:
    """A throw-away home with the unit copied in and its ExecStart made real."""

    def __init__(self, tmp_path: Path, unit_text: str, fake_binary: bool = True) -> None:
        self.home = tmp_path / "home"
        runtime = tmp_path / "run"
        runtime.mkdir(mode=0o700, parents=True)
        self.home.mkdir()
        self.unit = tmp_path / "units" / "atlas.service"
        self.unit.parent.mkdir()
        self.unit.write_text(unit_text, encoding="utf-8")
        exec_start = parse_unit(unit_text)["Service"]["ExecStart"][0]
        binary = Path(exec_start.split()[0].replace("%h", str(self.home)))
        if fake_binary:
            binary.parent.mkdir(parents=True, exist_ok=True)
            binary.write_text("#!/bin/sh\nexit 0\n", encoding="utf-8")
            binary.chmod(0o755)
        self.env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(self.home),
            "XDG_RUNTIME_DIR": str(runtime),
            "XDG_CONFIG_HOME": str(self.home / ".config"),
            "XDG_DATA_HOME": str(self.home / ".local" / "share"),
            "XDG_CACHE_HOME": str(self.home / ".cache"),
            "XDG_STATE_HOME": str(self.home / ".local" / "state"),
            "SYSTEMD_LOG_COLOR": "0",
            "SYSTEMD_PAGER": "",
            "LANG": "C.UTF-8",
        }

    def analyze(self, *args: str, unit: Path | None = None) -> subprocess.CompletedProcess[str]:
        assert SYSTEMD_ANALYZE is not None
        return subprocess.run(
            [SYSTEMD_ANALYZE, "--user", *args, str(unit or self.unit)],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    def unit_warnings(self, proc: subprocess.CompletedProcess[str]) -> list[str]:
        return [ln for ln in proc.stderr.splitlines() if "atlas.service" in ln]


def exposure(proc: subprocess.CompletedProcess[str]) -> tuple[float, str]:
    m = EXPOSURE_RE.search(proc.stdout)
    assert m, f"no exposure line in:\n{proc.stdout}\n{proc.stderr}"
    return float(m.group(1)), m.group(2)


# --- what the unit declares -------------------------------------------------------------


def test_unit_is_a_notify_service_with_a_watchdog() -> None:
    s = service()
    assert s["Type"] == ["notify"]
    assert s["NotifyAccess"] == ["main"]
    assert int(s["WatchdogSec"][0]) > 0
    assert int(s["TimeoutStartSec"][0]) >= 60  # warming the models takes a while


def test_unit_restarts_on_failure_but_not_without_a_microphone() -> None:
    s = service()
    assert s["Restart"] == ["on-failure"]
    assert "78" in " ".join(s["RestartPreventExitStatus"]).split()


def test_api_key_comes_from_a_credential_or_an_optional_env_file() -> None:
    s = service()
    assert any(v.startswith("anthropic_api_key:") for v in s["LoadCredential"])
    # The credential name must be the file atlas.settings.load_secrets reads.
    settings_src = (ROOT / "atlas" / "settings.py").read_text(encoding="utf-8")
    assert '"anthropic_api_key"' in settings_src
    assert all(v.startswith("-") for v in s["EnvironmentFile"])
    assert "ANTHROPIC_API_KEY" not in " ".join(s.get("Environment", []))


def test_unit_is_hardened_without_breaking_audio() -> None:
    s = service()
    for key, value in {
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "ProtectHome": "read-only",
        "PrivateTmp": "yes",
        "CapabilityBoundingSet": "",
    }.items():
        assert s[key] == [value], key
    families = " ".join(s["RestrictAddressFamilies"]).split()
    assert "AF_UNIX" in families  # PipeWire/PulseAudio and sd_notify
    assert "PrivateDevices" not in s  # it would hide /dev/snd
    assert "MemoryDenyWriteExecute" not in s  # oneDNN JIT and cffi callbacks need W+X
    writable = " ".join(s["ReadWritePaths"]).split()
    assert "%h/.local/share/atlas" in writable


def test_env_example_only_has_commented_placeholders() -> None:
    lines = ENV_EXAMPLE.read_text(encoding="utf-8").splitlines()
    active = [ln for ln in lines if ln.strip() and not ln.lstrip().startswith("#")]
    assert active == []
    text = "\n".join(lines)
    assert "ANTHROPIC_API_KEY=" in text and "ATLAS_CONFIG=" in text


# --- systemd-analyze --------------------------------------------------------------------


@needs_analyze
def test_systemd_analyze_verify_passes(tmp_path: Path) -> None:
    box = Sandbox(tmp_path, UNIT.read_text(encoding="utf-8"))
    proc = box.analyze("verify")
    assert proc.returncode == 0, proc.stderr
    assert box.unit_warnings(proc) == []


@needs_analyze
def test_verify_fails_when_execstart_is_missing(tmp_path: Path) -> None:
    # The control for the test above: the fake tree is what makes ExecStart resolvable.
    box = Sandbox(tmp_path, UNIT.read_text(encoding="utf-8"), fake_binary=False)
    proc = box.analyze("verify")
    assert proc.returncode != 0
    assert any("not executable" in ln for ln in box.unit_warnings(proc))


@needs_analyze
def test_verify_check_catches_a_misspelt_option(tmp_path: Path) -> None:
    broken = UNIT.read_text(encoding="utf-8").replace("LockPersonality=", "LockPersonalty=")
    box = Sandbox(tmp_path, broken)
    proc = box.analyze("verify")
    assert any("LockPersonalty" in ln for ln in box.unit_warnings(proc))


@needs_analyze
def test_security_exposure_is_well_below_a_bare_unit(
    tmp_path: Path, record_property: Callable[[str, object], None]
) -> None:
    box = Sandbox(tmp_path, UNIT.read_text(encoding="utf-8"))
    ours = box.analyze("security", "--offline=yes")
    assert ours.returncode == 0, ours.stderr
    score, verdict = exposure(ours)

    bare_unit = tmp_path / "units" / "bare.service"
    bare_unit.write_text(BARE_UNIT, encoding="utf-8")
    bare_score, bare_verdict = exposure(box.analyze("security", "--offline=yes", unit=bare_unit))

    record_property("systemd_exposure", score)
    print(f"atlas.service exposure {score} {verdict} (bare unit: {bare_score} {bare_verdict})")
    assert bare_verdict == "UNSAFE"
    assert score <= MAX_EXPOSURE
    assert score < bare_score
