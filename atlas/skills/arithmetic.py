"""Spoken sums: "what's 12 times 7", "15 percent of 80", "square root of 144".

Answers only when the whole question, minus a "what is"/"calculate" lead-in, is an
expression the safe calculator can parse, so "is 80 percent of people..." or "what is
the meaning of life" fall through to an LLM.
"""

from __future__ import annotations

import re
from datetime import datetime
from types import MappingProxyType

from atlas.skills.base import SkillAnswer, strip_courtesy
from atlas.skills.calc import (
    CalcError,
    CalcSyntaxError,
    DivisionByZero,
    NotReal,
    TooLarge,
    evaluate,
    has_operator,
    parse,
)
from atlas.skills.words import format_plain, normalize, round_for_speech

_LEAD = re.compile(
    r"^(?:(?:what|how much) (?:is|are|would be|will be)|calculate|compute|work out|evaluate"
    r"|what does|what do|how much does|how much do) "
)
_TAIL = re.compile(r" (?:equal|equals|make|come to|give|give you|give me|equal to)$")
_REFUSALS: dict[type[CalcError], str] = {
    DivisionByZero: "I'm afraid one can't divide by zero; the answer isn't a number.",
    NotReal: "I'm afraid that has no answer among the real numbers.",
    TooLarge: "That comes out too large to say sensibly, I'm afraid.",
}


def say_result(value: float) -> str:
    """'12.5', or 'about 3.33': two decimals above one, three significant digits below."""
    if abs(value) < 1:
        rounded, exact = round_for_speech(value, significant=3)
    else:
        rounded = round(value, 2)
        exact = abs(rounded - value) <= 1e-9 * abs(value)
    said = format_plain(rounded)
    return said if exact else f"about {said}"


class ArithmeticSkill:
    name = "arithmetic"

    def handle(self, text: str, now: datetime) -> SkillAnswer | None:
        t = strip_courtesy(normalize(text))
        expr = _TAIL.sub("", _LEAD.sub("", t, count=1)).strip()
        try:
            node = parse(expr)
        except CalcSyntaxError:
            return None
        if not has_operator(node):
            return None  # "what is 5" is not a question about arithmetic
        said_expr = re.sub(r"\bx\b", "times", expr)
        if said_expr.startswith(("square root", "cube root")):
            said_expr = "the " + said_expr
        said_expr = said_expr[0].upper() + said_expr[1:]
        try:
            value = evaluate(node)
        except CalcError as e:
            line = _REFUSALS.get(type(e), "I'm afraid that doesn't come out to a number.")
            data = MappingProxyType({"expression": expr, "error": str(e)})
            return SkillAnswer(text=line, skill=self.name, data=data)
        # Brackets can't be heard: say only the result then.
        said = f"That comes to {say_result(value)}." if "(" in expr else None
        return SkillAnswer(
            text=said or f"{said_expr} is {say_result(value)}.",
            skill=self.name,
            data=MappingProxyType({"expression": expr, "value": value}),
        )
