from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from atlas.llm.tools import Tool
from atlas.skills import (
    ArithmeticSkill,
    ClockSkill,
    SkillAnswer,
    SkillSet,
    TimerService,
    UnitsSkill,
    build_skills,
)
from atlas.skills.calc import CalcError, calculate
from atlas.skills.durations import duration_adjective, parse_duration, say_duration
from atlas.skills.tools import skill_tools
from atlas.skills.units import UnitError, convert
from atlas.skills.words import int_words, normalize, ordinal_words

LONDON = ZoneInfo("Europe/London")
NEW_YORK = ZoneInfo("America/New_York")
# A Tuesday afternoon in London (GMT, no DST)
NOW = datetime(2024, 3, 5, 15, 20, 0, tzinfo=UTC)


# ---------------------------------------------------------------- words


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("What's the time?", "what is the time"),
        ("twenty five", "25"),
        ("twenty-five minutes", "25 minutes"),
        ("one hundred and twenty three", "123"),
        ("a hundred", "100"),
        ("two thousand and twenty four", "2024"),
        ("fifteen hundred", "1500"),
        ("one and a half hours", "1.5 hours"),
        ("two point five", "2.5"),
        ("1,000 times 3", "1000 times 3"),
        ("12*7", "12 times 7"),
        ("15% of 80", "15 percent of 80"),
        ("five twenty", "5 20"),  # two numbers, not 25
        ("set a timer", "set a timer"),  # "a" is not a number on its own
        ("10-minute timer", "10 minute timer"),
        ("-5 + 3", "minus 5 plus 3"),
    ],
)
def test_normalize(text: str, expected: str) -> None:
    assert normalize(text) == expected


@pytest.mark.parametrize(
    ("n", "words"),
    [(0, "zero"), (7, "seven"), (25, "twenty-five"), (130, "one hundred and thirty"),
     (2024, "two thousand and twenty-four")],
)  # fmt: skip
def test_int_words(n: int, words: str) -> None:
    assert int_words(n) == words


def test_ordinals() -> None:
    assert [ordinal_words(n) for n in (1, 2, 3, 12, 20, 21, 22, 30, 31)] == [
        "first", "second", "third", "twelfth", "twentieth", "twenty-first",
        "twenty-second", "thirtieth", "thirty-first",
    ]  # fmt: skip


# ---------------------------------------------------------------- clock


def at(tz: tzinfo, *args: int) -> datetime:
    year, month, day, hour, minute = args
    return datetime(year, month, day, hour, minute, tzinfo=tz)


@pytest.mark.parametrize(
    ("local", "said"),
    [
        ((2024, 3, 5, 15, 20), "It's twenty past three in the afternoon."),
        ((2024, 3, 5, 0, 0), "It's midnight."),
        ((2024, 3, 5, 12, 0), "It's noon."),
        ((2024, 3, 5, 0, 10), "It's ten past midnight."),
        ((2024, 3, 5, 12, 20), "It's twenty past twelve in the afternoon."),
        ((2024, 3, 5, 11, 45), "It's a quarter to noon."),
        ((2024, 3, 5, 23, 45), "It's a quarter to midnight."),
        ((2024, 3, 5, 23, 59), "It's eleven fifty-nine at night."),
        ((2024, 3, 5, 7, 5), "It's five past seven in the morning."),
        ((2024, 3, 5, 9, 7), "It's nine oh seven in the morning."),
        ((2024, 3, 5, 13, 17), "It's one seventeen in the afternoon."),
        ((2024, 3, 5, 15, 0), "It's three o'clock in the afternoon."),
        ((2024, 3, 5, 18, 30), "It's half past six in the evening."),
        ((2024, 3, 5, 21, 55), "It's five to ten at night."),
        ((2024, 3, 5, 10, 15), "It's a quarter past ten in the morning."),
        ((2024, 3, 5, 16, 35), "It's twenty-five to five in the afternoon."),
    ],
)
def test_time_is_said_like_a_person(local: tuple[int, ...], said: str) -> None:
    answer = ClockSkill(LONDON).handle("What time is it?", at(LONDON, *local))
    assert answer is not None
    assert answer.text == said
    assert answer.data["time"] == f"{local[3]:02d}:{local[4]:02d}"


