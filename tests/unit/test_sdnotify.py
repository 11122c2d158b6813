"""sd_notify messages checked against real AF_UNIX datagram sockets, and the watchdog."""

from __future__ import annotations

import asyncio
import os
import socket
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from atlas import sdnotify
from atlas.sdnotify import Notifier, WatchdogPinger


@pytest.fixture
def path_socket(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    """A bound datagram socket in tmp_path (a shorter temp dir if the path is too long)."""
    path = tmp_path / "notify.sock"
    if len(str(path)) > 100:  # sun_path holds 108 bytes
        path = Path(tempfile.mkdtemp(prefix="sdn")) / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(2.0)
    yield sock, str(path)
    sock.close()


@pytest.fixture
def abstract_socket() -> Iterator[tuple[socket.socket, str]]:
    name = f"atlas-test-{uuid.uuid4().hex}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(b"\0" + name.encode())
    sock.settimeout(2.0)
    yield sock, "@" + name
    sock.close()


def recv_lines(sock: socket.socket) -> list[str]:
    return sock.recv(4096).decode().split("\n")


def nothing_pending(sock: socket.socket) -> bool:
    sock.setblocking(False)
    try:
        sock.recv(4096)
    except BlockingIOError:
        return True
    finally:
        sock.settimeout(2.0)
    return False


def test_messages_reach_a_path_socket(path_socket: tuple[socket.socket, str]) -> None:
    sock, path = path_socket
    n = Notifier.from_env({"NOTIFY_SOCKET": path})
    assert n.enabled

    assert n.ready("listening")
    assert recv_lines(sock) == ["READY=1", "STATUS=listening"]
    assert n.status("warming the voice")
    assert recv_lines(sock) == ["STATUS=warming the voice"]
    assert n.watchdog()
    assert recv_lines(sock) == ["WATCHDOG=1"]
    assert n.stopping()
    assert recv_lines(sock) == ["STOPPING=1"]
    assert n.ready()
    assert recv_lines(sock) == ["READY=1"]


def test_messages_reach_an_abstract_socket(abstract_socket: tuple[socket.socket, str]) -> None:
    sock, address = abstract_socket
    n = Notifier.from_env({"NOTIFY_SOCKET": address})
    assert n.ready("up")
    assert recv_lines(sock) == ["READY=1", "STATUS=up"]
    assert n.watchdog()
    assert recv_lines(sock) == ["WATCHDOG=1"]
    assert n.reloading()
    lines = recv_lines(sock)
    assert lines[0] == "RELOADING=1"
    assert lines[1].startswith("MONOTONIC_USEC=") and int(lines[1].split("=")[1]) > 0
    assert n.extend_timeout(2.5)
    assert recv_lines(sock) == ["EXTEND_TIMEOUT_USEC=2500000"]


def test_status_cannot_inject_other_assignments(path_socket: tuple[socket.socket, str]) -> None:
    sock, path = path_socket
    Notifier(path).status("loading\nREADY=1")
    assert recv_lines(sock) == ["STATUS=loading READY=1"]


def test_without_notify_socket_everything_is_a_quiet_no_op() -> None:
    n = Notifier.from_env({})
    with capture_logs() as logs:
        assert not n.enabled
        assert n.ready("x") is False
        assert n.watchdog() is False
        assert n.stopping() is False
    assert logs == []
    assert n.watchdog_interval_s is None


@pytest.mark.parametrize("address", ["/nonexistent-dir/for/atlas.sock", "relative.sock"])
def test_bad_socket_never_raises_and_warns_once(address: str) -> None:
    n = Notifier.from_env({"NOTIFY_SOCKET": address})
    with capture_logs() as logs:
        for _ in range(3):
            assert n.ready("x") is False
            assert n.watchdog() is False
    warnings = [e for e in logs if e["log_level"] == "warning"]
    assert len(warnings) == 1
    assert warnings[0]["socket"] == address


def test_socket_that_stops_existing_does_not_raise() -> None:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    path = Path(tempfile.mkdtemp(prefix="sdn")) / "gone.sock"
    sock.bind(str(path))
    n = Notifier(str(path))
    assert n.watchdog()
    sock.close()
    path.unlink()
    assert n.watchdog() is False


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"WATCHDOG_USEC": "30000000"}, 15.0),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid())}, 15.0),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid() + 1)}, None),
        ({"WATCHDOG_USEC": "0"}, None),
        ({"WATCHDOG_USEC": "soon"}, None),
        ({}, None),
    ],
)
def test_watchdog_interval_is_half_of_watchdog_usec(
    env: dict[str, str], expected: float | None
) -> None:
    n = Notifier.from_env({"NOTIFY_SOCKET": "@x", **env})
    assert n.watchdog_interval_s == expected


# --- WatchdogPinger -------------------------------------------------------------------


class Receiver:
    """Collects WATCHDOG=1 datagrams as they arrive (a reader callback, so nothing is lost).

    Collecting while the test runs matters: a unix datagram socket queues only a few
    datagrams (net.unix.max_dgram_qlen) before the sender gets EAGAIN.
    """

    def __init__(self, sock: socket.socket) -> None:
        sock.setblocking(False)
        self.sock = sock
        self.pings: list[float] = []
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(sock.fileno(), self._drain)

    def _drain(self) -> None:
        while True:
            try:
                data = self.sock.recv(4096)
            except BlockingIOError:
                return
            if data == b"WATCHDOG=1":
                self.pings.append(time.monotonic())

    async def close(self) -> None:
        self._loop.remove_reader(self.sock.fileno())
        self._drain()  # whatever was sent before the pinger stopped is queued already


