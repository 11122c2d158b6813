"""Argument types shared by the CLI's subcommands."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import TypeVar

Number = TypeVar("Number", int, float)


def in_range(
    parse: Callable[[str], Number], lo: Number, hi: Number, what: str
) -> Callable[[str], Number]:
    """An argparse `type`: `parse` the text, which must name `what` within [lo, hi]
    (NaN is outside every range); otherwise argparse's one-line usage error."""

    def check(text: str) -> Number:
        try:
            value = parse(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not {what}: {text!r}") from None
        if not lo <= value <= hi:
            raise argparse.ArgumentTypeError(f"must be between {lo:g} and {hi:g}: {text!r}")
        return value

    return check
