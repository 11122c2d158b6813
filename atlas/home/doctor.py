"""`atlas doctor`'s Home Assistant lines: reachable? how many entities? the fix if not."""

from __future__ import annotations

import asyncio

from atlas.home.client import HomeClient, HomeError
from atlas.home.config import HomeAssistantConfig, HomeConnection


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