@pytest.mark.parametrize(
    ("utc", "tz", "hhmm", "said"),
    [
        # New York springs forward at 02:00 EST -> 03:00 EDT on 10 March 2024
        ((2024, 3, 10, 6, 30), NEW_YORK, "01:30", "It's half past one at night."),
        ((2024, 3, 10, 7, 30), NEW_YORK, "03:30", "It's half past three at night."),
        ((2024, 3, 10, 16, 0), NEW_YORK, "12:00", "It's noon."),
        # London falls back at 02:00 BST -> 01:00 GMT on 27 October 2024: 01:30 twice
        ((2024, 10, 27, 0, 30), LONDON, "01:30", "It's half past one at night."),
        ((2024, 10, 27, 1, 30), LONDON, "01:30", "It's half past one at night."),
        ((2024, 10, 27, 2, 30), LONDON, "02:30", "It's half past two at night."),
        # Tokyo is UTC+9: 15:20 UTC is 00:20 the next day
        ((2024, 3, 5, 15, 20), ZoneInfo("Asia/Tokyo"), "00:20", "It's twenty past midnight."),
    ],
)
def test_time_in_the_configured_zone_across_dst(
    utc: tuple[int, ...], tz: ZoneInfo, hhmm: str, said: str
) -> None:
    answer = ClockSkill(tz).handle("what's the time", at(UTC, *utc))
    assert answer is not None
    assert (answer.text, answer.data["time"]) == (said, hhmm)


@pytest.mark.parametrize(
    ("question", "said", "date"),
    [
        ("What's the date?", "Today is Tuesday, the fifth of March.", "2024-03-05"),
        ("what is today's date", "Today is Tuesday, the fifth of March.", "2024-03-05"),
        ("What day is it today?", "Today is Tuesday, the fifth of March.", "2024-03-05"),
        ("what day of the week is it", "Today is Tuesday, the fifth of March.", "2024-03-05"),
        ("What day is tomorrow?", "Tomorrow is Wednesday, the sixth of March.", "2024-03-06"),
        ("what's tomorrow's date", "Tomorrow is Wednesday, the sixth of March.", "2024-03-06"),
        ("what day was yesterday", "Yesterday was Monday, the fourth of March.", "2024-03-04"),
        ("What's the date on Friday?", "Friday is the eighth of March.", "2024-03-08"),
        ("what date is next monday", "Monday is the eleventh of March.", "2024-03-11"),
        ("what is the date on tuesday", "Tuesday is the twelfth of March.", "2024-03-12"),
    ],
)
def test_dates(question: str, said: str, date: str) -> None:
    answer = ClockSkill(LONDON).handle(question, NOW)
    assert answer is not None
    assert (answer.text, answer.data["date"]) == (said, date)


TOMORROW = "what day is tomorrow"


@pytest.mark.parametrize(
    ("utc", "question", "said"),
    [
        # 23:30 in New York is already the 11th in UTC: the local date counts
        ((2024, 3, 11, 3, 30), "what's the date", "Today is Sunday, the tenth of March."),
        ((2024, 3, 11, 3, 30), TOMORROW, "Tomorrow is Monday, the eleventh of March."),
        ((2024, 2, 28, 17, 0), TOMORROW, "Tomorrow is Thursday, the twenty-ninth of February."),
        ((2024, 12, 31, 17, 0), TOMORROW, "Tomorrow is Wednesday, the first of January."),
        ((2025, 1, 1, 17, 0), "what was yesterday's date",
         "Yesterday was Tuesday, the thirty-first of December."),
        ((2024, 12, 31, 17, 0), "what year is it", "It's 2024."),
        ((2025, 1, 1, 4, 59), "what year is it", "It's 2024."),
        ((2024, 12, 31, 17, 0), "what month is it", "It's December."),
    ],
)  # fmt: skip
def test_dates_at_boundaries(utc: tuple[int, ...], question: str, said: str) -> None:
    answer = ClockSkill(NEW_YORK).handle(question, at(UTC, *utc))
    assert answer is not None
    assert answer.text == said


def test_clock_refuses_a_naive_now() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        ClockSkill(LONDON).handle("what time is it", datetime(2024, 3, 5, 15, 20))


