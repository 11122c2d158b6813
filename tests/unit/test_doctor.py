"""`atlas doctor`: each tier's state (against the fake Anthropic server), the budget,
the seam for extra sections, and one screen of output with a fix per problem."""

from __future__ import annotations

import sys
import types
from dataclasses import replace
from pathlib import Path

import pytest

from atlas import doctor
from atlas.doctor import DoctorLine, diagnose, format_report
from atlas.llm.config import CloudProviderConfig
from atlas.settings import Secrets, Settings, load_settings
from atlas.testing.fake_anthropic import FakeAnthropic
from atlas.testing.fake_openai import FakeLLMServer


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    s = load_settings()
    local = replace(s.llm.local, backend="embedded")
    budget = replace(s.budget, db_path=str(tmp_path / "ledger.sqlite3"))
    return replace(s, llm=replace(s.llm, local=local), budget=budget)


async def test_without_a_key_the_cloud_tiers_are_off_with_the_fix(settings: Settings) -> None:
    lines = await diagnose(settings, Secrets(), (("tiers", doctor.tier_lines),))
    by = {x.what: x for x in lines}
    assert by["local"].status == "ok" and "embedded" in by["local"].detail
    assert by["haiku"].status == "warn" and "ANTHROPIC_API_KEY" in by["haiku"].fix


async def test_a_retired_model_is_a_failure_naming_the_key(settings: Settings) -> None:
    with FakeAnthropic() as fake:
        anth = replace(settings.llm.anthropic, base_url=fake.base_url)
        s = replace(settings, llm=replace(settings.llm, anthropic=anth))
        fake.retire(anth.agent.model)
        lines = await diagnose(s, Secrets("sk-ant-doctor"), (("tiers", doctor.tier_lines),))
    by = {x.what: x for x in lines}
    assert by["haiku"].status == "ok" and "reachable" in by["haiku"].detail
    assert by["agent"].status == "FAIL"
    assert "llm.anthropic.agent.model" in by["agent"].fix
    text = format_report(lines)
    assert "fix: set llm.anthropic.agent.model" in text
    assert "sk-ant-doctor" not in text


async def test_budget_state_is_shown(settings: Settings) -> None:
    lines = await diagnose(settings, Secrets(), (("budget", doctor.budget_lines),))
    assert lines[0].status == "ok" and "mode normal" in lines[0].detail


async def test_extra_sections_slot_in_and_a_broken_one_is_reported(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    module = types.ModuleType("atlas_fake_home_doctor")

    async def doctor_lines(settings: Settings, secrets: Secrets) -> list[DoctorLine]:
        return [DoctorLine("home", "warn", "home assistant", "not configured", "set home.url")]

    module.doctor_lines = doctor_lines  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "atlas_fake_home_doctor", module)
    monkeypatch.setattr(doctor, "EXTRA_SECTIONS", ("atlas_fake_home_doctor", "atlas.nowhere"))
    extra = doctor.extra_sections()
    assert len(extra) == 1

    async def broken(settings: Settings, secrets: Secrets) -> list[DoctorLine]:
        raise RuntimeError("boom")

    lines = await diagnose(settings, Secrets(), (*extra, ("broken", broken)))
    assert [x.status for x in lines] == ["warn", "FAIL"]
    assert "boom" in lines[1].detail


async def test_each_cloud_provider_gets_a_line_with_its_state(settings: Settings) -> None:
    with FakeLLMServer(models=("llama-test",)) as fake:

        def provider(name: str, model: str, env: str) -> CloudProviderConfig:
            return CloudProviderConfig(
                name=name, base_url=fake.openai_base_url, api_key_env=env, model=model
            )

        providers = (
            provider("groq", "llama-test", "GROQ_API_KEY"),
            provider("other", "missing-model", "OTHER_API_KEY"),
            provider("nokey", "llama-test", "NOKEY_API_KEY"),
        )
        s = replace(settings, llm=replace(settings.llm, cloud_providers=providers))
        keys = {"GROQ_API_KEY": "gsk-SECRET-1", "OTHER_API_KEY": "k2"}
        lines = await diagnose(s, Secrets(provider_keys=keys), (("tiers", doctor.tier_lines),))
    by = {x.detail.split(":")[0]: x for x in lines if x.what == "haiku"}
    assert by["groq llama-test"].status == "ok"
    assert by["other missing-model"].status == "FAIL"
    assert "not listed" in by["other missing-model"].detail
    assert by["nokey llama-test"].status == "warn"
    assert "NOKEY_API_KEY" in by["nokey llama-test"].fix
    assert "SECRET" not in format_report(lines)
