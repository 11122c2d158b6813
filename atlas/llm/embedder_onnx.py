"""all-MiniLM-L6-v2 through onnxruntime: the router's per-turn embedder, without torch.

The ONNX graph is exported once, on this machine, from the verified sentence-transformers
folder (torch and the `onnx` package are needed for that step only), checked against the
torch encoder on probe sentences, and cached with a stamp naming the source weights'
sha256. Later starts load the cached file after checking its own sha256, and never import
torch. Queries are tokenised without padding (FACTS.md: padding every query to 128 tokens
costs 32 ms instead of ~4), and mean-pooled like the sentence-transformers model, so the
vectors equal MiniLMEmbedder's (cosine >= 0.9999) and a router model trained on either
works with both: the two report the same `name`.

The router's default runtime, `onnx-int8`, goes one step further: the exported graph's
weights are quantised to 8-bit integers once (onnxruntime's dynamic quantisation, one
scale per output channel, which gives the same file for the same graph) and cached with
its own stamp. Measured on the 2-core box at load 6 over 300 dev-split queries: 1.1 ms
p50 per query instead of 3.9 ms, vectors at cosine 0.994 on average (0.982 at worst) to
the float model's. (One scale per tensor was as fast but only 0.97 on average, 0.91 at
worst, and a router trained on it transferred worse between corpora.) Its vectors
differ, so it has a name of its own: a router model trained with one runtime is refused
by the other.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import structlog

from atlas.llm.adapter import Adapter, merge_into
from atlas.llm.embedder import Vectors, embedder_name, l2_normalise

log = structlog.get_logger("atlas.llm.embedder_onnx")

_PROBES = (
    "turn off the kitchen lights",
    "my knee has been aching since last week, should i see a doctor",
    "what is the capital of peru",
)
_MAX_TOKENS = 256
_INT8_SUFFIX = "+onnx-int8"
_INT8_MIN_COSINE = 0.97
"""The quantised graph must stay this close to the float one on every probe."""


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class OnnxMiniLMEmbedder:
    """MiniLM on onnxruntime, one intra-op thread (one query at a time is the workload);
    `quantized` runs the 8-bit graph (faster, vectors of its own)."""

    def __init__(
        self,
        model_dir: Path,
        cache_dir: Path,
        threads: int = 1,
        *,
        quantized: bool = False,
        adapter: Adapter | None = None,
    ) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        started = time.perf_counter()
        self._model_dir = model_dir
        self._quantized = quantized
        self._adapter = adapter
        onnx_path = cached_export(model_dir, cache_dir, adapter)
        if quantized:
            onnx_path = cached_quantized(model_dir, onnx_path)
        options = ort.SessionOptions()
        options.intra_op_num_threads = max(1, threads)
        options.inter_op_num_threads = 1
        self._session = ort.InferenceSession(
            str(onnx_path), options, providers=["CPUExecutionProvider"]
        )
        self._tokenizer: Any = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        self._tokenizer.no_padding()
        self._tokenizer.enable_truncation(_MAX_TOKENS)
        self._dim = int(self._embed_one("warm up").shape[1])
        for _ in range(3):
            self._embed_one("warm up the embedder")
        log.info(
            "embedder.loaded",
            model=model_dir.name,
            runtime="onnxruntime-int8" if quantized else "onnxruntime",
            dim=self._dim,
            load_ms=round((time.perf_counter() - started) * 1000.0, 1),
        )

    @property
    def name(self) -> str:
        suffix = _INT8_SUFFIX if self._quantized else ""
        return embedder_name(self._model_dir, self._adapter) + suffix

    @property
    def dim(self) -> int:
        return self._dim

    def embed(self, texts: Sequence[str]) -> Vectors:
        if not texts:
            return np.zeros((0, self._dim), dtype=np.float32)
        return np.concatenate([self._embed_one(t) for t in texts])

    def _embed_one(self, text: str) -> Vectors:
        ids = np.array([self._tokenizer.encode(text).ids], dtype=np.int64)
        hidden = self._session.run(None, {"ids": ids, "mask": np.ones_like(ids)})[0]
        return l2_normalise(hidden.mean(axis=1))


def cached_export(model_dir: Path, cache_dir: Path, adapter: Adapter | None = None) -> Path:
    """The verified cached ONNX file for this model folder (with the adapter merged into
    its weights, if any), exporting it if needed."""
    weights = _sha256(model_dir / "model.safetensors")
    tuned = adapter.sha256 if adapter is not None else None
    lora = f"-lora-{tuned[:16]}" if tuned else ""
    onnx_path = cache_dir / f"minilm-{weights[:16]}{lora}.onnx"
    stamp_path = onnx_path.with_suffix(".json")
    try:
        stamp = json.loads(stamp_path.read_text(encoding="utf-8"))
        if (
            stamp.get("weights_sha256") == weights
            and stamp.get("adapter_sha256") == tuned
            and stamp.get("onnx_sha256") == _sha256(onnx_path)
        ):
            return onnx_path
        log.warning("embedder.onnx_cache_stale", path=str(onnx_path))
    except (OSError, ValueError):
        pass
    _export(model_dir, onnx_path, adapter)
    stamp = {"weights_sha256": weights, "adapter_sha256": tuned, "onnx_sha256": _sha256(onnx_path)}
    stamp_path.write_text(json.dumps(stamp), encoding="utf-8")
    return onnx_path


def cached_quantized(model_dir: Path, onnx_path: Path) -> Path:
    """The verified 8-bit copy of an exported graph, quantising it if needed."""
    source = _sha256(onnx_path)
    int8_path = onnx_path.with_name(onnx_path.stem + "-int8.onnx")
    stamp_path = int8_path.with_suffix(".json")
    try:
        stamp = json.loads(stamp_path.read_text(encoding="utf-8"))
        if stamp.get("source_sha256") == source and stamp.get("onnx_sha256") == _sha256(int8_path):
            return int8_path
        log.warning("embedder.onnx_cache_stale", path=str(int8_path))
    except (OSError, ValueError):
        pass
    _quantize(model_dir, onnx_path, int8_path)
    stamp = {"source_sha256": source, "onnx_sha256": _sha256(int8_path)}
    stamp_path.write_text(json.dumps(stamp), encoding="utf-8")
    return int8_path


def _quantize(model_dir: Path, onnx_path: Path, int8_path: Path) -> None:
    """Dynamic 8-bit quantisation of the weights, checked against the float graph."""
    import logging

    import onnxruntime as ort
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from tokenizers import Tokenizer

    started = time.perf_counter()
    fd, tmp = tempfile.mkstemp(dir=int8_path.parent, suffix=".onnx.tmp")
    os.close(fd)
    quiet = logging.getLogger()  # the quantiser advises "pre-processing" on the root logger
    level = quiet.level
    try:
        quiet.setLevel(logging.ERROR)
        quantize_dynamic(onnx_path, tmp, per_channel=True, weight_type=QuantType.QInt8)
        tokenizer: Any = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        tokenizer.no_padding()
        floats = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
        ints = ort.InferenceSession(tmp, providers=["CPUExecutionProvider"])
        for probe in _PROBES:
            ids = np.array([tokenizer.encode(probe).ids], dtype=np.int64)
            a, b = (
                l2_normalise(s.run(None, {"ids": ids, "mask": np.ones_like(ids)})[0].mean(1))
                for s in (floats, ints)
            )
            if float((a * b).sum()) < _INT8_MIN_COSINE:
                raise ValueError("the quantised graph disagrees with the float one")
        os.replace(tmp, int8_path)
    finally:
        quiet.setLevel(level)
        Path(tmp).unlink(missing_ok=True)
    log.info(
        "embedder.onnx_quantized",
        path=str(int8_path),
        ms=round((time.perf_counter() - started) * 1000.0, 1),
    )


def _export(model_dir: Path, onnx_path: Path, adapter: Adapter | None) -> None:
    """torch.onnx export of the encoder's last hidden state, checked against torch."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    import onnxruntime as ort
    import torch
    from transformers import AutoModel, AutoTokenizer

    started = time.perf_counter()
    encoder: Any = AutoModel.from_pretrained(str(model_dir)).eval()
    if adapter is not None:
        merge_into(encoder, adapter)
    tokenizer: Any = AutoTokenizer.from_pretrained(str(model_dir))
    base: Any = torch.nn.Module

    class _Hidden(base):  # type: ignore[misc]
        def __init__(self, inner: Any) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, ids: Any, mask: Any) -> Any:
            return self.inner(input_ids=ids, attention_mask=mask, return_dict=False)[0]

    onnx_path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=onnx_path.parent, suffix=".onnx.tmp")
    os.close(fd)
    try:
        example = torch.ones((1, 8), dtype=torch.long)
        with warnings.catch_warnings():  # the tracer's advice is for other graphs
            warnings.simplefilter("ignore")
            torch.onnx.export(
                _Hidden(encoder).eval(),
                (example, example),
                tmp,
                input_names=["ids", "mask"],
                output_names=["hidden"],
                dynamic_axes={"ids": {1: "tokens"}, "mask": {1: "tokens"}, "hidden": {1: "tokens"}},
                opset_version=17,
                dynamo=False,
            )
        session = ort.InferenceSession(tmp, providers=["CPUExecutionProvider"])
        for probe in _PROBES:
            enc = tokenizer([probe], return_tensors="pt")
            with torch.inference_mode():
                want = l2_normalise(encoder(**enc).last_hidden_state.mean(1).numpy())
            ids = enc["input_ids"].numpy()
            got = l2_normalise(
                session.run(None, {"ids": ids, "mask": np.ones_like(ids)})[0].mean(1)
            )
            log.debug("embedder.onnx_probe", cos=float((got * want).sum()))
            if float((got * want).sum()) < 0.9999:
                raise ValueError("the exported graph disagrees with the torch encoder")
        os.replace(tmp, onnx_path)
    finally:
        Path(tmp).unlink(missing_ok=True)
    log.info(
        "embedder.onnx_exported",
        path=str(onnx_path),
        ms=round((time.perf_counter() - started) * 1000.0, 1),
    )
