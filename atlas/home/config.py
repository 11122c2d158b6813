"""Where Home Assistant is and how ATLAS may use it; the token never comes from YAML.

`home_assistant.url` comes from config/atlas.yaml, and the environment variable HA_URL
overrides it (so a script can point any ATLAS command at any Home Assistant). The
long-lived access token comes from HA_TOKEN or, under systemd, from the credential file
`ha_token` in $CREDENTIALS_DIRECTORY (LoadCredential=ha_token:/path/to/file).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from voice.config import bounded

DEFAULT_DOMAINS = (
    "light",
    "switch",
    "fan",
    "cover",
    "climate",
    "lock",
    "media_player",
    "vacuum",
    "humidifier",
    "water_heater",
    "alarm_control_panel",
    "weather",
    "sensor",
    "binary_sensor",
)


@dataclass(frozen=True)
class HomeAssistantConfig:
    url: str | None = None
    """Home Assistant's base URL, e.g. http://homeassistant.local:8123 (HA_URL overrides)."""
    timeout_s: float = bounded(1.0, 0.1, 30.0)
    """Deadline for one device request (every call it makes); then an honest line."""
    allowed_domains: tuple[str, ...] = DEFAULT_DOMAINS
    """Domains the agent tier may read and act on. Scripts and scenes are left out by
    default: one of them may unlock a door without the spoken confirmation."""
    confirm_window_s: float = bounded(15.0, 1.0, 120.0)
    """How long a "Shall I unlock the front door?" waits for its yes."""
    weather_entity: str | None = None
    """The weather entity for weather questions; null: the first one Home Assistant has."""
    language: str = "en"


def url_problem(url: str) -> str | None:
    """Why `url` cannot be Home Assistant's base URL (None when it can)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return f"must be an http:// or https:// URL, got {url!r}"
    if parts.query or parts.fragment:
        return f"must be a plain base URL without ?query or #fragment, got {url!r}"
    return None


@dataclass(frozen=True)
class HomeConnection:
    """The resolved URL and token (or the reason there is none); the token is never shown."""

    url: str | None
    token: str | None = field(default=None, repr=False)

    @property
    def problem(self) -> str | None:
        """What is missing, with the fix, in one line (None when both are set)."""
        if not self.url:
            return (
                "Home Assistant is not configured: set home_assistant.url in "
                "config/atlas.yaml (or HA_URL) and HA_TOKEN (a long-lived access token)"
            )
        if not self.token:
            return (
                "no Home Assistant token: set HA_TOKEN (or the systemd credential ha_token) "
                "to a long-lived access token from your Home Assistant profile"
            )
        return None


def connect(config: HomeAssistantConfig, env: Mapping[str, str] | None = None) -> HomeConnection:
    """The URL (config, HA_URL wins) and the token (HA_TOKEN, else the credential file).

    The URL has been validated by settings (HA_URL included); see `atlas.settings`.
    """
    env = os.environ if env is None else env
    url = (env.get("HA_URL") or "").strip() or config.url
    token = (env.get("HA_TOKEN") or "").strip()
    cred_dir = env.get("CREDENTIALS_DIRECTORY")
    if not token and cred_dir:
        try:
            token = (Path(cred_dir) / "ha_token").read_text(encoding="utf-8").strip()
        except OSError:
            token = ""
    return HomeConnection(url.rstrip("/") if url else None, token or None)
