"""The skills as tools for the `agent` tier: the same clock, timers, calculator and
unit table the voice skills use, so a timer the agent sets is one the user can cancel.

Results are short plain text for the model. Bad arguments raise ValueError with a
message the agent loop can hand back to the model.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime, timedelta, tzinfo
from typing import Any

from atlas.llm.tools import Tool, ToolSpec
from atlas.persona import spoken_datetime
from atlas.skills.calc import calculate
from atlas.skills.clock import ClockSkill
from atlas.skills.durations import say_duration
from atlas.skills.skillset import SkillSet
from atlas.skills.timers import TimerService
from atlas.skills.units import convert
from atlas.skills.words import format_plain, say_number

Run = Callable[[Mapping[str, Any]], Awaitable[str]]


class SkillTool:
    """A Tool (atlas.llm.tools) made of a spec and a coroutine function."""

    def __init__(self, spec: ToolSpec, run: Run) -> None:
        self.spec = spec
        self._run = run

    async def run(self, args: Mapping[str, Any]) -> str:
        if not isinstance(args, Mapping):
            raise ValueError(f"{self.spec.name}: arguments must be a JSON object")
        allowed = set(self.spec.input_schema.get("properties", {}))
        unknown = sorted(set(args) - allowed)
        if unknown:
            raise ValueError(f"{self.spec.name}: unknown argument(s): {', '.join(unknown)}")
        return await self._run(args)


def _number(args: Mapping[str, Any], key: str) -> float:
    value = args.get(key)
    if value is None:
        raise ValueError(f"missing required argument '{key}'")
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"'{key}' must be a number, got {type(value).__name__}")
    return float(value)


def _text(args: Mapping[str, Any], key: str, required: bool = True) -> str | None:
    value = args.get(key)
    if value is None:
        if required:
            raise ValueError(f"missing required argument '{key}'")
        return None
    if isinstance(value, int) and not isinstance(value, bool) and key == "label_or_id":
        return str(value)
    if not isinstance(value, str):
        raise ValueError(f"'{key}' must be a string, got {type(value).__name__}")
    if required and not value.strip():
        raise ValueError(f"'{key}' must not be empty")
    return value


def _obj(properties: dict[str, Any], required: tuple[str, ...] = ()) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": properties,
        "required": list(required),
        "additionalProperties": False,
    }


def _clock_zone(skills: SkillSet) -> tzinfo | None:
    return next((s.tz for s in skills if isinstance(s, ClockSkill)), None)


def skill_tools(
    skills: SkillSet,
    timers: TimerService,
    tz: tzinfo | None = None,
    now: Callable[[], datetime] | None = None,
) -> list[Tool]:
    """get_current_datetime, set_timer, list_timers, cancel_timer, calculate, convert_units.

    `tz` defaults to the zone of the ClockSkill in `skills`, so the agent and the voice
    skills can never disagree about the time; `now` is for tests.
    """
    zone = tz or _clock_zone(skills)
    if zone is None:
        raise ValueError("skill_tools needs a time zone (tz, or a ClockSkill in skills)")

    def local_now() -> datetime:
        return (now() if now else datetime.now(zone)).astimezone(zone)

    async def get_current_datetime(args: Mapping[str, Any]) -> str:
        t = local_now()
        return f"{t.isoformat(timespec='seconds')} ({spoken_datetime(t)}; time zone {zone})"

    async def set_timer(args: Mapping[str, Any]) -> str:
        seconds = _number(args, "duration_seconds")
        label = _text(args, "label", required=False)
        timer = timers.set(seconds, label)  # TimerLimitError is a ValueError
        ends = (local_now() + timedelta(seconds=seconds)).strftime("%H:%M:%S")
        named = f" '{timer.label}'" if timer.label else ""
        return f"Timer {timer.id}{named} set for {say_duration(seconds)}; it ends at {ends}."

    async def list_timers(args: Mapping[str, Any]) -> str:
        statuses = timers.list()
        if not statuses:
            return "No timers are running."
        return "\n".join(
            f"Timer {s.timer.id}" + (f" '{s.timer.label}'" if s.timer.label else "")
            + f": {say_duration(s.remaining_s)} left of {say_duration(s.timer.duration_s)}"
            for s in statuses
        )  # fmt: skip

    async def cancel_timer(args: Mapping[str, Any]) -> str:
        key = _text(args, "label_or_id") or ""
        gone = timers.cancel(key)
        if not gone:
            return f"No running timer matches {key!r}. " + await list_timers({})
        return "Cancelled: " + ", ".join(
            f"timer {t.id}" + (f" '{t.label}'" if t.label else "") for t in gone
        )

    async def calculate_tool(args: Mapping[str, Any]) -> str:
        expression = _text(args, "expression") or ""
        value = calculate(expression)  # CalcError is a ValueError
        return format_plain(round(value, 10))

    async def convert_units(args: Mapping[str, Any]) -> str:
        value = _number(args, "value")
        from_unit = _text(args, "from_unit") or ""
        to_unit = _text(args, "to_unit") or ""
        c = convert(value, from_unit, to_unit)  # UnitError is a ValueError
        result, _ = say_number(c.result, significant=6)
        return (
            f"{format_plain(value)} {c.source.name(value)} = "
            f"{result} {c.target.name(float(result))}"
        )

    specs: list[tuple[ToolSpec, Run]] = [
        (
            ToolSpec(
                "get_current_datetime",
                "The current local date, time, weekday and time zone of the household.",
                _obj({}),
                acts=False,
            ),
            get_current_datetime,
        ),
        (
            ToolSpec(
                "set_timer",
                "Start a countdown timer; the household hears an announcement when it ends.",
                _obj(
                    {
                        "duration_seconds": {
                            "type": "number",
                            "exclusiveMinimum": 0,
                            "description": "Length of the timer in seconds.",
                        },
                        "label": {
                            "type": "string",
                            "description": "Optional short name, e.g. 'tea' or 'pasta'.",
                        },
                    },
                    ("duration_seconds",),
                ),
            ),
            set_timer,
        ),
        (
            ToolSpec(
                "list_timers",
                "The running timers and the time left on each.",
                _obj({}),
                acts=False,
            ),
            list_timers,
        ),
        (
            ToolSpec(
                "cancel_timer",
                "Cancel a running timer by its id or label, or every timer with 'all'.",
                _obj(
                    {
                        "label_or_id": {
                            "type": ["string", "integer"],
                            "description": "A timer id, a label such as 'tea', or 'all'.",
                        }
                    },
                    ("label_or_id",),
                ),
            ),
            cancel_timer,
        ),
        (
            ToolSpec(
                "calculate",
                "Exact arithmetic: + - * / ^, brackets, 'percent of', square and cube roots. "
                "Example: '(2+3)*4', '15 percent of 80', 'square root of 144'.",
                _obj(
                    {"expression": {"type": "string", "description": "The expression."}},
                    ("expression",),
                ),
                acts=False,
            ),
            calculate_tool,
        ),
        (
            ToolSpec(
                "convert_units",
                "Convert a quantity between units of temperature (C, F, K), length, weight, "
                "volume (US gallons, cups, ml) or speed (km/h, mph).",
                _obj(
                    {
                        "value": {"type": "number"},
                        "from_unit": {"type": "string", "description": "e.g. 'miles', 'F'."},
                        "to_unit": {"type": "string", "description": "e.g. 'km', 'C'."},
                    },
                    ("value", "from_unit", "to_unit"),
                ),
                acts=False,
            ),
            convert_units,
        ),
    ]
    return [SkillTool(spec, run) for spec, run in specs]