# ---------------------------------------------------------------- arithmetic


@pytest.mark.parametrize(
    ("question", "said", "value"),
    [
        ("what is 15 percent of 80", "15 percent of 80 is 12.", 12),
        ("What is fifteen percent of eighty?", "15 percent of 80 is 12.", 12),
        ("What's 12 times 7?", "12 times 7 is 84.", 84),
        ("what's twelve times seven", "12 times 7 is 84.", 84),
        ("23 plus 19", "23 plus 19 is 42.", 42),
        ("100 divided by 8", "100 divided by 8 is 12.5.", 12.5),
        ("square root of 144", "The square root of 144 is 12.", 12),
        ("what's the square root of 2", "The square root of 2 is about 1.41.", 2**0.5),
        ("what's 2 to the power of 10", "2 to the power of 10 is 1024.", 1024),
        ("what is two to the power of ten", "2 to the power of 10 is 1024.", 1024),
        ("10 divided by 3", "10 divided by 3 is about 3.33.", 10 / 3),
        ("what is 1 divided by 8", "1 divided by 8 is 0.125.", 0.125),
        ("what is 0.1 plus 0.2", "0.1 plus 0.2 is 0.3.", 0.1 + 0.2),
        ("what is 2 plus 3 times 4", "2 plus 3 times 4 is 14.", 14),
        ("what is minus 5 times 3", "Minus 5 times 3 is -15.", -15),
        ("what is 7 squared", "7 squared is 49.", 49),
        ("calculate 3 x 4", "3 times 4 is 12.", 12),
        ("calculate (2+3)*4", "That comes to 20.", 20),
        ("what does 2 plus 2 equal", "2 plus 2 is 4.", 4),
        ("how much is 250 minus 75", "250 minus 75 is 175.", 175),
        ("what is one hundred and twenty three minus four", "123 minus 4 is 119.", 119),
        ("what is the cube root of 27", "The cube root of 27 is 3.", 3),
        ("Atlas, what is 6 times 7?", "6 times 7 is 42.", 42),
    ],
)
def test_arithmetic(question: str, said: str, value: float) -> None:
    answer = build_skills(LONDON, TimerService()).handle(question, NOW)
    assert answer is not None
    assert answer.skill == "arithmetic"
    assert answer.text == said
    assert answer.data["value"] == pytest.approx(value)


@pytest.mark.parametrize(
    ("question", "said"),
    [
        ("what is 5 divided by 0",
         "I'm afraid one can't divide by zero; the answer isn't a number."),
        ("what is the square root of minus 4",
         "I'm afraid that has no answer among the real numbers."),
        ("what is 2 to the power of 1000",
         "That comes out too large to say sensibly, I'm afraid."),
    ],
)  # fmt: skip
def test_arithmetic_refusals_are_courteous(question: str, said: str) -> None:
    answer = ArithmeticSkill().handle(question, NOW)
    assert answer is not None
    assert answer.text == said
    assert "error" in answer.data


def test_calculator_never_evaluates_python() -> None:
    for hostile in ("__import__('os').system('true')", "().__class__", "1 if 1 else 2", "x"):
        with pytest.raises(CalcError):
            calculate(hostile)
    assert calculate("2 ** 3 ** 2") == 512  # right-associative, like mathematics
    assert calculate("-(2+3)*4") == -20


# ---------------------------------------------------------------- units


