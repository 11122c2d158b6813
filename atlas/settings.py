"""Typed, validated settings loaded from config/atlas.yaml (secrets from the environment).

Validation is driven by the dataclasses themselves: every field's type annotation and
its `min`/`max`/`choices` metadata (see `voice.config.bounded`). Every number must be
finite (NaN and infinity are refused whatever the range) and every numeric field
declares its range (a test holds every dataclass to that). A bad file stops with one
`SettingsError` line naming the key and the file.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import types
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, is_dataclass, replace
from pathlib import Path
from typing import Any, Union, get_args, get_origin, get_type_hints

import yaml

from atlas.deadlines import DeadlineConfig
from atlas.endofturn import TurnTakingConfig
from atlas.home.config import HomeAssistantConfig, url_problem
from atlas.llm.config import (
    BreakerConfig,
    BudgetConfig,
    LLMConfig,
    MemoryConfig,
    PersonaConfig,
    RouterConfig,
)
from atlas.wake import WakeConfig
from voice.config import (
    AudioConfig,
    ChunkerConfig,
    EndpointerConfig,
    SttConfig,
    TtsConfig,
    VadConfig,
    bounded,
    choice,
)

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG = PROJECT_ROOT / "config" / "atlas.yaml"
DEFAULT_ROUTING = PROJECT_ROOT / "config" / "routing.yaml"

# Keys that look like secrets are refused in YAML: they belong in the environment.
_SECRET_KEY = re.compile(r"(?i)(api_?key|secret|password|passwd|(^|_)token)$")


class SettingsError(Exception):
    """A config problem; its text is one line naming the file and the key."""


@dataclass(frozen=True)
class LoggingConfig:
    level: str = choice("info", "debug", "info", "warning", "error")
    format: str = choice("auto", "auto", "json", "console")
    """auto: readable console output on a terminal, JSON lines otherwise."""


@dataclass(frozen=True)
class ModelsConfig:
    manifest: str = "models/manifest.yaml"
    """Relative paths are relative to the project root."""
    cache_dir: str = "models/cache"
    allow_downloads: bool = False
    """Only when true may a model be named that is not in the manifest (hub name)."""


@dataclass(frozen=True)
class FileInputConfig:
    lead_silence_ms: int = bounded(200, 0, 5000)
    """Silence put before a file's audio so speech at t=0 still gets VAD context."""
    tail_silence_ms: int = bounded(800, 0, 10000)
    """Silence put after a file's audio so its last turn can end normally."""
    max_duration_s: float = bounded(4 * 3600.0, 1.0, 86400.0)


@dataclass(frozen=True)
class AssistantConfig:
    barge_in: bool = False
    """Speech during playback stops ATLAS (off: half-duplex, the mic is ignored while speaking)."""
    barge_in_min_ms: int = bounded(300, 64, 3000)
    speculative_stt: bool = True
    """Start transcribing when a pause begins, so STT overlaps the end-of-turn hangover."""
    filler: bool = True
    """Say a short filler at once before a slow (cloud) answer: the Poker Face Protocol."""
    wait_line_s: float = bounded(2.0, 0.0, 30.0)
    """Any other answer with nothing audible this long after the end of speech (a busy
    box, rooms served in turn) gets a filler too, then follows it; 0: never."""
    announce_timers: bool = True
    shutdown_grace_s: float = bounded(3.0, 0.0, 4.5)
    """On SIGTERM, let the current sentence finish this long (the daemon stops within 5 s)."""
    mic_retry_max_s: float = bounded(30.0, 1.0, 600.0)
    """Backoff ceiling when the microphone disappears (the daemon keeps serving)."""


