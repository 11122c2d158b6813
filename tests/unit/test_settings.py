from __future__ import annotations

from pathlib import Path

import pytest

from atlas.settings import DEFAULT_CONFIG, Settings, SettingsError, load_secrets, load_settings


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "atlas.yaml"
    p.write_text(text, encoding="utf-8")
    return p


def error_of(path: Path) -> str:
    with pytest.raises(SettingsError) as e:
        load_settings(path, env={})
    msg = str(e.value)
    assert "\n" not in msg
    assert str(path) in msg
    return msg


def test_shipped_config_equals_the_defaults() -> None:
    loaded = load_settings(DEFAULT_CONFIG, env={})
    defaults = Settings()
    for section in (
        "logging", "models", "audio", "file_input", "vad", "endpointer", "stt", "llm",
        "budget", "breaker", "memory", "tts", "chunker", "wake", "assistant",
        "bench",
    ):  # fmt: skip
        assert getattr(loaded, section) == getattr(defaults, section), section


def test_values_are_read_and_typed(tmp_path: Path) -> None:
    p = write(
        tmp_path,
        "endpointer:\n  hangover_ms: 700\nvad:\n  threshold: 0.6\naudio:\n  input_device: 3\n",
    )
    s = load_settings(p, env={})
    assert s.endpointer.hangover_ms == 700
    assert s.endpointer.preroll_ms == 300  # untouched defaults stay
    assert s.vad.threshold == 0.6
    assert s.audio.input_device == "3"
    assert s.source == p


def test_int_accepted_for_float(tmp_path: Path) -> None:
    s = load_settings(write(tmp_path, "endpointer:\n  max_utterance_s: 20\n"), env={})
    assert s.endpointer.max_utterance_s == 20.0


def test_empty_file_gives_defaults(tmp_path: Path) -> None:
    assert load_settings(write(tmp_path, ""), env={}).stt == Settings().stt


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("stt:\n  modle: x\n", "unknown key 'stt.modle'"),
        ("sttt:\n  model: x\n", "unknown key 'sttt'"),
        ("stt:\n  beam_size: two\n", "stt.beam_size must be a whole number"),
        ("stt:\n  beam_size: 1.5\n", "stt.beam_size must be a whole number"),
        ("stt:\n  beam_size: 50\n", "stt.beam_size must be between 1 and 10"),
        ("vad:\n  threshold: true\n", "vad.threshold must be a number"),
        ("models:\n  allow_downloads: 'yes'\n", "models.allow_downloads must be true or false"),
        ("stt:\n  compute_type: fp8\n", "stt.compute_type must be one of"),
        ("endpointer:\n  hangover_ms: -5\n", "endpointer.hangover_ms must be between"),
        ("stt: 3\n", "stt must be a mapping"),
        ("- a\n- b\n", "top level must be a mapping"),
        ("stt: [unclosed\n", "not valid YAML at line"),
        ("vad:\n  threshold: 0.3\n  neg_threshold: 0.4\n", "vad.neg_threshold"),
        ("anthropic_api_key: sk-ant-xyz\n", "secrets are not read from config files"),
        ("stt:\n  model:\n", "stt.model must not be empty"),
    ],
)
def test_bad_values_name_the_key(tmp_path: Path, text: str, expected: str) -> None:
    assert expected in error_of(write(tmp_path, text))


def test_secret_value_never_echoed(tmp_path: Path) -> None:
    msg = error_of(write(tmp_path, "llm:\n  api_key: sk-ant-supersecret123456\n"))
    assert "supersecret" not in msg


def test_missing_and_directory_config(tmp_path: Path) -> None:
    assert "not found" in error_of(tmp_path / "nope.yaml")
    assert "directory" in error_of(tmp_path)


def test_atlas_config_env_is_used(tmp_path: Path) -> None:
    p = write(tmp_path, "endpointer:\n  hangover_ms: 600\n")
    assert load_settings(None, env={"ATLAS_CONFIG": str(p)}).endpointer.hangover_ms == 600


def test_secrets_from_env_and_credentials(tmp_path: Path) -> None:
    assert load_secrets({}).anthropic_api_key is None
    s = load_secrets({"ANTHROPIC_API_KEY": " sk-ant-abc123 \n"})
    assert s.anthropic_api_key == "sk-ant-abc123"
    assert "sk-ant" not in repr(s) and "sk-ant" not in str(s)
    (tmp_path / "anthropic_api_key").write_text("sk-ant-fromcred\n")
    s2 = load_secrets({"CREDENTIALS_DIRECTORY": str(tmp_path)})
    assert s2.anthropic_api_key == "sk-ant-fromcred"


def test_project_path_resolution() -> None:
    s = Settings()
    assert s.project_path("models/cache").is_absolute()
    assert s.project_path("/tmp/x") == Path("/tmp/x")


@pytest.mark.parametrize("value", [".nan", ".NaN", ".inf", "-.inf", "-1", "-0.01", "1e400"])
def test_budget_limits_must_be_finite_and_non_negative(tmp_path: Path, value: str) -> None:
    msg = error_of(write(tmp_path, f"budget:\n  daily_usd: {value}\n"))
    assert "budget.daily_usd" in msg


@pytest.mark.parametrize("key", ["cloud_filler_p50", "classify_p50"])
def test_every_float_refuses_nan_even_an_optional_one(tmp_path: Path, key: str) -> None:
    text = f"bench:\n  latency_targets_ms:\n    {key}: .nan\n"
    msg = error_of(write(tmp_path, text))
    assert f"bench.latency_targets_ms.{key} must be a finite number" in msg


def test_every_numeric_setting_declares_its_range() -> None:
    """So a negative or absurd value of a new setting is refused without new code."""
    from dataclasses import fields, is_dataclass
    from typing import get_type_hints

    unbounded: list[str] = []

    def walk(cls: type, prefix: str) -> None:
        hints = get_type_hints(cls)
        for f in fields(cls):
            typ = hints[f.name]
            if isinstance(typ, type) and is_dataclass(typ):
                walk(typ, f"{prefix}{f.name}.")
            elif typ in (int, float, int | None, float | None) and f.metadata.get("min") is None:
                unbounded.append(prefix + f.name)

    walk(Settings, "")
    assert unbounded == []


@pytest.mark.parametrize("key", ["routing_file", "budget:\n  db_path", "stt:\n  model"])
def test_a_nul_character_in_text_is_one_line(tmp_path: Path, key: str) -> None:
    """Found by tests/unit/test_fuzz.py: the OS refused it with a ValueError traceback."""
    msg = error_of(write(tmp_path, f'{key}: "a\\0b"\n'))
    assert "must not contain a NUL character" in msg


def test_an_endless_file_is_refused_not_read_forever(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match=r"^/dev/zero: too large for a config file"):
        load_settings(write(tmp_path, "routing_file: /dev/zero\n"), env={})