@pytest.mark.parametrize(
    ("question", "said", "result"),
    [
        ("how many ounces in a pound", "There are 16 ounces in a pound.", 16),
        ("Convert 5 miles to kilometers.", "5 miles is about 8.05 kilometers.", 8.04672),
        ("what's 180 degrees fahrenheit in celsius",
         "180 degrees Fahrenheit is about 82.2 degrees Celsius.", 82.2222222),
        ("How many cups in a liter?", "There are about 4.23 cups in a liter.", 4.22675284),
        ("how many ounces in a cup", "There are 8 fluid ounces in a cup.", 8),
        ("how many kilometres is five miles", "5 miles is about 8.05 kilometers.", 8.04672),
        ("what is 100 km/h in mph", "100 kilometers per hour is about 62.1 miles per hour.",
         62.1371192),
        ("what's 20 degrees in fahrenheit", "20 degrees Celsius is 68 degrees Fahrenheit.", 68),
        ("minus 40 celsius in fahrenheit", "-40 degrees Celsius is -40 degrees Fahrenheit.", -40),
        ("what is 37 degrees celsius in fahrenheit",
         "37 degrees Celsius is 98.6 degrees Fahrenheit.", 98.6),
        ("how many feet in a mile", "There are 5280 feet in a mile.", 5280),
        ("how many centimeters in an inch", "There are 2.54 centimeters in an inch.", 2.54),
        ("what is 6 feet in centimeters", "6 feet is about 183 centimeters.", 182.88),
        ("convert 2 cups to ml", "2 cups is about 473 milliliters.", 473.176473),
        ("how many grams in an ounce", "There are about 28.3 grams in an ounce.", 28.3495231),
        ("what is 1 kilogram in pounds", "1 kilogram is about 2.2 pounds.", 2.20462262),
        ("how many liters in a gallon", "There are about 3.79 liters in a gallon.", 3.785411784),
        ("convert ten kilograms to pounds", "10 kilograms is about 22 pounds.", 22.0462262),
        ("how many seconds in an hour", "There are 3600 seconds in an hour.", 3600),
        ("how many minutes in a day", "There are 1440 minutes in a day.", 1440),
    ],
)  # fmt: skip
def test_units(question: str, said: str, result: float) -> None:
    answer = build_skills(LONDON, TimerService()).handle(question, NOW)
    assert answer is not None
    assert answer.skill == "units"
    assert answer.text == said
    assert answer.data["result"] == pytest.approx(result, rel=1e-6)


def test_below_absolute_zero_is_refused() -> None:
    answer = UnitsSkill().handle("what is minus 500 celsius in kelvin", NOW)
    assert answer is not None
    assert "absolute zero" in answer.text
    with pytest.raises(UnitError, match="absolute zero"):
        convert(-500, "C", "K")


def test_convert_errors_are_clear() -> None:
    with pytest.raises(UnitError, match="unknown unit 'furlongs'"):
        convert(1, "furlongs", "m")
    with pytest.raises(UnitError, match="cannot convert length"):
        convert(1, "miles", "kg")


# ---------------------------------------------------------------- durations


@pytest.mark.parametrize(
    ("spoken", "seconds"),
    [
        ("10 minutes", 600), ("a minute", 60), ("an hour", 3600), ("half an hour", 1800),
        ("1.5 hours", 5400), ("an hour and a half", 5400), ("1 hour and 30 minutes", 5400),
        ("1 hour 30 minutes", 5400), ("90 seconds", 90), ("a minute and a half", 90),
        ("2 minutes and 30 seconds", 150), ("a quarter of an hour", 900), ("5 min", 300),
    ],
)  # fmt: skip
def test_parse_duration(spoken: str, seconds: float) -> None:
    assert parse_duration(spoken) == seconds


@pytest.mark.parametrize("spoken", ["", "minutes", "ten", "10 apples", "an hour or so"])
def test_parse_duration_rejects(spoken: str) -> None:
    assert parse_duration(spoken) is None


def test_saying_durations() -> None:
    assert say_duration(552) == "nine minutes and twelve seconds"
    assert say_duration(3600) == "one hour"
    assert say_duration(5399.6) == "one hour and thirty minutes"
    assert say_duration(0.2) == "less than a second"
    assert duration_adjective(600) == "ten minute"
    assert duration_adjective(90) == "ninety second"
    assert duration_adjective(5400) == "ninety minute"
    assert duration_adjective(7800) == "two hour ten minute"


# ---------------------------------------------------------------- timers (parsing)