@dataclass(frozen=True)
class LatencyTargets:
    """What `atlas bench --check` holds the measured figures to (ms unless noted)."""

    local_voice_to_voice_p50: float = bounded(750.0, 0.0, 60000.0)
    """End of speech -> first audible answer sample, local-model turns, from the audio."""
    local_voice_to_voice_p95: float = bounded(1100.0, 0.0, 60000.0)
    skill_voice_to_voice_p50: float = bounded(750.0, 0.0, 60000.0)
    """The same for turns a deterministic skill answers (time, timers, arithmetic)."""
    skill_voice_to_voice_p95: float = bounded(1100.0, 0.0, 60000.0)
    home_voice_to_voice_p50: float = bounded(750.0, 0.0, 60000.0)
    """The same for device requests answered through Home Assistant (or its honest line)."""
    home_voice_to_voice_p95: float = bounded(1100.0, 0.0, 60000.0)
    cloud_filler_p50: float | None = bounded(600.0, 0.0, 60000.0)
    """End of speech -> first audible filler sample, cloud tiers, from the audio. None:
    derived as endpointer.hangover_ms + measured STT p50 + cloud_filler_margin."""
    cloud_filler_margin: float = bounded(50.0, 0.0, 5000.0)
    classify_p50: float = bounded(10.0, 0.0, 10000.0)
    classify_p99: float = bounded(25.0, 0.0, 10000.0)
    router_overhead_p50: float = bounded(15.0, 0.0, 10000.0)
    embedded_first_token_p50: float = bounded(300.0, 0.0, 60000.0)
    stt_2s_command: float = bounded(600.0, 0.0, 60000.0)
    """STT wall time for a ~2 s spoken command (p50)."""
    vad_frame_cpu: float = bounded(0.3, 0.0, 32.0)
    """VAD + endpointer CPU per 32 ms frame."""
    idle_cpu_percent: float = bounded(5.0, 0.0, 200.0)
    """The warm daemon on a quiet room: % of one core (not ms)."""
    idle_rss_mb: float = bounded(2048.0, 0.0, 65536.0)
    """... and its resident memory (MB, not ms)."""


@dataclass(frozen=True)
class BenchConfig:
    latency_targets_ms: LatencyTargets = field(default_factory=LatencyTargets)


@dataclass(frozen=True)
class Settings:
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    models: ModelsConfig = field(default_factory=ModelsConfig)
    audio: AudioConfig = field(default_factory=AudioConfig)
    file_input: FileInputConfig = field(default_factory=FileInputConfig)
    vad: VadConfig = field(default_factory=VadConfig)
    endpointer: EndpointerConfig = field(default_factory=EndpointerConfig)
    stt: SttConfig = field(default_factory=SttConfig)
    llm: LLMConfig = field(default_factory=LLMConfig)
    budget: BudgetConfig = field(default_factory=BudgetConfig)
    breaker: BreakerConfig = field(default_factory=BreakerConfig)
    memory: MemoryConfig = field(default_factory=MemoryConfig)
    tts: TtsConfig = field(default_factory=TtsConfig)
    chunker: ChunkerConfig = field(default_factory=ChunkerConfig)
    wake: WakeConfig = field(default_factory=WakeConfig)
    assistant: AssistantConfig = field(default_factory=AssistantConfig)
    turn_taking: TurnTakingConfig = field(default_factory=TurnTakingConfig)
    deadlines: DeadlineConfig = field(default_factory=DeadlineConfig)
    bench: BenchConfig = field(default_factory=BenchConfig)
    home_assistant: HomeAssistantConfig = field(default_factory=HomeAssistantConfig)
    satellites: tuple[str, ...] = ()
    """Wyoming satellites served as rooms: tcp://HOST:PORT[?name=...&area=...]."""
    routing_file: str = "routing.yaml"
    """Router patterns and persona lines; relative to this config file's folder."""
    router: RouterConfig = field(default_factory=RouterConfig)
    persona: PersonaConfig = field(default_factory=PersonaConfig)
    source: Path | None = None
    """The file these settings came from (None: built-in defaults)."""

    def project_path(self, value: str) -> Path:
        """Resolve a configured path: `~` expanded, relative ones under the project root."""
        p = Path(value).expanduser()
        return p if p.is_absolute() else PROJECT_ROOT / p


