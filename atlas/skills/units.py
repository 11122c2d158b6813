"""Unit conversions people ask for in a kitchen or a car: temperature, length, weight,
volume (US gallons and cups), speed, and spans of time (seconds to weeks).

`convert()` is the plain function (also used by the agent's `convert_units` tool);
`UnitsSkill` answers spoken questions such as "how many ounces in a pound".
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from types import MappingProxyType

from atlas.skills.base import SkillAnswer, strip_courtesy
from atlas.skills.words import format_plain, normalize, say_number


class UnitError(ValueError):
    """Unknown unit, units that don't convert into each other, or an impossible value."""


@dataclass(frozen=True)
class Unit:
    key: str
    dimension: str
    factor: float
    """Multiply to get the dimension's base unit (m, kg, L, m/s, K)."""
    offset: float = 0.0
    """Added after the factor (temperatures only)."""
    singular: str = ""
    plural: str = ""

    def name(self, value: float) -> str:
        return self.singular if value == 1 else self.plural


def _u(key: str, dim: str, factor: float, plural: str = "", offset: float = 0.0) -> Unit:
    return Unit(key, dim, factor, offset, key, plural or key + "s")


_GALLON = 3.785411784  # US liquid gallon, litres
UNITS: tuple[Unit, ...] = (
    _u("meter", "length", 1.0),
    _u("kilometer", "length", 1000.0),
    _u("centimeter", "length", 0.01),
    _u("millimeter", "length", 0.001),
    _u("mile", "length", 1609.344),
    _u("yard", "length", 0.9144),
    _u("foot", "length", 0.3048, "feet"),
    _u("inch", "length", 0.0254, "inches"),
    _u("kilogram", "mass", 1.0),
    _u("gram", "mass", 0.001),
    _u("pound", "mass", 0.45359237),
    _u("ounce", "mass", 0.45359237 / 16),
    _u("stone", "mass", 0.45359237 * 14, "stone"),
    _u("liter", "volume", 1.0),
    _u("milliliter", "volume", 0.001),
    _u("gallon", "volume", _GALLON),
    _u("quart", "volume", _GALLON / 4),
    _u("pint", "volume", _GALLON / 8),
    _u("cup", "volume", _GALLON / 16),
    _u("fluid ounce", "volume", _GALLON / 128),
    _u("tablespoon", "volume", _GALLON / 256),
    _u("teaspoon", "volume", _GALLON / 768),
    _u("kilometer per hour", "speed", 1 / 3.6, "kilometers per hour"),
    _u("mile per hour", "speed", 0.44704, "miles per hour"),
    _u("meter per second", "speed", 1.0, "meters per second"),
    _u("knot", "speed", 1852 / 3600),
    _u("degree Celsius", "temperature", 1.0, "degrees Celsius", 273.15),
    _u("degree Fahrenheit", "temperature", 5 / 9, "degrees Fahrenheit", 273.15 - 32 * 5 / 9),
    _u("kelvin", "temperature", 1.0, "kelvin"),
    # No months or years: their length depends on which one is meant.
    _u("second", "time", 1.0),
    _u("minute", "time", 60.0),
    _u("hour", "time", 3600.0),
    _u("day", "time", 86400.0),
    _u("week", "time", 7 * 86400.0),
)
_BY_KEY = {u.key: u for u in UNITS}