async def test_pinger_pings_at_the_interval_while_healthy(
    abstract_socket: tuple[socket.socket, str],
) -> None:
    sock, address = abstract_socket
    rx = Receiver(sock)
    pinger = WatchdogPinger(Notifier(address), lambda: True, 0.05, max_lateness_s=1.0)
    task = asyncio.create_task(pinger.run())
    await asyncio.sleep(0.32)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.sleep(0.02)
    await rx.close()
    # One at start plus one per elapsed interval: about 7; never a burst, never silence.
    assert 4 <= len(rx.pings) <= 9
    assert pinger.sent == len(rx.pings)
    assert pinger.skipped == 0


async def test_pinger_stops_while_health_is_false(
    abstract_socket: tuple[socket.socket, str],
) -> None:
    sock, address = abstract_socket
    rx = Receiver(sock)
    healthy = True
    pinger = WatchdogPinger(Notifier(address), lambda: healthy, 0.03, max_lateness_s=1.0)
    task = asyncio.create_task(pinger.run())
    await asyncio.sleep(0.1)
    healthy = False
    await asyncio.sleep(0.01)  # let a ping that was already in flight arrive
    before = len(rx.pings)
    await asyncio.sleep(0.2)
    during = len(rx.pings) - before
    skipped = pinger.skipped
    healthy = True
    await asyncio.sleep(0.1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await rx.close()
    assert before >= 2
    assert during == 0
    assert skipped >= 3
    assert len(rx.pings) > before  # pings resume once healthy again


async def test_pinger_treats_a_raising_health_check_as_unhealthy(
    abstract_socket: tuple[socket.socket, str],
) -> None:
    sock, address = abstract_socket
    rx = Receiver(sock)

    def broken() -> bool:
        raise RuntimeError("probe failed")

    pinger = WatchdogPinger(Notifier(address), broken, 0.02, max_lateness_s=1.0)
    task = asyncio.create_task(pinger.run())
    await asyncio.sleep(0.1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await rx.close()
    assert rx.pings == []
    assert pinger.skipped >= 2


async def test_pinger_skips_the_ping_after_the_loop_was_blocked(
    abstract_socket: tuple[socket.socket, str],
) -> None:
    sock, address = abstract_socket
    rx = Receiver(sock)
    pinger = WatchdogPinger(Notifier(address), lambda: True, 0.05, max_lateness_s=0.2)
    task = asyncio.create_task(pinger.run())
    await asyncio.sleep(0.12)
    assert pinger.skipped == 0

    def wedge() -> None:
        time.sleep(0.6)  # blocks the event loop, as a model call on the loop thread would

    with capture_logs() as logs:
        blocker = asyncio.get_running_loop().call_soon(wedge)
        await asyncio.sleep(0)
        await asyncio.sleep(0.15)
    assert not blocker.cancelled()
    assert pinger.skipped >= 1
    assert any(e["event"] == "watchdog ping skipped" and e["lateness_ms"] > 200 for e in logs)

    # A responsive loop earns its pings back.
    sent_after_stall = pinger.sent
    await asyncio.sleep(0.2)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await rx.close()
    assert pinger.sent > sent_after_stall
    assert pinger.sent == len(rx.pings)


async def test_cancelled_pinger_sends_nothing_more(
    abstract_socket: tuple[socket.socket, str],
) -> None:
    sock, address = abstract_socket
    rx = Receiver(sock)
    task = asyncio.create_task(sdnotify.run(Notifier(address), lambda: True, 0.02))
    await asyncio.sleep(0.07)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert task.cancelled()
    await asyncio.sleep(0.01)
    count = len(rx.pings)
    await asyncio.sleep(0.1)
    await rx.close()
    assert count >= 1
    assert len(rx.pings) == count


async def test_run_returns_at_once_when_the_watchdog_is_off() -> None:
    n = Notifier.from_env({"NOTIFY_SOCKET": "@atlas-unused"})
    await asyncio.wait_for(sdnotify.run(n, lambda: True), timeout=1.0)


async def test_run_uses_half_of_watchdog_usec(abstract_socket: tuple[socket.socket, str]) -> None:
    sock, address = abstract_socket
    rx = Receiver(sock)
    n = Notifier.from_env({"NOTIFY_SOCKET": address, "WATCHDOG_USEC": "60000"})
    assert n.watchdog_interval_s == 0.03
    task = asyncio.create_task(sdnotify.run(n, lambda: True, max_lateness_s=1.0))
    await asyncio.sleep(0.2)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await rx.close()
    assert len(rx.pings) >= 4


def test_pinger_rejects_a_non_positive_interval() -> None:
    with pytest.raises(ValueError):
        WatchdogPinger(Notifier(None), lambda: True, 0)


def test_nothing_is_sent_to_a_socket_nobody_configured(
    path_socket: tuple[socket.socket, str],
) -> None:
    sock, _ = path_socket
    Notifier.from_env({}).ready("x")
    assert nothing_pending(sock)
