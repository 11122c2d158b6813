"""Owner, long-lived token and areas for the development Home Assistant (no browser).

Run by scripts/dev-home-assistant.sh with Home Assistant's OWN interpreter (it needs
aiohttp, which that venv has). Prints the long-lived token on stdout and nothing else;
progress goes to stderr. Idempotent for areas: an existing area is reused.

    python dev_home_assistant_bootstrap.py URL
"""

from __future__ import annotations

import asyncio
import json
import secrets
import sys
from typing import Any

import aiohttp

CLIENT_NAME = "atlas-dev"
# The demo's entities have no areas; these make "the living room lights" and "the
# temperature in the living room" mean something.
# (The demo's locks have no unique id, so they cannot be given an area.)
AREAS: dict[str, tuple[str, ...]] = {
    "Kitchen": ("light.kitchen_lights", "cover.kitchen_window"),
    "Living Room": (
        "light.living_room_rgbww_lights",
        "light.ceiling_lights",
        "climate.hvac",
        "sensor.outside_temperature",
    ),
    "Bedroom": ("light.bed_light",),
    "Hallway": ("cover.hall_window",),
    "Garage": ("cover.garage_door",),
}


async def main(url: str) -> int:
    async with aiohttp.ClientSession() as http:
        access = await _owner_access_token(http, url)
        ws_url = url.replace("http", "ws", 1) + "/api/websocket"
        async with http.ws_connect(ws_url) as ws:
            await ws.receive_json()  # auth_required
            await ws.send_json({"type": "auth", "access_token": access})
            ok = await ws.receive_json()
            if ok.get("type") != "auth_ok":
                raise SystemExit(f"websocket auth failed: {ok.get('type')}")
            calls = _Calls(ws)
            token = await calls.call(
                "auth/long_lived_access_token", client_name=CLIENT_NAME, lifespan=3650
            )
            await _assign_areas(calls)
    print(token)
    return 0


async def _owner_access_token(http: aiohttp.ClientSession, url: str) -> str:
    client_id = url + "/"
    async with http.post(
        f"{url}/api/onboarding/users",
        json={
            "client_id": client_id,
            "name": "Owner",
            "username": "owner",
            "password": secrets.token_urlsafe(18),
            "language": "en",
        },
    ) as r:
        if r.status != 200:
            raise SystemExit(f"onboarding refused ({r.status}): already onboarded without a token")
        code = (await r.json())["auth_code"]
    form = {"grant_type": "authorization_code", "code": code, "client_id": client_id}
    async with http.post(f"{url}/auth/token", data=form) as r:
        r.raise_for_status()
        return str((await r.json())["access_token"])


class _Calls:
    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self._ws = ws
        self._id = 0

    async def call(self, kind: str, **fields: Any) -> Any:
        self._id += 1
        await self._ws.send_json({"id": self._id, "type": kind, **fields})
        while True:
            msg = await self._ws.receive_json()
            if msg.get("id") == self._id and msg.get("type") == "result":
                if not msg.get("success"):
                    raise RuntimeError(f"{kind}: {json.dumps(msg.get('error'))}")
                return msg.get("result")


async def _assign_areas(calls: _Calls) -> None:
    existing = {a["name"]: a["area_id"] for a in await calls.call("config/area_registry/list")}
    registry = {e["entity_id"] for e in await calls.call("config/entity_registry/list")}
    for name, entity_ids in AREAS.items():
        area_id = existing.get(name)
        if area_id is None:
            area_id = (await calls.call("config/area_registry/create", name=name))["area_id"]
        for entity_id in entity_ids:
            if entity_id not in registry:
                print(f"not in the registry, no area: {entity_id}", file=sys.stderr)
                continue
            await calls.call("config/entity_registry/update", entity_id=entity_id, area_id=area_id)


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1].rstrip("/"))))