@dataclass(frozen=True)
class Secrets:
    """Secrets from the environment or a systemd credential; never printed."""

    anthropic_api_key: str | None = None
    provider_keys: Mapping[str, str] = field(default_factory=dict)
    """Other providers' keys by environment variable name (`*_API_KEY` variables)."""

    def key(self, env_name: str) -> str | None:
        """The key held in environment variable `env_name`, if set."""
        return self.provider_keys.get(env_name) or None

    def __repr__(self) -> str:
        state = "set" if self.anthropic_api_key else "unset"
        others = ", ".join(sorted(self.provider_keys)) or "none"
        return f"Secrets(anthropic_api_key=<{state}>, provider keys set: {others})"

    __str__ = __repr__


def load_secrets(env: Mapping[str, str] | None = None) -> Secrets:
    """ANTHROPIC_API_KEY from the environment, else from $CREDENTIALS_DIRECTORY.

    systemd's LoadCredential= puts the key in a file under $CREDENTIALS_DIRECTORY,
    which keeps it out of the unit file and the process environment.
    """
    env = os.environ if env is None else env
    key = (env.get("ANTHROPIC_API_KEY") or "").strip()
    cred_dir = env.get("CREDENTIALS_DIRECTORY")
    if not key and cred_dir:
        cred = Path(cred_dir) / "anthropic_api_key"
        try:
            key = cred.read_text(encoding="utf-8").strip()
        except OSError:
            key = ""
    return Secrets(anthropic_api_key=key or None, provider_keys=_provider_keys(env, cred_dir))


def _provider_keys(env: Mapping[str, str], cred_dir: str | None) -> dict[str, str]:
    """Every `*_API_KEY` variable but Anthropic's, else a systemd credential file of the
    same name in lower case (e.g. groq_api_key): an OpenAI-compatible provider's key is
    looked up by the name its config gives (`api_key_env`)."""
    keys = {
        name: value.strip()
        for name, value in env.items()
        if name.endswith("_API_KEY") and name != "ANTHROPIC_API_KEY" and value.strip()
    }
    if cred_dir:
        folder = Path(cred_dir)
        with contextlib.suppress(OSError):
            for cred in folder.iterdir():
                name = cred.name.upper()
                if name.endswith("_API_KEY") and name != "ANTHROPIC_API_KEY" and name not in keys:
                    with contextlib.suppress(OSError, UnicodeDecodeError):
                        if value := cred.read_text(encoding="utf-8").strip():
                            keys[name] = value
    return keys


def load_settings(path: Path | None = None, env: Mapping[str, str] | None = None) -> Settings:
    """Load settings from `path`, $ATLAS_CONFIG, or config/atlas.yaml (in that order)."""
    env = os.environ if env is None else env
    if path is None and env.get("ATLAS_CONFIG"):
        path = Path(env["ATLAS_CONFIG"])
    if path is None:
        path = DEFAULT_CONFIG if DEFAULT_CONFIG.is_file() else None
    if path is None:
        return _home_url_from_env(Settings(), env, Path("(no config file)"))
    data = _read_yaml(path)
    for section in _ROUTING_SECTIONS:
        if section in data:
            raise SettingsError(f"{path}: '{section}' belongs in the routing file (routing_file)")
    settings: Settings = replace(_build(Settings, data, "", path), source=path)
    settings = _home_url_from_env(settings, env, path)
    routing_path = path.parent / settings.routing_file
    if "routing_file" not in data and not routing_path.exists():
        routing_path = DEFAULT_ROUTING  # a custom atlas.yaml keeps the shipped persona
    routing: _Routing = _build(_Routing, _read_yaml(routing_path), "", routing_path)
    settings = replace(settings, router=routing.router, persona=routing.persona)
    _check_cross_field(settings, path)
    _check_patterns(settings.router, routing_path)
    return settings


@dataclass(frozen=True)
class _Routing:
    """The sections of the routing file."""

    router: RouterConfig = field(default_factory=RouterConfig)
    persona: PersonaConfig = field(default_factory=PersonaConfig)