@pytest.mark.parametrize(
    ("request_", "seconds", "label"),
    [
        ("Set a timer for 10 minutes.", 600, None),
        ("set a ten minute timer", 600, None),
        ("Timer for 1 hour and 30 minutes", 5400, None),
        ("5 minute tea timer", 300, "tea"),
        ("Set a timer for ninety seconds.", 90, None),
        ("set a timer for half an hour", 1800, None),
        ("set a timer for one and a half hours", 5400, None),
        ("start a twenty-five minute timer please", 1500, None),
        ("set a pasta timer for 8 minutes", 480, "pasta"),
        ("set a timer for 5 minutes for the eggs", 300, "eggs"),
        ("set a timer for an hour called laundry", 3600, "laundry"),
        ("could you set a timer for a minute", 60, None),
        ("set another timer for 2 minutes", 120, None),
    ],
)
async def test_timer_requests_parse(request_: str, seconds: float, label: str | None) -> None:
    service = TimerService()
    try:
        answer = build_skills(LONDON, service).handle(request_, NOW)
        assert answer is not None
        assert answer.skill == "timers"
        assert answer.data["action"] == "set"
        (timer,) = answer.data["timers"]
        assert (timer["duration_s"], timer["label"]) == (seconds, label)
        assert len(service.list()) == 1
    finally:
        await service.aclose()


async def test_timer_set_answers_in_persona() -> None:
    service = TimerService()
    skills = build_skills(LONDON, service)
    try:
        plain = skills.handle("set a timer for 10 minutes", NOW)
        tea = skills.handle("5 minute tea timer", NOW)
        assert plain is not None and tea is not None
        assert plain.text == "Very good. Ten minutes, starting now."
        assert tea.text == "Very good. Your tea timer is set for five minutes."
    finally:
        await service.aclose()


# ---------------------------------------------------------------- not ours


@pytest.mark.parametrize(
    "question",
    [
        "how does a timer work",
        "what is a timer",
        "set a timer on the oven",
        "my oven timer is broken",
        "what time does the pharmacy close",
        "what time zone is Tokyo in",
        "what time is it in Tokyo",
        "what time is the match tonight",
        "is 80 percent of people right handed",
        "what is 80 percent of people",
        "what is the meaning of life",
        "what is 5",
        "what is 2 plus 2 in binary",
        "how many people live in London",
        "how many miles is it to Paris",
        "convert 5 euros to dollars",
        "how many miles in a kilogram",
        "what day is christmas",
        "tell me a joke",
        "what's the weather in celsius",
        "when is my next meeting",
        "timer",
        "",
        "   ",
        "Atlas",
        "what date did the war end",
        "how long is left in the game",
        "how long does it take to boil an egg",
        "remind me to call mum in ten minutes",
        "what is the time complexity of quicksort",
        "how many days until christmas",
        "how many days in a month",
        "how many calories in a cup of rice",
        "how many cups in a pound of flour",
        "what day is it in Sydney",
        "set an alarm for 7 am",
        "what is 100 minus 20 percent",
        "what is pi times 2",
        "what's the time difference between London and New York",
    ],
)
def test_questions_for_an_llm_are_left_alone(question: str) -> None:
    assert build_skills(LONDON, TimerService()).handle(question, NOW) is None


# ---------------------------------------------------------------- skill set


class Boom:
    name = "boom"

    def handle(self, text: str, now: datetime) -> SkillAnswer | None:
        raise RuntimeError("broken skill")


class Echo:
    name = "echo"

    def handle(self, text: str, now: datetime) -> SkillAnswer | None:
        return SkillAnswer(text=text, skill=self.name, data={})


def test_skillset_order_wake_word_and_broken_skills() -> None:
    skills = SkillSet([Boom(), Echo()], wake_names=("Atlas",))
    answer = skills.handle("Hey Atlas, hello there", NOW)
    assert answer is not None
    assert (answer.skill, answer.text) == ("echo", "hello there")
    assert skills.handle("Atlas?", NOW) is None
    assert [s.name for s in skills] == ["boom", "echo"]


def test_skill_answers_are_frozen() -> None:
    answer = ClockSkill(LONDON).handle("what time is it", NOW)
    assert answer is not None
    with pytest.raises(AttributeError):
        answer.text = "changed"  # type: ignore[misc]
    with pytest.raises(TypeError):
        answer.data["time"] = "00:00"  # type: ignore[index]


# ---------------------------------------------------------------- tools

JSON_TYPES = {"object", "string", "number", "integer", "boolean", "array", "null"}


