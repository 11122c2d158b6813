"""A small, safe calculator for spoken (and typed) arithmetic. Never eval().

`parse()` turns normalized words ("15 percent of 80", "2 to the power of 10", "the
square root of 144") or symbols ("(2+3)*4") into a tree of numbers and + - * / **,
roots and percentages; `evaluate()` computes it in floats with every failure a
`CalcError` subclass.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from atlas.skills.words import normalize

MAX_TOKENS = 64  # bounds the recursion depth as well as the work
MAX_MAGNITUDE = 1e15  # beyond this the digits are no longer sayable (or exact)


class CalcError(ValueError):
    """The expression cannot be computed; the text is fit for a caller to read."""


class CalcSyntaxError(CalcError):
    """Not an arithmetic expression we understand."""


class DivisionByZero(CalcError):
    pass


class NotReal(CalcError):
    """A root of a negative number, or similar."""


class TooLarge(CalcError):
    pass


@dataclass(frozen=True)
class Num:
    value: float


@dataclass(frozen=True)
class Neg:
    operand: Node


@dataclass(frozen=True)
class BinOp:
    op: str
    """One of + - * / **."""
    left: Node
    right: Node


@dataclass(frozen=True)
class Root:
    degree: int
    operand: Node


@dataclass(frozen=True)
class PercentOf:
    percent: Node
    of: Node


Node = Num | Neg | BinOp | Root | PercentOf

# Spoken operators, longest first so "divided by" wins over a lone word.
_INFIX: tuple[tuple[tuple[str, ...], str], ...] = (
    (("raised", "to", "the", "power", "of"), "**"),
    (("to", "the", "power", "of"), "**"),
    (("to", "the", "power"), "**"),
    (("raised", "to"), "**"),
    (("multiplied", "by"), "*"),
    (("divided", "by"), "/"),
    (("take", "away"), "-"),
    (("plus",), "+"),
    (("minus",), "-"),
    (("times",), "*"),
    (("x",), "*"),
    (("over",), "/"),
)
_PRECEDENCE = {"+": 1, "-": 1, "*": 2, "/": 2}
_ROOTS = {"square": 2, "cube": 3}


class _Parser:
    def __init__(self, tokens: list[str]) -> None:
        self.tokens = tokens
        self.i = 0

    def peek_op(self) -> tuple[str, int] | None:
        for words, op in _INFIX:
            if tuple(self.tokens[self.i : self.i + len(words)]) == words:
                return op, len(words)
        return None

    def accept(self, *words: str) -> bool:
        if tuple(self.tokens[self.i : self.i + len(words)]) == words:
            self.i += len(words)
            return True
        return False

    def expr(self, level: int = 1) -> Node:
        """Left-associative + - (level 1) and * / (level 2)."""
        node = self.expr(level + 1) if level < 2 else self.unary()
        while (found := self.peek_op()) and _PRECEDENCE.get(found[0]) == level:
            op, width = found
            self.i += width
            right = self.expr(level + 1) if level < 2 else self.unary()
            node = BinOp(op, node, right)
        return node

    def unary(self) -> Node:
        if self.accept("minus") or self.accept("negative"):
            return Neg(self.unary())
        if self.accept("plus"):
            return self.unary()
        return self.power()

    def power(self) -> Node:
        base = self.postfix()
        found = self.peek_op()
        if found and found[0] == "**":
            self.i += found[1]
            return BinOp("**", base, self.unary())  # right-associative: 2^3^2 = 2^9
        return base

    def postfix(self) -> Node:
        node = self.primary()
        while True:
            if self.accept("squared"):
                node = BinOp("**", node, Num(2.0))
            elif self.accept("cubed"):
                node = BinOp("**", node, Num(3.0))
            else:
                return node

    def primary(self) -> Node:
        self.accept("the")
        for word, degree in _ROOTS.items():
            if self.accept(word, "root", "of") or self.accept(word, "root"):
                return Root(degree, self.unary())
        if self.accept("sqrt"):
            return Root(2, self.unary())
        if self.accept("("):
            node = self.expr()
            if not self.accept(")"):
                raise CalcSyntaxError("unbalanced brackets")
            return node
        if self.i >= len(self.tokens):
            raise CalcSyntaxError("expected a number")
        try:
            number = Num(float(self.tokens[self.i]))
        except ValueError:
            raise CalcSyntaxError(f"not a number: {self.tokens[self.i]!r}") from None
        if not math.isfinite(number.value):
            raise CalcSyntaxError("not a number")
        self.i += 1
        if self.accept("percent", "of"):
            return PercentOf(number, self.postfix())
        return number


def parse(expression: str) -> Node:
    """Parse spoken or typed arithmetic; raises CalcSyntaxError if it is anything else."""
    tokens = normalize(expression).split()
    if not tokens:
        raise CalcSyntaxError("empty expression")
    if len(tokens) > MAX_TOKENS:
        raise CalcSyntaxError("expression too long")
    parser = _Parser(tokens)
    node = parser.expr()
    if parser.i != len(tokens):
        raise CalcSyntaxError(f"unexpected {tokens[parser.i]!r}")
    return node


def has_operator(node: Node) -> bool:
    return not isinstance(node, Num)


def evaluate(node: Node) -> float:
    value = _eval(node)
    if not math.isfinite(value) or abs(value) >= MAX_MAGNITUDE:
        raise TooLarge("the result is too large")
    return value


def calculate(expression: str) -> float:
    return evaluate(parse(expression))


def _eval(node: Node) -> float:
    if isinstance(node, Num):
        return node.value
    if isinstance(node, Neg):
        return -_eval(node.operand)
    if isinstance(node, PercentOf):
        return _eval(node.percent) / 100.0 * _eval(node.of)
    if isinstance(node, Root):
        x = _eval(node.operand)
        if node.degree == 2:
            if x < 0:
                raise NotReal("a negative number has no real square root")
            return math.sqrt(x)
        return math.copysign(round(abs(x) ** (1 / 3), 12), x)
    left, right = _eval(node.left), _eval(node.right)
    try:
        if node.op == "+":
            return left + right
        if node.op == "-":
            return left - right
        if node.op == "*":
            return left * right
        if node.op == "/":
            if right == 0:
                raise DivisionByZero("division by zero")
            return left / right
        if left == 0 and right < 0:
            raise DivisionByZero("zero to a negative power")
        return math.pow(left, right)  # unlike **, never returns a complex number
    except OverflowError:
        raise TooLarge("the result is too large") from None
    except ValueError as e:
        if isinstance(e, CalcError):
            raise
        raise NotReal("that has no real result") from None
