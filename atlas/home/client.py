"""Home Assistant's REST API (httpx) and the few WebSocket commands REST lacks.

Every failure becomes a `HomeError` whose `kind` says what went wrong and whose text
names the problem and the fix. Neither ever contains the token.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx

from atlas.home.ws import WebSocket, WebSocketError

ErrorKind = Literal["unreachable", "timeout", "auth", "not_found", "refused", "bad_response"]


_BASE_HINT = (
    ": set home_assistant.url / HA_URL to Home Assistant's base URL "
    "(e.g. http://homeassistant.local:8123)"
)


class HomeError(Exception):
    def __init__(self, kind: ErrorKind, message: str) -> None:
        super().__init__(message)
        self.kind: ErrorKind = kind


@dataclass(frozen=True)
class EntityState:
    entity_id: str
    state: str
    attributes: Mapping[str, Any] = field(default_factory=dict)

    @property
    def domain(self) -> str:
        return self.entity_id.split(".", 1)[0]

    @property
    def name(self) -> str:
        return str(self.attributes.get("friendly_name") or self.entity_id.split(".", 1)[-1])

    @classmethod
    def parse(cls, data: Any) -> EntityState:
        if not isinstance(data, Mapping) or not isinstance(data.get("entity_id"), str):
            raise HomeError("bad_response", "Home Assistant sent a state without an entity_id")
        attrs = data.get("attributes")
        return cls(
            data["entity_id"], str(data.get("state")), attrs if isinstance(attrs, dict) else {}
        )


class HomeClient:
    """One Home Assistant: `url` is its base URL, `token` a long-lived access token."""

    def __init__(self, url: str, token: str, timeout_s: float) -> None:
        self.url = url.rstrip("/")
        self._token = token
        self._http = httpx.AsyncClient(
            base_url=self.url,
            headers={"Authorization": f"Bearer {token}"},
            timeout=httpx.Timeout(timeout_s, connect=min(timeout_s, 2.0)),
        )

    def __repr__(self) -> str:
        return f"HomeClient({self.url})"

    async def aclose(self) -> None:
        await self._http.aclose()

    # ------------------------------------------------------------------ REST

    async def states(self) -> list[EntityState]:
        data = await self._request("GET", "/api/states")
        if not isinstance(data, list):
            raise HomeError("bad_response", "Home Assistant's /api/states is not a list")
        return [EntityState.parse(s) for s in data]

    async def state(self, entity_id: str) -> EntityState:
        path = f"/api/states/{entity_id}"
        return EntityState.parse(await self._request("GET", path, missing="not_found"))

    async def call_service(
        self, domain: str, service: str, data: Mapping[str, Any], *, timeout_s: float | None = None
    ) -> list[EntityState]:
        """Call a service; returns the states it changed (as Home Assistant reports them).

        Home Assistant answers when the service has finished (a lock motor: seconds), so a
        caller that only needs it started gives a longer `timeout_s` and does not wait.
        """
        path = f"/api/services/{domain}/{service}"
        changed = await self._request("POST", path, dict(data), timeout_s=timeout_s)
        return [EntityState.parse(s) for s in changed] if isinstance(changed, list) else []

    async def converse(self, text: str, language: str) -> Mapping[str, Any]:
        """Home Assistant's own intents: POST /api/conversation/process; its `response`."""
        data = await self._request(
            "POST", "/api/conversation/process", {"text": text, "language": language}
        )
        response = data.get("response") if isinstance(data, Mapping) else None
        if not isinstance(response, Mapping):
            raise HomeError("bad_response", "Home Assistant's conversation answer has no response")
        return response

    async def check(self) -> str:
        """GET /api/: Home Assistant's own message when the URL and the token are right."""
        data = await self._request("GET", "/api/")
        return str(data.get("message", "")) if isinstance(data, Mapping) else ""

    async def _request(
        self,
        method: str,
        path: str,
        body: Any = None,
        timeout_s: float | None = None,
        missing: ErrorKind = "refused",
    ) -> Any:
        """The JSON answer; a 404 is `missing` (an entity) or a wrong base URL (the rest)."""
        timeout = self._http.timeout if timeout_s is None else httpx.Timeout(timeout_s)
        try:
            r = await self._http.request(method, path, json=body, timeout=timeout)
        except httpx.TimeoutException:
            raise HomeError(
                "timeout", f"Home Assistant at {self.url} did not answer {path} in time"
            ) from None
        except httpx.HTTPError as e:
            raise HomeError(
                "unreachable",
                f"Home Assistant is not reachable at {self.url} ({type(e).__name__}): "
                "start it, or correct home_assistant.url / HA_URL",
            ) from None
        if r.status_code in (401, 403):
            raise HomeError(
                "auth",
                f"Home Assistant at {self.url} refused the token ({r.status_code}): create a "
                "long-lived access token (your profile > Security) and set HA_TOKEN",
            )
        if r.status_code == 404 and missing == "not_found":
            raise HomeError("not_found", f"Home Assistant has no {path}")
        if r.status_code in (404, 405):
            raise HomeError("refused", f"{self.url} has no {path} ({r.status_code}){_BASE_HINT}")
        if r.status_code >= 400:
            raise HomeError("refused", f"Home Assistant answered {r.status_code} to {path}")
        try:
            return r.json()
        except ValueError:
            raise HomeError("bad_response", f"{self.url}{path} is not JSON{_BASE_HINT}") from None

    # ------------------------------------------------------------- WebSocket

    async def ws_command(self, kind: str, **fields: Any) -> Any:
        """One command over a fresh WebSocket connection (areas, registry, forecasts)."""
        url = "ws" + self.url[4:] + "/api/websocket"
        try:
            ws = await WebSocket.connect(url)
        except (OSError, WebSocketError) as e:
            raise HomeError(
                "unreachable",
                f"Home Assistant's WebSocket at {self.url} failed ({type(e).__name__})",
            ) from None
        try:
            await ws.receive_json()  # auth_required
            await ws.send_json({"type": "auth", "access_token": self._token})
            if (await ws.receive_json()).get("type") != "auth_ok":
                raise HomeError("auth", f"Home Assistant at {self.url} refused the token")
            await ws.send_json({"id": 1, "type": kind, **fields})
            while True:
                msg = await ws.receive_json()
                if msg.get("id") == 1 and msg.get("type") == "result":
                    break
        except (OSError, WebSocketError, ValueError) as e:
            raise HomeError(
                "bad_response", f"Home Assistant's WebSocket broke off ({type(e).__name__})"
            ) from None
        finally:
            await ws.close()
        if not msg.get("success"):
            error = msg.get("error") or {}
            raise HomeError("refused", f"{kind}: {error.get('code')}: {error.get('message')}")
        return msg.get("result")

    async def forecast(self, entity_id: str, kind: str = "daily") -> list[Mapping[str, Any]]:
        result = await self.ws_command(
            "call_service",
            domain="weather",
            service="get_forecasts",
            service_data={"type": kind},
            target={"entity_id": entity_id},
            return_response=True,
        )
        try:
            entries = result["response"][entity_id]["forecast"]
        except (KeyError, TypeError):
            return []
        return [e for e in entries if isinstance(e, Mapping)] if isinstance(entries, list) else []

    async def areas(self) -> dict[str, str]:
        """area_id -> name."""
        rows = await self.ws_command("config/area_registry/list")
        return {str(a["area_id"]): str(a["name"]) for a in rows or [] if "area_id" in a}

    async def entity_areas(self) -> dict[str, str]:
        """entity_id -> area_id, for the entities that have one (their device's otherwise)."""
        entities, devices = await asyncio.gather(
            self.ws_command("config/entity_registry/list"),
            self.ws_command("config/device_registry/list"),
        )
        device_area = {d["id"]: d.get("area_id") for d in devices or [] if "id" in d}
        out: dict[str, str] = {}
        for e in entities or []:
            area = e.get("area_id") or device_area.get(e.get("device_id"))
            if area:
                out[str(e["entity_id"])] = str(area)
        return out
