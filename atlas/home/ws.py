"""A minimal WebSocket client (RFC 6455, text frames) for Home Assistant's WebSocket API.

Only what that API needs: one connection, JSON text messages, ping/pong, close. It keeps
ATLAS free of another dependency; REST (httpx) does everything else.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import struct
from typing import Any
from urllib.parse import urlsplit

_MAX_MESSAGE = 8 * 1024 * 1024


class WebSocketError(Exception):
    """The connection failed or the peer broke the protocol."""


class WebSocket:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer

    @classmethod
    async def connect(cls, url: str) -> WebSocket:
        parts = urlsplit(url)
        if parts.scheme not in ("ws", "wss") or not parts.hostname:
            raise WebSocketError(f"not a ws:// URL: {parts.scheme}://{parts.hostname}")
        tls = parts.scheme == "wss"
        port = parts.port or (443 if tls else 80)
        reader, writer = await asyncio.open_connection(parts.hostname, port, ssl=tls or None)
        key = base64.b64encode(os.urandom(16)).decode()
        host = parts.netloc.rsplit("@", 1)[-1]
        request = (
            f"GET {parts.path or '/'} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        writer.write(request.encode())
        await writer.drain()
        status = await reader.readline()
        if b" 101 " not in status:
            writer.close()
            raise WebSocketError(f"upgrade refused: {status.decode(errors='replace').strip()}")
        while (await reader.readline()) not in (b"\r\n", b""):
            pass
        return cls(reader, writer)

    async def send_json(self, data: Any) -> None:
        await self._send(0x1, json.dumps(data).encode())

    async def receive_json(self) -> Any:
        parts: list[bytes] = []
        while True:
            fin, opcode, payload = await self._frame()
            if opcode == 0x9:  # ping
                await self._send(0xA, payload)
            elif opcode == 0x8:
                raise WebSocketError("closed by the server")
            elif opcode in (0x0, 0x1, 0x2):
                parts.append(payload)
                if sum(map(len, parts)) > _MAX_MESSAGE:
                    raise WebSocketError("message too large")
                if fin:
                    return json.loads(b"".join(parts))

    async def close(self) -> None:
        with contextlib.suppress(OSError, RuntimeError):
            await self._send(0x8, b"")
        self._writer.close()
        with contextlib.suppress(OSError):
            await self._writer.wait_closed()

    async def _send(self, opcode: int, payload: bytes) -> None:
        mask = os.urandom(4)
        n = len(payload)
        if n < 126:
            head = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
        elif n < 1 << 16:
            head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
        else:
            head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self._writer.write(head + mask + masked)
        await self._writer.drain()

    async def _frame(self) -> tuple[bool, int, bytes]:
        try:
            b1, b2 = await self._reader.readexactly(2)
            n = b2 & 0x7F
            if n == 126:
                (n,) = struct.unpack("!H", await self._reader.readexactly(2))
            elif n == 127:
                (n,) = struct.unpack("!Q", await self._reader.readexactly(8))
            if n > _MAX_MESSAGE:
                raise WebSocketError("frame too large")
            mask = await self._reader.readexactly(4) if b2 & 0x80 else b""
            payload = await self._reader.readexactly(n)
        except asyncio.IncompleteReadError:
            raise WebSocketError("connection closed") from None
        if mask:
            payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        return bool(b1 & 0x80), b1 & 0x0F, payload
