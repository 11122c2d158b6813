"""The `atlas` command: parse, build, call, print.

Every user error ends as one line on stderr and a non-zero exit code, never a
traceback. Exit codes: 0 ok, 1 some input failed, 2 usage/config/model error,
78 no audio device (EX_CONFIG), 130 interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import structlog

from atlas import __version__, cli_brain, cli_budget, cli_eval, cli_rooms, cli_voice
from atlas.llm.budget import BudgetError
from atlas.logs import configure_logging, redact_text
from atlas.modelstore import ModelError
from atlas.settings import Settings, SettingsError, load_settings
from voice.errors import AudioDeviceError, VoiceError

EXIT_INPUT = 1
EXIT_USAGE = 2
EXIT_NO_DEVICE = 78  # EX_CONFIG: systemd must not restart-loop on it
EXIT_INTERRUPTED = 130

log = structlog.get_logger("atlas.cli")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # one line, not argparse's usage dump
        self.exit(EXIT_USAGE, f"atlas: {message} (see `atlas --help`)\n")


def _fail(message: str) -> None:
    print(f"atlas: {redact_text(message)}", file=sys.stderr)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="atlas", description="ATLAS, the home voice assistant.")
    p.add_argument("--version", action="version", version=f"atlas {__version__}")
    p.add_argument(
        "--config", type=Path, help="config file (default: $ATLAS_CONFIG or config/atlas.yaml)"
    )
    p.add_argument(
        "--log-level", choices=["debug", "info", "warning", "error"], help="override logging.level"
    )
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_Parser)

    t = sub.add_parser("transcribe", help="VAD + STT on audio files: one line per utterance")
    t.add_argument("files", nargs="+", type=Path, metavar="FILE")
    t.add_argument("--json", action="store_true", help="one JSON object per utterance")

    sub.add_parser("devices", help="list audio devices")
    sub.add_parser("listen", help="live transcripts from the microphone (VAD + STT only)")

    m = sub.add_parser("models", help="list the bundled models, or verify their hashes")
    m.add_argument("action", nargs="?", choices=["list", "verify"], default="list")

    cli_brain.add_parsers(sub)
    cli_budget.add_parsers(sub)
    cli_voice.add_parsers(sub)
    cli_eval.add_parsers(sub)
    cli_rooms.add_parsers(sub)
    sub.add_parser("doctor", help="one screen: tiers, budget, audio devices, model files")

    # Everything after `bench` belongs to the benchmark's own parser (see main()).
    sub.add_parser("bench", help="the latency benchmark (see `atlas bench --help`)", add_help=False)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    # `atlas [global options] bench ...`: the rest goes to the benchmark's own parser.
    cut = argv.index("bench") + 1 if "bench" in argv else len(argv)
    args = parser.parse_args(argv[:cut])
    if args.command == "bench":
        args.bench_args = argv[cut:]
    elif cut < len(argv):
        args = parser.parse_args(argv)
    try:
        settings = load_settings(args.config)
        level = args.log_level or settings.logging.level
        # Command output goes to stdout; keep logs quiet there unless asked.
        quiet = {"transcribe", "devices", "models", "ask", "route", "budget", "router", "say"}
        quiet.update({"replay", "eval", "doctor"})
        if args.command in quiet and not args.log_level:
            level = "warning"
        configure_logging(level, settings.logging.format)
        return _dispatch(args, settings)
    except (SettingsError, ModelError, BudgetError) as e:
        _fail(str(e))
        return EXIT_USAGE
    except AudioDeviceError as e:
        _fail(str(e))
        return EXIT_NO_DEVICE
    except VoiceError as e:
        _fail(str(e))
        return EXIT_INPUT
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # `atlas transcribe ... | head`
        return 0


def _dispatch(args: argparse.Namespace, settings: Settings) -> int:
    commands: dict[str, Callable[[argparse.Namespace, Settings], int]] = {
        "transcribe": _cmd_transcribe,
        "devices": _cmd_devices,
        "listen": _cmd_listen,
        "models": _cmd_models,
        "bench": _cmd_bench,
        "ask": cli_brain.cmd_ask,
        "route": cli_brain.cmd_route,
        "budget": cli_budget.cmd_budget,
        "router": cli_brain.cmd_router,
        "run": cli_voice.cmd_run,
        "replay": cli_voice.cmd_replay,
        "say": cli_voice.cmd_say,
        "eval": cli_eval.cmd_eval,
        "doctor": _cmd_doctor,
        "serve-wyoming": cli_rooms.cmd_serve_wyoming,
    }
    return commands[args.command](args, settings)


def _cmd_transcribe(args: argparse.Namespace, settings: Settings) -> int:
    from atlas.app import build_ears, build_store
    from atlas.hearing import FileTranscript, transcribe_files

    ears = build_ears(settings, build_store(settings))

    def emit(item: FileTranscript) -> None:
        print(json.dumps(item.as_dict()) if args.json else item.as_line(), flush=True)

    try:
        failed = asyncio.run(transcribe_files(ears, list(args.files), emit, _fail))
    finally:
        ears.close()
    return EXIT_INPUT if failed else 0


def _cmd_devices(args: argparse.Namespace, settings: Settings) -> int:
    from voice.audio import list_devices

    devices = list_devices()
    if not devices:
        _fail("no audio devices found (is a microphone or sound card connected?)")
        return EXIT_NO_DEVICE
    for d in devices:
        marks = ("<in " if d.is_default_input else "") + ("out>" if d.is_default_output else "")
        print(
            f"{d.index:3d}  {d.name}  (in {d.max_input_channels}, out {d.max_output_channels}, "
            f"{d.default_samplerate:.0f} Hz) {marks}".rstrip()
        )
    return 0


def _cmd_listen(args: argparse.Namespace, settings: Settings) -> int:
    from atlas.app import build_ears, build_store
    from atlas.hearing import listen
    from voice.listener import Heard

    ears = build_ears(settings, build_store(settings))

    def emit(heard: Heard) -> None:
        u = heard.utterance
        print(f"[{u.speech_start_s:7.2f}s] {heard.transcript.text}", flush=True)

    try:
        asyncio.run(listen(ears, emit))
    finally:
        ears.close()
    return 0


def _cmd_models(args: argparse.Namespace, settings: Settings) -> int:
    from atlas.app import build_store
    from atlas.modelstore import package_folder

    store = build_store(settings)
    bad = 0
    for entry in store.entries:
        if args.action == "verify":
            try:
                model = store.verify(entry.name)
                print(f"ok       {entry.name:20s} {model.path}")
            except ModelError as e:
                bad += 1
                print(f"FAILED   {e}")
        else:
            where = package_folder(entry.module)
            state = "installed" if where else "missing"
            print(
                f"{entry.name:20s} {entry.kind:8s} {state:9s} {entry.package}  {entry.description}"
            )
    return EXIT_USAGE if bad else 0


def _cmd_doctor(args: argparse.Namespace, settings: Settings) -> int:
    from atlas.doctor import run_doctor

    return run_doctor(settings)


def _cmd_bench(args: argparse.Namespace, settings: Settings) -> int:
    from atlas.bench.cli import main as bench_main

    extra = ["--config", str(args.config)] if args.config else []
    return bench_main([*extra, *args.bench_args])


if __name__ == "__main__":
    sys.exit(main())
