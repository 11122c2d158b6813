"""`atlas serve-wyoming`: build the engines once, serve them until SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import signal
import sys
from dataclasses import dataclass
from functools import partial
from urllib.parse import urlparse

import structlog
from wyoming.server import AsyncServer

from atlas.llm.router import AnswerResult, Router
from atlas.settings import Secrets, Settings
from atlas.skills.timers import TimerService
from atlas.wyoming.services import Answer, Engines, ServiceHandler

log = structlog.get_logger("atlas.wyoming.serve")

DEFAULT_URI = "tcp://127.0.0.1:10300"


class UriError(ValueError):
    """A --uri that cannot be served (one line for the user)."""


@dataclass(frozen=True)
class Endpoint:
    uri: str
    host: str | None
    port: int | None

    @property
    def is_loopback(self) -> bool:
        return self.host in ("127.0.0.1", "localhost", "::1") or self.host is None


def parse_uri(uri: str, what: str = "--uri", unix: bool = True) -> Endpoint:
    """tcp://HOST:PORT (or, with `unix`, unix://PATH); anything else is a UriError
    whose text starts with "bad `what`"."""
    bad = f"bad {what} {uri!r}"
    try:
        parts = urlparse(uri)
        port = parts.port
    except ValueError as e:
        raise UriError(f"{bad}: {e}") from None
    if parts.scheme == "unix" and unix:
        if not parts.path:
            raise UriError(f"{bad}: unix:// needs a socket path")
        return Endpoint(uri, None, None)
    if parts.scheme != "tcp":
        raise UriError(f"{bad}: use tcp://HOST:PORT" + (" or unix://PATH" if unix else ""))
    if not parts.hostname or port is None:
        raise UriError(f"{bad}: tcp:// needs a host and a port")
    return Endpoint(uri, parts.hostname, port)


def router_answer(router: Router) -> Answer:
    """The `handle` service's answer: the router's whole reply as text."""

    async def answer(text: str) -> str:
        said: list[str] = []
        async for item in router.ask(text):
            if isinstance(item, AnswerResult):
                log.info("handle", tier=item.answered_by, reason=item.decision.reason)
                return item.text
            said.append(item)
        return "".join(said).strip()

    return answer


async def serve_wyoming(
    settings: Settings, secrets: Secrets, endpoint: Endpoint, *, handle: bool
) -> int:
    from atlas.app import build_ears, build_store
    from atlas.brain import build_brain
    from atlas.daemon import build_tts

    store = build_store(settings)
    ears = build_ears(settings, store)
    tts = build_tts(settings, store)
    # Nothing here rings a timer (no speaker, no satellite): the timer skill says so
    # instead of promising one.
    no_timers = TimerService(standalone=True)
    brain = await build_brain(settings, store, secrets, timers=no_timers) if handle else None
    engines = Engines(
        transcriber=ears.transcriber,
        tts=tts,
        chunker=settings.chunker,
        stt_model=settings.stt.model,
        voice=settings.tts.voice,
        language=settings.stt.language,
        answer=router_answer(brain.router) if brain else None,
        home_control=brain is not None and brain.home is not None,
    )
    server = AsyncServer.from_uri(endpoint.uri)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        try:
            await server.start(partial(ServiceHandler, engines))
        except OSError as e:
            raise UriError(f"cannot listen on {endpoint.uri}: {e.strerror or e}") from None
        services = "asr, tts" + (", handle" if handle else "")
        print(f"atlas: serving Wyoming {services} on {endpoint.uri}", file=sys.stderr, flush=True)
        if not endpoint.is_loopback:
            log.warning("wyoming.exposed", uri=endpoint.uri, note="Wyoming has no authentication")
        await stop.wait()
    finally:
        await server.stop()
        if brain is not None:
            await brain.aclose()
        ears.close()
        tts.close()
    return 0