_ROUTING_SECTIONS = ("router", "persona")


def _check_patterns(router: RouterConfig, path: Path) -> None:
    for name in ("safety_patterns", "local_patterns", "agent_patterns"):
        for i, pattern in enumerate(getattr(router, name)):
            try:
                re.compile(pattern)
            except re.error as e:
                raise SettingsError(
                    f"{path}: router.{name}[{i}] is not a valid regex ({e})"
                ) from None


MAX_CONFIG_BYTES = 1 << 20


def _read_yaml(path: Path) -> Mapping[str, Any]:
    try:
        with path.open("rb") as f:
            # Bounded: /dev/zero or a log file named by mistake must not eat the memory.
            raw = f.read(MAX_CONFIG_BYTES + 1)
        if len(raw) > MAX_CONFIG_BYTES:
            raise SettingsError(f"{path}: too large for a config file (over 1 MiB)")
        text = raw.decode("utf-8")
    except FileNotFoundError:
        raise SettingsError(f"{path}: config file not found") from None
    except IsADirectoryError:
        raise SettingsError(f"{path}: is a directory, not a config file") from None
    except (OSError, UnicodeDecodeError) as e:
        raise SettingsError(f"{path}: cannot read config file ({type(e).__name__})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise SettingsError(f"{path}: not valid YAML{where}") from None
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        raise SettingsError(f"{path}: top level must be a mapping of sections")
    return data


def _build(cls: type[Any], data: Any, prefix: str, path: Path) -> Any:
    where = prefix.rstrip(".") or "top level"
    if not isinstance(data, Mapping):
        raise SettingsError(f"{path}: {where} must be a mapping")
    hints = get_type_hints(cls)
    known = {
        f.name: f
        for f in fields(cls)
        if f.name != "source" and not (cls is Settings and f.name in _ROUTING_SECTIONS)
    }
    for key in data:
        name = _printable(f"{prefix}{key}")
        if _SECRET_KEY.search(str(key)):
            secret = "HA_TOKEN" if prefix.startswith("home_assistant") else "ANTHROPIC_API_KEY"
            raise SettingsError(
                f"{path}: {name}: secrets are not read from config files; "
                f"set {secret} in the environment (or a systemd credential)"
            )
        if key not in known:
            raise SettingsError(f"{path}: unknown key '{name}'")
    values: dict[str, Any] = {}
    for name, f in known.items():
        if name not in data:
            continue
        key = f"{prefix}{name}"
        typ = hints[name]
        if isinstance(typ, type) and is_dataclass(typ):
            values[name] = _build(typ, data[name] or {}, f"{key}.", path)
        elif (item := _dataclass_items(typ)) is not None:
            values[name] = _build_list(item, data[name], key, path)
        else:
            values[name] = _coerce(data[name], typ, f.metadata, key, path)
    return cls(**values)


def _dataclass_items(typ: Any) -> type[Any] | None:
    """The item class of a `tuple[SomeDataclass, ...]` field (None for other types)."""
    args = get_args(typ) if get_origin(typ) is tuple else ()
    item = args[0] if args else None
    return item if isinstance(item, type) and is_dataclass(item) else None


def _build_list(cls: Any, data: Any, key: str, path: Path) -> tuple[Any, ...]:
    if data is None:
        return ()
    if isinstance(data, str) or not isinstance(data, list | tuple):
        raise SettingsError(f"{path}: {key} must be a list, got {data!r}")
    return tuple(_build(cls, item, f"{key}[{i}].", path) for i, item in enumerate(data))


def _printable(text: str) -> str:
    """A key as the user wrote it, escaped if it holds line breaks or control characters
    (an error is one line)."""
    return text if text.isprintable() else repr(text)[1:-1]


def _coerce(value: Any, typ: Any, meta: Mapping[str, Any], key: str, path: Path) -> Any:
    optional = False
    if get_origin(typ) in (Union, types.UnionType):
        args = [a for a in get_args(typ) if a is not type(None)]
        optional = len(args) < len(get_args(typ))
        typ = args[0]
    if value is None:
        if optional:
            return None
        raise SettingsError(f"{path}: {key} must not be empty")
    if typ is bool:
        if not isinstance(value, bool):
            raise SettingsError(f"{path}: {key} must be true or false, got {value!r}")
        return value
    if typ is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise SettingsError(f"{path}: {key} must be a whole number, got {value!r}")
    elif typ is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise SettingsError(f"{path}: {key} must be a number, got {value!r}")
        value = float(value)
        if not math.isfinite(value):  # NaN passes every range check: refuse it by name
            raise SettingsError(f"{path}: {key} must be a finite number, got {value!r}")
    elif get_origin(typ) is tuple:
        if isinstance(value, str) or not isinstance(value, list | tuple):
            raise SettingsError(f"{path}: {key} must be a list, got {value!r}")
        bad = [v for v in value if not isinstance(v, str)]
        if bad:
            raise SettingsError(f"{path}: {key} must be a list of text, got {bad[0]!r}")
        value = tuple(value)
    elif typ is str:
        if isinstance(value, int | float) and not isinstance(value, bool) and optional:
            value = str(value)  # a device index written as a bare number
        if not isinstance(value, str):
            raise SettingsError(f"{path}: {key} must be text, got {value!r}")
    if any(
        "\x00" in v for v in (value if isinstance(value, tuple) else (value,)) if isinstance(v, str)
    ):
        # No path, URL or pattern holds one; the OS refuses it with a traceback.
        raise SettingsError(f"{path}: {key} must not contain a NUL character")
    lo, hi = meta.get("min"), meta.get("max")
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        raise SettingsError(f"{path}: {key} must be between {lo} and {hi}, got {value!r}")
    choices = meta.get("choices")
    if choices and value not in choices:
        raise SettingsError(f"{path}: {key} must be one of {', '.join(choices)}, got {value!r}")
    return value


def _home_url_from_env(s: Settings, env: Mapping[str, str], path: Path) -> Settings:
    """HA_URL overrides home_assistant.url; either is checked here, one line if bad."""
    url = (env.get("HA_URL") or "").strip() or s.home_assistant.url
    if not url:
        return s
    problem = url_problem(url)
    if problem is not None:
        where = "HA_URL" if env.get("HA_URL", "").strip() else f"{path}: home_assistant.url"
        raise SettingsError(f"{where} {problem}")
    return replace(s, home_assistant=replace(s.home_assistant, url=url.rstrip("/")))


def _check_providers(s: Settings, path: Path) -> None:
    seen: set[str] = set()
    for i, p in enumerate(s.llm.cloud_providers):
        key = f"{path}: llm.cloud_providers[{i}]"
        if not re.fullmatch(r"[a-z0-9][a-z0-9_-]{0,31}", p.name) or p.name == "anthropic":
            raise SettingsError(f"{key}.name must be a short lowercase name, got {p.name!r}")
        if p.name in seen:
            raise SettingsError(f"{key}.name {p.name!r} is used twice")
        seen.add(p.name)
        if (problem := url_problem(p.base_url)) is not None:
            raise SettingsError(f"{key}.base_url {problem}")
        if not p.model.strip():
            raise SettingsError(f"{key}.model must name the provider's model")
        if not re.fullmatch(r"[A-Z_][A-Z0-9_]*", p.api_key_env):
            raise SettingsError(
                f"{key}.api_key_env must name an environment variable, got {p.api_key_env!r}"
            )


def _check_cross_field(s: Settings, path: Path) -> None:
    _check_providers(s, path)
    if s.vad.neg_threshold > s.vad.threshold:
        raise SettingsError(
            f"{path}: vad.neg_threshold ({s.vad.neg_threshold}) must not exceed "
            f"vad.threshold ({s.vad.threshold})"
        )
    if s.endpointer.min_utterance_ms > s.endpointer.max_utterance_s * 1000:
        raise SettingsError(
            f"{path}: endpointer.min_utterance_ms must be shorter than max_utterance_s"
        )
