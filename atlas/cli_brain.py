"""The brain's commands: `atlas ask`, `route`, `router eval|fit` (`budget`: cli_budget).

Each builds only what it needs (`route` calls no model).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from atlas.cli_args import in_range
from atlas.settings import Settings, load_secrets


def add_parsers(sub: Any) -> None:
    a = sub.add_parser("ask", help="route and answer a text query, streamed to stdout")
    a.add_argument("text", metavar="TEXT")
    a.add_argument("--json", action="store_true", help="one JSON object with the whole turn")

    r = sub.add_parser("route", help="explain the routing decision without calling any model")
    r.add_argument("text", metavar="TEXT")
    r.add_argument("--json", action="store_true")

    rt = sub.add_parser("router", help="train, evaluate or fit the router")
    rsub = rt.add_subparsers(dest="router_action", metavar="ACTION", required=True)
    tr = rsub.add_parser("train", help="fit the learned router and record it in routing.yaml")
    tr.add_argument("file", type=Path, metavar="DATA.tsv")
    tr.add_argument(
        "--out", type=Path, help=f"model file (default: the configured one or {_MODEL})"
    )
    tr.add_argument("--dry-run", action="store_true", help="write the model, not routing.yaml")
    tr.add_argument(
        "--epochs",
        type=_epochs,
        default=1,
        help="passes of the embedder's adapter fine-tuning (default 1, ~6 min on 2 cores for "
        "15,000 rows; 0 = plain vectors)",
    )
    ev = rsub.add_parser(
        "eval", help="accuracy, precision/recall, confusion matrix, calibration, latency"
    )
    ev.add_argument("file", type=Path, nargs="?", metavar="FILE.tsv", help=f"default {_EVAL}")
    ev.add_argument("--json", action="store_true")
    ev.add_argument(
        "--errors",
        action="store_true",
        help="also list the misclassified rows (not on a frozen split you still mean to use)",
    )
    fi = rsub.add_parser("fit", help="learn the thresholds from labelled data")
    fi.add_argument("file", type=Path, metavar="FILE.tsv")
    fi.add_argument("--dry-run", action="store_true", help="print, don't write routing.yaml")


_epochs = in_range(int, 0, 20, "a whole number")

_MODEL = "models/router/router.npz"
_EVAL = "data/router/eval_frozen4.tsv"


# ----------------------------------------------------------------------------- ask


def _empty(text: str, command: str) -> bool:
    """An empty or blank query: one line on stderr (the caller exits 2)."""
    if text.strip():
        return False
    print(f"atlas: nothing to {command} (the query is empty)", file=sys.stderr)
    return True


def cmd_ask(args: argparse.Namespace, settings: Settings) -> int:
    if _empty(args.text, "ask"):
        return 2
    return asyncio.run(_ask(args, settings))


async def _ask(args: argparse.Namespace, settings: Settings) -> int:
    from atlas.app import build_store
    from atlas.brain import build_brain
    from atlas.llm.router import AnswerResult

    brain = await build_brain(settings, build_store(settings), load_secrets(), standalone=True)
    try:
        decision = brain.router.decide(args.text)
        filler = brain.router.filler() if decision.wants_filler else None
        if filler and not args.json:
            print(f"({filler})", file=sys.stderr, flush=True)
        result: AnswerResult | None = None
        async for item in brain.router.respond(decision):
            if isinstance(item, AnswerResult):
                result = item
            elif not args.json:
                sys.stdout.write(item)
                sys.stdout.flush()
        assert result is not None
        if args.json:
            print(json.dumps(_turn_json(result, filler, brain.local_backend)))
        else:
            print()
            print(_summary(result), file=sys.stderr)
    finally:
        await brain.aclose()
    return 0


def _summary(result: Any) -> str:
    d = result.decision
    resp = result.response
    ftm = resp.first_token_ms if resp and resp.first_token_ms is not None else result.first_text_ms
    parts = [f"tier {result.answered_by}", f"reason: {d.reason}"]
    if d.downgrade or result.fallback_reason:
        parts.append(f"wanted {d.wanted}, fell back: {result.fallback_reason or d.downgrade}")
    if ftm is not None:
        parts.append(f"first token {ftm:.0f} ms")
    parts.append(f"cost ${result.cost_usd:.5f}")
    return "[" + " | ".join(parts) + "]"


def _turn_json(result: Any, filler: str | None, local_backend: str) -> dict[str, Any]:
    d = result.decision
    resp = result.response
    return {
        "query": d.text,
        "tier": result.answered_by,
        "wanted": d.wanted,
        "stage": d.stage,
        "home": d.home,
        "reason": d.reason,
        "confidence": round(d.confidence, 3),
        "budget_mode": d.budget_mode,
        "downgrade": d.downgrade,
        "fallback_reason": result.fallback_reason,
        "filler": filler,
        "answer": result.text,
        "first_token_ms": resp.first_token_ms if resp else None,
        "first_text_ms": result.first_text_ms,
        "total_ms": resp.total_duration_ms if resp else None,
        "model": resp.model if resp else None,
        "backend": resp.backend if resp else None,
        "usage": (
            {
                "input_tokens": resp.usage.input_tokens,
                "output_tokens": resp.usage.output_tokens,
                "cache_read_tokens": resp.usage.cache_read_tokens,
                "cache_write_tokens": resp.usage.cache_write_tokens,
            }
            if resp
            else None
        ),
        "cache_note": resp.cache_note if resp else "",
        "cost_usd": round(result.cost_usd, 6),
        "local_backend": local_backend,
        "decide_ms": d.decide_ms,
    }


# --------------------------------------------------------------------------- route


def cmd_route(args: argparse.Namespace, settings: Settings) -> int:
    from atlas.app import build_store
    from atlas.brain import build_explainer

    if _empty(args.text, "route"):
        return 2
    router = build_explainer(settings, build_store(settings), load_secrets())
    d = router.decide(args.text)
    c = d.classification
    out = {
        "query": d.text,
        "tier": d.tier,
        "wanted": d.wanted,
        "stage": d.stage,
        "reason": d.reason,
        "confidence": round(d.confidence, 3),
        "marginal": bool(c.marginal) if c else False,
        "nearest": c.nearest if c else None,
        "score": round(c.score, 4) if c and c.score is not None else None,
        "pattern": c.pattern if c else None,
        "budget_mode": d.budget_mode,
        "downgrade": d.downgrade,
        "filler": d.wants_filler,
        "skill": d.skill.skill if d.skill else None,
        "home": d.home,
        "classify_ms": round(c.classify_ms, 2) if c else None,
        "decide_ms": d.decide_ms,
    }
    if args.json:
        print(json.dumps(out))
    else:
        down = f" (wanted {d.wanted}: {d.downgrade})" if d.downgrade else ""
        home = f"  (Home Assistant first: {d.home} request)" if d.home else ""
        print(f"{d.tier}{down}  <- {d.stage}: {d.reason}  [confidence {d.confidence:.2f}]{home}")
    return 0


# -------------------------------------------------------------------------- router


def cmd_router(args: argparse.Namespace, settings: Settings) -> int:
    from atlas.app import build_store
    from atlas.brain import build_classifier
    from atlas.llm.classifier import load_prototypes
    from atlas.llm.router_eval import evaluate, fit, write_thresholds

    if args.router_action == "train":
        return _train(args, settings)
    if args.file is None:
        args.file = settings.project_path(_EVAL)
    try:
        rows = load_prototypes(args.file)
    except (OSError, ValueError) as e:
        print(f"atlas: {e}", file=sys.stderr)
        return 2
    classifier = build_classifier(settings, build_store(settings))
    if args.router_action == "eval":
        if settings.router.model and classifier.model is None:
            print(
                "atlas: warning: the router model is unusable (see the log);"
                " evaluating the pattern cascade",
                file=sys.stderr,
            )
        report = evaluate(classifier, rows)
        if not args.errors:  # reading a frozen split's errors row by row spends it
            report = replace(report, misclassified=())
        print(json.dumps(report.as_dict()) if args.json else report.format())
        return 0
    embedder = classifier.embedder
    assert embedder is not None
    fitted = fit(rows, embedder, settings.router)
    print(
        f"local_threshold {fitted.local_threshold:.3f}  agent_threshold "
        f"{fitted.agent_threshold:.3f}  margin {fitted.margin:.3f}  "
        f"({fitted.correct}/{fitted.rows} right at the embedding stage; "
        f"agent missed {fitted.agent_missed}, safety missed {fitted.safety_missed})"
    )
    if not args.dry_run:
        routing = _routing_file(settings)
        write_thresholds(routing, fitted)
        print(f"written to {routing}")
    return 0


def _routing_file(settings: Settings) -> Path:
    return (settings.source or Path("config/atlas.yaml")).parent / settings.routing_file


def _train(args: argparse.Namespace, settings: Settings) -> int:
    from atlas.app import build_store
    from atlas.brain import build_embedder, embedder_folder
    from atlas.llm.adapter import TuneConfig
    from atlas.llm.classifier import load_prototypes
    from atlas.llm.router_train import record_model, train_router

    try:
        load_prototypes(args.file)  # bad input: one line before the embedder loads
    except (OSError, ValueError) as e:
        print(f"atlas: {e}", file=sys.stderr)
        return 2
    configured = settings.router.model or _MODEL
    out = args.out if args.out is not None else settings.project_path(configured)
    store = build_store(settings)
    shown_step = -1

    def progress(step: int, steps: int) -> None:
        nonlocal shown_step
        if step * 10 // steps != shown_step:  # a line per tenth: it takes minutes
            shown_step = step * 10 // steps
            print(f"tuning the embedder: step {step}/{steps}", file=sys.stderr, flush=True)

    try:
        result = train_router(
            args.file,
            embedder_folder(settings, store),
            lambda adapter: build_embedder(settings, store, adapter),
            out,
            TuneConfig(epochs=args.epochs),
            progress,
        )
    except (OSError, ValueError) as e:
        print(f"atlas: {e}", file=sys.stderr)
        return 2
    print(result.format())
    if not args.dry_run:
        shown = configured if args.out is None else str(out.resolve())
        record_model(_routing_file(settings), shown, result.model_sha256)
        print(f"recorded in {_routing_file(settings)}")
    return 0
