"""Home Assistant settings: HA_URL wins over the file, bad values get one line, the token
never comes from YAML and never shows in a repr."""

from __future__ import annotations

from pathlib import Path

import pytest

from atlas.home.config import HomeAssistantConfig, connect
from atlas.settings import SettingsError, load_settings


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "atlas.yaml"
    p.write_text(text, encoding="utf-8")
    return p


def test_ha_url_overrides_the_file(tmp_path: Path) -> None:
    p = write(tmp_path, "home_assistant:\n  url: http://house.local:8123/\n")
    assert load_settings(p, env={}).home_assistant.url == "http://house.local:8123"
    s = load_settings(p, env={"HA_URL": "http://127.0.0.1:9999"})
    assert s.home_assistant.url == "http://127.0.0.1:9999"


@pytest.mark.parametrize(
    ("yaml", "env", "message"),
    [
        ("home_assistant:\n  url: ftp://house\n", {}, "home_assistant.url must be an http"),
        ("home_assistant:\n  url: house.local\n", {}, "home_assistant.url must be an http"),
        ("", {"HA_URL": "house:8123"}, "HA_URL must be an http"),
        ("home_assistant:\n  token: abc\n", {}, "set HA_TOKEN in the environment"),
        ("home_assistant:\n  timeout_s: 0\n", {}, "home_assistant.timeout_s must be between"),
        ("home_assistant:\n  allowed_domains: light\n", {}, "must be a list"),
        ("home_assistant:\n  colour: red\n", {}, "unknown key 'home_assistant.colour'"),
    ],
)
def test_bad_values_get_one_line(
    tmp_path: Path, yaml: str, env: dict[str, str], message: str
) -> None:
    with pytest.raises(SettingsError) as e:
        load_settings(write(tmp_path, yaml), env=env)
    assert message in str(e.value) and "\n" not in str(e.value)


def test_token_from_env_or_credential_and_never_in_repr(tmp_path: Path) -> None:
    cfg = HomeAssistantConfig(url="http://house.local:8123")
    secret = "eyJ" + "a" * 40
    conn = connect(cfg, {"HA_TOKEN": secret})
    assert conn.token == secret and conn.problem is None and secret not in repr(conn)
    (tmp_path / "ha_token").write_text(secret + "\n", encoding="utf-8")
    assert connect(cfg, {"CREDENTIALS_DIRECTORY": str(tmp_path)}).token == secret
    missing = connect(cfg, {})
    assert missing.token is None and missing.problem and "HA_TOKEN" in missing.problem
    assert "home_assistant.url" in (connect(HomeAssistantConfig(), {}).problem or "")
