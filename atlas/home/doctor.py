"""`atlas doctor`'s Home Assistant lines: reachable? how many entities? the fix if not."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from atlas.home.client import HomeClient, HomeError
from atlas.home.config import HomeAssistantConfig, HomeConnection

if TYPE_CHECKING:
    from atlas.doctor import DoctorLine, Status
    from atlas.settings import Secrets, Settings


async def home_doctor_lines(config: HomeAssistantConfig, connection: HomeConnection) -> list[str]:
    """One line per finding: 'ok ...', 'off ...' (not set up) or 'PROBLEM ...: fix'.

    Never shows the token.
    """
    problem = connection.problem
    if connection.url is None:  # optional: ATLAS then says it has no hand on the house
        return [f"off      home assistant: {problem}"]
    if problem is not None or connection.token is None:
        return [f"PROBLEM  home assistant: {problem}"]
    client = HomeClient(connection.url, connection.token, max(config.timeout_s, 5.0))
    try:
        await client.check()
        states = await client.states()
        areas: dict[str, str] | str
        try:
            areas = await asyncio.wait_for(client.areas(), timeout=max(config.timeout_s, 5.0))
        except (HomeError, TimeoutError) as e:
            areas = f"areas unreadable ({type(e).__name__})"
    except HomeError as e:
        return [f"PROBLEM  home assistant: {e}"]
    finally:
        await client.aclose()
    allowed = set(config.allowed_domains)
    usable = sum(1 for s in states if s.domain in allowed)
    area_text = areas if isinstance(areas, str) else f"{len(areas)} areas"
    lines = [
        f"ok       home assistant: reachable at {connection.url}, token accepted",
        f"ok       home assistant: {len(states)} entities ({usable} in allowed domains), "
        f"{area_text}",
    ]
    if config.weather_entity is None and not any(s.domain == "weather" for s in states):
        lines.append(
            "PROBLEM  home assistant: no weather entity: add a weather integration in Home "
            "Assistant for weather questions"
        )
    return lines


_STATUS: dict[str, Status] = {"ok": "ok", "off": "warn", "PROBLEM": "FAIL"}


async def doctor_lines(settings: Settings, secrets: Secrets) -> list[DoctorLine]:
    """The Home Assistant section of `atlas doctor` (atlas.doctor.EXTRA_SECTIONS)."""
    from atlas.doctor import DoctorLine
    from atlas.home.config import connect

    cfg = settings.home_assistant
    out: list[DoctorLine] = []
    for line in await home_doctor_lines(cfg, connect(cfg)):
        head, _, rest = line.partition(" ")
        detail = rest.strip().removeprefix("home assistant:").strip()
        status = _STATUS.get(head, "warn")
        fix = ""
        if status != "ok" and ": " in detail:
            detail, _, fix = detail.rpartition(": ")
        out.append(DoctorLine("home", status, "home assistant", detail, fix))
    return out