# Spoken (and typed) names; "ounce" is weight unless the other unit is a volume.
_SPOKEN: dict[str, tuple[str, ...]] = {
    "meter": ("meter", "meters", "metre", "metres", "m"),
    "kilometer": ("kilometer", "kilometers", "kilometre", "kilometres", "km", "kms"),
    "centimeter": ("centimeter", "centimeters", "centimetre", "centimetres", "cm"),
    "millimeter": ("millimeter", "millimeters", "millimetre", "millimetres", "mm"),
    "mile": ("mile", "miles"),
    "yard": ("yard", "yards", "yd", "yds"),
    "foot": ("foot", "feet", "ft"),
    "inch": ("inch", "inches"),
    "kilogram": ("kilogram", "kilograms", "kilo", "kilos", "kg", "kgs"),
    "gram": ("gram", "grams", "gramme", "grammes", "g"),
    "pound": ("pound", "pounds", "lb", "lbs"),
    "ounce": ("ounce", "ounces", "oz"),
    "stone": ("stone", "stones"),
    "liter": ("liter", "liters", "litre", "litres", "l"),
    "milliliter": ("milliliter", "milliliters", "millilitre", "millilitres", "ml"),
    "gallon": ("gallon", "gallons", "us gallon", "us gallons", "gal"),
    "quart": ("quart", "quarts", "qt"),
    "pint": ("pint", "pints", "us pint", "us pints", "pt"),
    "cup": ("cup", "cups"),
    "fluid ounce": ("fluid ounce", "fluid ounces", "fl oz"),
    "tablespoon": ("tablespoon", "tablespoons", "tbsp"),
    "teaspoon": ("teaspoon", "teaspoons", "tsp"),
    "kilometer per hour": (
        "kilometers per hour",
        "kilometer per hour",
        "kilometres per hour",
        "kilometre per hour",
        "kilometers an hour",
        "kilometres an hour",
        "km/h",
        "kph",
        "kmh",
    ),
    "mile per hour": ("miles per hour", "mile per hour", "miles an hour", "mph"),
    "meter per second": (
        "meters per second",
        "metres per second",
        "meter per second",
        "metre per second",
        "m/s",
    ),
    "knot": ("knot", "knots"),
    "degree Celsius": (
        "degrees celsius",
        "degree celsius",
        "celsius",
        "degrees centigrade",
        "centigrade",
        "degrees c",
    ),
    "degree Fahrenheit": ("degrees fahrenheit", "degree fahrenheit", "fahrenheit", "degrees f"),
    "kelvin": ("kelvin", "kelvins", "degrees kelvin"),
    "second": ("second", "seconds", "secs"),
    "minute": ("minute", "minutes", "mins"),
    "hour": ("hour", "hours", "hrs"),
    "day": ("day", "days"),
    "week": ("week", "weeks"),
}
# Only for typed tool arguments: in speech "in", "c", "f" are ordinary words.
_TYPED_ONLY: dict[str, tuple[str, ...]] = {
    "inch": ("in",),
    "mile": ("mi",),
    "degree Celsius": ("c", "°c"),
    "degree Fahrenheit": ("f", "°f"),
    "kelvin": ("k",),
}


def _build_lookup() -> MappingProxyType[str, tuple[Unit, ...]]:
    table: dict[str, tuple[Unit, ...]] = {}
    for key, aliases in (*_SPOKEN.items(), *_TYPED_ONLY.items()):
        for alias in aliases:
            table[alias] = (*table.get(alias, ()), _BY_KEY[key])
    for alias in ("ounce", "ounces", "oz"):
        table[alias] = (*table[alias], _BY_KEY["fluid ounce"])
    return MappingProxyType(table)


_LOOKUP = _build_lookup()


@dataclass(frozen=True)
class Conversion:
    value: float
    source: Unit
    target: Unit
    result: float


def find_units(name: str) -> tuple[Unit, ...]:
    """The units a name may mean (usually one), case- and spacing-insensitive."""
    key = " ".join(name.lower().replace(".", " ").replace("-", " ").split())
    return _LOOKUP.get(key, ())


def convert(value: float, from_unit: str, to_unit: str) -> Conversion:
    sources, targets = find_units(from_unit), find_units(to_unit)
    if not sources:
        raise UnitError(f"unknown unit {from_unit!r}")
    if not targets:
        raise UnitError(f"unknown unit {to_unit!r}")
    pair = next(((s, t) for s in sources for t in targets if s.dimension == t.dimension), None)
    if pair is None:
        raise UnitError(
            f"cannot convert {sources[0].dimension} ({from_unit}) to "
            f"{targets[0].dimension} ({to_unit})"
        )
    source, target = pair
    base = value * source.factor + source.offset
    if source.dimension == "temperature" and base < -1e-9:
        raise UnitError(f"{format_plain(value)} {source.plural} is below absolute zero")
    return Conversion(value, source, target, (base - target.offset) / target.factor)


