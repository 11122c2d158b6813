"""A dependency-free sd_notify client and an event-loop-driven watchdog pinger.

systemd (Type=notify) learns that ATLAS is ready, what it is doing and that it is still
alive from datagrams sent to $NOTIFY_SOCKET. Outside systemd the variable is unset and
every call is a cheap no-op, so the daemon never needs to know how it was started.

The watchdog pings are sent from a task on the event loop itself, and only while the
loop is demonstrably responsive: a loop that is blocked (a model call that escaped to
the loop thread, a deadlock) wakes the pinger late or not at all, the pings stop, and
systemd restarts the daemon after WatchdogSec.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections.abc import Callable, Mapping

import structlog

log = structlog.get_logger("atlas.sdnotify")


def _socket_address(raw: str) -> str | bytes | None:
    """$NOTIFY_SOCKET as an AF_UNIX address: a path, or "@name" for the abstract namespace."""
    if raw.startswith("@"):
        return b"\0" + raw[1:].encode()
    if raw.startswith("/"):
        return raw
    return None  # vsock:... and other transports are not spoken here


def _single_line(text: str) -> str:
    # A newline would start a new assignment: "STATUS=x\nREADY=1" must not be forgeable.
    return " ".join(text.splitlines())


class Notifier:
    """Sends sd_notify state lines. Never raises; warns once if sending fails."""

    def __init__(self, socket_path: str | None, watchdog_usec: int | None = None) -> None:
        self._raw = socket_path or None
        self._address = _socket_address(socket_path) if socket_path else None
        self._watchdog_usec = watchdog_usec if watchdog_usec and watchdog_usec > 0 else None
        self._warned = False

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> Notifier:
        """Read NOTIFY_SOCKET, WATCHDOG_USEC and WATCHDOG_PID as systemd sets them."""
        watchdog_usec: int | None = None
        try:
            usec = int(env.get("WATCHDOG_USEC", ""))
            pid_text = env.get("WATCHDOG_PID", "")
            # WATCHDOG_PID names the process the watchdog is meant for; a child that
            # merely inherited the environment must not ping on the parent's behalf.
            if usec > 0 and (not pid_text or int(pid_text) == os.getpid()):
                watchdog_usec = usec
        except ValueError:
            watchdog_usec = None
        return cls(env.get("NOTIFY_SOCKET") or None, watchdog_usec)

    @property
    def enabled(self) -> bool:
        """True when running under a service manager that listens for notifications."""
        return self._raw is not None

    @property
    def watchdog_interval_s(self) -> float | None:
        """How often to ping: half of WatchdogSec (systemd's advice); None when off."""
        if self._watchdog_usec is None:
            return None
        return self._watchdog_usec / 2_000_000

    def ready(self, status: str = "") -> bool:
        """READY=1, after every model is warm; optionally with a STATUS line."""
        lines = ["READY=1"]
        if status:
            lines.append(f"STATUS={_single_line(status)}")
        return self.send(*lines)

    def status(self, text: str) -> bool:
        """A free-form status shown by `systemctl --user status atlas`."""
        return self.send(f"STATUS={_single_line(text)}")

    def stopping(self, status: str = "") -> bool:
        lines = ["STOPPING=1"]
        if status:
            lines.append(f"STATUS={_single_line(status)}")
        return self.send(*lines)

    def reloading(self) -> bool:
        # MONOTONIC_USEC lets newer systemd (Type=notify-reload) match the reload to
        # the request; older versions ignore the extra field.
        return self.send("RELOADING=1", f"MONOTONIC_USEC={time.monotonic_ns() // 1000}")

    def watchdog(self) -> bool:
        return self.send("WATCHDOG=1")

    def extend_timeout(self, seconds: float) -> bool:
        """Ask for more start/stop time (EXTEND_TIMEOUT_USEC), e.g. a slow model load."""
        return self.send(f"EXTEND_TIMEOUT_USEC={max(0, int(seconds * 1_000_000))}")

    def send(self, *lines: str) -> bool:
        """Send one datagram of newline-separated assignments. True if it was sent."""
        if self._raw is None:
            return False
        if self._address is None:
            self._warn_once("unsupported NOTIFY_SOCKET address", detail=self._raw)
            return False
        payload = "\n".join(lines).encode()
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
                # Non-blocking: a manager that stopped reading must never stall the loop.
                sock.setblocking(False)
                sock.sendto(payload, self._address)
        except (OSError, ValueError) as exc:
            self._warn_once("sd_notify send failed", detail=f"{type(exc).__name__}: {exc}")
            return False
        return True

    def _warn_once(self, event: str, detail: str) -> None:
        # One warning per process is enough: a broken socket stays broken, and the
        # watchdog would otherwise log every 15 s forever.
        if not self._warned:
            self._warned = True
            log.warning(event, socket=self._raw, detail=detail)


class WatchdogPinger:
    """Sends WATCHDOG=1 every `interval_s`, but only while the event loop is healthy.

    Healthy means: this task woke up no later than `max_lateness_s` after it was due
    (a blocked loop shows up as lateness), and `health()` returns True. Any skipped
    ping lets systemd's WatchdogSec run out, which is the point: a wedged daemon gets
    restarted. Runs until cancelled; cancellation is clean and immediate.
    """

    def __init__(
        self,
        notifier: Notifier,
        health: Callable[[], bool],
        interval_s: float,
        max_lateness_s: float | None = None,
    ) -> None:
        if interval_s <= 0:
            raise ValueError("watchdog interval must be positive")
        self._notifier = notifier
        self._health = health
        self._interval_s = interval_s
        # Half an interval: generous for scheduling noise, far beyond the few ms the
        # loop may legitimately block.
        self._max_lateness_s = interval_s / 2 if max_lateness_s is None else max_lateness_s
        self._sent = 0
        self._skipped = 0

    @property
    def sent(self) -> int:
        return self._sent

    @property
    def skipped(self) -> int:
        return self._skipped

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        # The first ping goes out at once: the loop is obviously running right now.
        self._ping_if_healthy(lateness_s=0.0)
        due = loop.time()
        while True:
            due += self._interval_s
            await asyncio.sleep(max(0.0, due - loop.time()))
            lateness = loop.time() - due
            self._ping_if_healthy(lateness_s=lateness)
            if lateness > self._interval_s:
                # Do not try to catch up on missed ticks after a long stall.
                due = loop.time()

    def _ping_if_healthy(self, lateness_s: float) -> None:
        if lateness_s > self._max_lateness_s:
            self._skip("event loop was blocked", lateness_ms=round(lateness_s * 1000))
            return
        try:
            healthy = bool(self._health())
        except Exception as exc:  # a broken probe is an unhealthy daemon, not a crash
            self._skip("health check raised", error=type(exc).__name__)
            return
        if not healthy:
            self._skip("health check failed")
            return
        if self._notifier.watchdog():
            self._sent += 1

    def _skip(self, reason: str, **fields: object) -> None:
        self._skipped += 1
        log.warning("watchdog ping skipped", reason=reason, **fields)


async def run(
    notifier: Notifier,
    health: Callable[[], bool],
    interval: float | None = None,
    max_lateness_s: float | None = None,
) -> None:
    """Ping systemd's watchdog while healthy; returns at once when the watchdog is off.

    `interval` defaults to the notifier's watchdog_interval_s (half of WatchdogSec).
    Meant to be run as a task: `asyncio.create_task(sdnotify.run(notifier, health))`.
    """
    interval = notifier.watchdog_interval_s if interval is None else interval
    if interval is None:
        return
    await WatchdogPinger(notifier, health, interval, max_lateness_s).run()
