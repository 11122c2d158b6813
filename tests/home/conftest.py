"""A real Home Assistant for these tests: scripts/dev-home-assistant.sh, once per session.

When it cannot be started the tests SKIP with the reason, except under CI (CI=true),
where they FAIL: CI must never pass without having talked to a real Home Assistant.
A Home Assistant this fixture started is stopped at the end of the session.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from tests.conftest import ROOT

SCRIPT = ROOT / "scripts" / "dev-home-assistant.sh"
START_TIMEOUT_S = 900  # a first install takes minutes


@dataclass(frozen=True)
class LiveHome:
    """The running development Home Assistant and a plain REST view of it for checks."""

    url: str
    token: str = field(repr=False)

    def _client(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.url, headers={"Authorization": f"Bearer {self.token}"}, timeout=10
        )

    def state(self, entity_id: str) -> dict[str, Any]:
        with self._client() as c:
            r = c.get(f"/api/states/{entity_id}")
            r.raise_for_status()
            data: dict[str, Any] = r.json()
            return data

    def call(self, domain: str, service: str, **data: Any) -> None:
        with self._client() as c:
            c.post(f"/api/services/{domain}/{service}", json=data).raise_for_status()

    def wait_state(self, entity_id: str, *wanted: str, timeout_s: float = 20.0) -> str:
        deadline = time.monotonic() + timeout_s
        while True:
            state = str(self.state(entity_id)["state"])
            if state in wanted or time.monotonic() > deadline:
                return state
            time.sleep(0.2)

    async def await_state(self, entity_id: str, *wanted: str, timeout_s: float = 20.0) -> str:
        return await asyncio.to_thread(self.wait_state, entity_id, *wanted, timeout_s=timeout_s)


def _unavailable(reason: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"Home Assistant could not be started under CI: {reason}")
    pytest.skip(f"Home Assistant could not be started: {reason}")


def _script(action: str, timeout_s: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(SCRIPT), action], capture_output=True, text=True, timeout=timeout_s, check=False
    )


@pytest.fixture(scope="session")
def live_home() -> Iterator[LiveHome]:
    was_running = _script("status", 30).stdout.startswith("running")
    try:
        done = _script("start", START_TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired) as e:
        _unavailable(f"{SCRIPT.name} start: {type(e).__name__}")
        raise AssertionError("unreachable") from e
    lines = dict(line.split("=", 1) for line in done.stdout.splitlines() if line.startswith("HA_"))
    if done.returncode != 0 or not lines.get("HA_URL") or not lines.get("HA_TOKEN"):
        tail = done.stderr.strip().splitlines()[-1:] or ["no output"]
        _unavailable(f"{SCRIPT.name} start exited {done.returncode}: {tail[0]}")
    yield LiveHome(lines["HA_URL"], lines["HA_TOKEN"])
    if not was_running:
        _script("stop", 120)