@pytest.fixture
async def tools() -> Iterator[dict[str, Tool]]:  # type: ignore[misc]
    service = TimerService()
    made = skill_tools(build_skills(LONDON, service), service, LONDON, now=lambda: NOW)
    yield {t.spec.name: t for t in made}
    await service.aclose()


def check_schema(schema: Any) -> None:
    """The subset of JSON Schema the tools use, checked structurally."""
    assert schema["type"] == "object"
    assert schema["additionalProperties"] is False
    props = schema["properties"]
    assert set(schema["required"]) <= set(props)
    for prop in props.values():
        types = prop["type"] if isinstance(prop["type"], list) else [prop["type"]]
        assert set(types) <= JSON_TYPES


async def test_tool_specs(tools: dict[str, Tool]) -> None:
    assert set(tools) == {
        "get_current_datetime",
        "set_timer",
        "list_timers",
        "cancel_timer",
        "calculate",
        "convert_units",
    }
    for tool in tools.values():
        spec = tool.spec.as_anthropic()
        json.dumps(spec)  # serialisable as sent to the API
        assert spec["description"]
        check_schema(spec["input_schema"])


async def test_tools_run(tools: dict[str, Tool]) -> None:
    now = await tools["get_current_datetime"].run({})
    assert now.startswith("2024-03-05T15:20:00+00:00 (Tuesday 5 March 2024, 3:20 PM (GMT)")
    assert "Europe/London" in now
    assert await tools["calculate"].run({"expression": "15 percent of 80"}) == "12"
    assert await tools["calculate"].run({"expression": "(2+3)*4"}) == "20"
    assert (
        await tools["convert_units"].run({"value": 5, "from_unit": "miles", "to_unit": "km"})
        == "5 miles = 8.04672 kilometers"
    )
    assert (
        await tools["convert_units"].run({"value": 212, "from_unit": "F", "to_unit": "C"})
        == "212 degrees Fahrenheit = 100 degrees Celsius"
    )
    assert await tools["list_timers"].run({}) == "No timers are running."
    set_ = await tools["set_timer"].run({"duration_seconds": 300, "label": "Tea"})
    assert set_ == "Timer 1 'tea' set for five minutes; it ends at 15:25:00."
    listed = await tools["list_timers"].run({})
    assert listed.startswith("Timer 1 'tea': ")
    assert await tools["cancel_timer"].run({"label_or_id": "tea"}) == "Cancelled: timer 1 'tea'"
    missing = await tools["cancel_timer"].run({"label_or_id": 7})
    assert missing.startswith("No running timer matches '7'.")


@pytest.mark.parametrize(
    ("name", "args", "message"),
    [
        ("set_timer", {}, "missing required argument 'duration_seconds'"),
        ("set_timer", {"duration_seconds": "ten"}, "'duration_seconds' must be a number"),
        ("set_timer", {"duration_seconds": True}, "'duration_seconds' must be a number"),
        ("set_timer", {"duration_seconds": -5}, "more than zero seconds"),
        ("set_timer", {"duration_seconds": 60, "label": 3}, "'label' must be a string"),
        ("set_timer", {"duration_seconds": 60, "colour": "red"}, "unknown argument"),
        ("calculate", {"expression": "import os"}, "not a number"),
        ("calculate", {"expression": "1/0"}, "division by zero"),
        ("calculate", {"expression": ""}, "must not be empty"),
        ("convert_units", {"value": 1, "from_unit": "m"}, "missing required argument 'to_unit'"),
        ("convert_units", {"value": 1, "from_unit": "m", "to_unit": "kg"}, "cannot convert"),
        ("cancel_timer", {"label_or_id": ""}, "must not be empty"),
    ],
)
async def test_tool_bad_arguments(
    tools: dict[str, Tool], name: str, args: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        await tools[name].run(args)


async def test_tools_take_the_zone_from_the_clock_skill() -> None:
    service = TimerService()
    made = skill_tools(build_skills(NEW_YORK, service), service, now=lambda: NOW)
    (clock,) = [t for t in made if t.spec.name == "get_current_datetime"]
    assert (await clock.run({})).startswith("2024-03-05T10:20:00-05:00")
    with pytest.raises(ValueError, match="time zone"):
        skill_tools(SkillSet([]), service)
