"""`atlas serve-wyoming`: ATLAS's ears, voice and brain as Wyoming services."""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

from atlas.settings import Settings, load_secrets


def add_parsers(sub: Any) -> None:
    w = sub.add_parser(
        "serve-wyoming",
        help="serve ATLAS's asr, tts and handle as Wyoming services (for Home Assistant)",
    )
    w.add_argument(
        "--uri",
        default="tcp://127.0.0.1:10300",
        help="tcp://HOST:PORT or unix://PATH (default: loopback only; Wyoming has no auth)",
    )
    w.add_argument("--no-handle", action="store_true", help="only asr and tts (no brain is loaded)")


def cmd_serve_wyoming(args: argparse.Namespace, settings: Settings) -> int:
    from atlas.wyoming.serve import UriError, parse_uri, serve_wyoming

    try:
        endpoint = parse_uri(args.uri)
        return asyncio.run(
            serve_wyoming(settings, load_secrets(), endpoint, handle=not args.no_handle)
        )
    except UriError as e:
        print(f"atlas: {e}", file=sys.stderr)
        return 2