_UNIT_RE = "|".join(
    re.escape(alias) for alias in sorted({a for v in _SPOKEN.values() for a in v}, key=len)[::-1]
)
_NUM = r"(?:minus |negative )?\d+(?:\.\d+)?"
# "20 degrees in fahrenheit": bare degrees mean the other of Celsius and Fahrenheit
_FROM = rf"(?P<from>{_UNIT_RE}|degrees?)"
_Q = rf"(?P<n>{_NUM}|an?)"
_HOW_MANY_IN = re.compile(
    rf"how many (?P<to>{_UNIT_RE}) (?:are |is )?(?:there )?in (?:(?P<n>{_NUM}|an?) )?"
    rf"(?P<from>{_UNIT_RE})"
)
_CONVERT = re.compile(
    rf"(?:convert |what is |how much is |change )?{_Q} {_FROM}"
    rf" (?:in|to|into|in to|as) (?P<to>{_UNIT_RE})"
)
_HOW_MANY_IS = re.compile(rf"how many (?P<to>{_UNIT_RE}) (?:is|are|make|makes|in) {_Q} {_FROM}")


def _number(said: str | None) -> tuple[float, str | None]:
    """The quantity and how the user said it when it was 'a'/'an' (for the reply)."""
    if said is None or said in ("a", "an"):
        return 1.0, said or "a"
    negative = said.startswith(("minus ", "negative "))
    value = float(said.split()[-1])
    return (-value if negative else value), None


def _article(name: str) -> str:
    return "an" if name[0] in "aeiou" or name.startswith("hour") else "a"


class UnitsSkill:
    name = "units"

    def handle(self, text: str, now: datetime) -> SkillAnswer | None:
        t = strip_courtesy(normalize(text))
        m = _HOW_MANY_IN.fullmatch(t)
        if m:
            return self._answer(m, how_many=True)
        m = _CONVERT.fullmatch(t) or _HOW_MANY_IS.fullmatch(t)
        if m:
            return self._answer(m, how_many=False)
        return None

    def _answer(self, m: re.Match[str], how_many: bool) -> SkillAnswer | None:
        value, article = _number(m.group("n"))
        source, target = m.group("from"), m.group("to")
        if source in ("degree", "degrees"):
            to_keys = {u.key for u in find_units(target)}
            if "degree Fahrenheit" in to_keys:
                source = "celsius"
            elif "degree Celsius" in to_keys:
                source = "fahrenheit"
            else:
                return None
        try:
            c = convert(value, source, target)
        except UnitError as e:
            if "below absolute zero" in str(e):
                said = "That would be colder than absolute zero, which nothing can be."
                return self._say(said, {"error": str(e)})
            return None  # "how many miles in a kilogram": not a question we understand
        if how_many and c.source.dimension == "temperature":
            return None
        result, exact = say_number(c.result)
        about = "" if exact else "about "
        to_name = c.target.name(float(result))
        if article:
            amount = f"{_article(c.source.singular)} {c.source.singular}"
        else:
            amount = f"{format_plain(value)} {c.source.name(value)}"
        if how_many:
            verb = "is" if float(result) == 1 else "are"
            said = f"There {verb} {about}{result} {to_name} in {amount}."
        else:
            amount = amount[0].upper() + amount[1:]
            said = f"{amount} is {about}{result} {to_name}."
        data = {
            "value": value,
            "from": c.source.key,
            "to": c.target.key,
            "result": c.result,
        }
        return self._say(said, data)

    def _say(self, text: str, data: dict[str, object]) -> SkillAnswer:
        return SkillAnswer(text=text, skill=self.name, data=MappingProxyType(data))
