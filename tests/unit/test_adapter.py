"""The embedder's low-rank adapter: fitting, merging, and its place in the model file.

A tiny BERT built from a config (no download) stands in for MiniLM; the real encoder is
tuned in tests/unit/test_router_model_cli.py's training test.
"""

from __future__ import annotations

import io
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from atlas.llm.adapter import Adapter, TuneConfig, adapted_layers, fine_tune, merge_into
from atlas.llm.learned import RouterModel, RouterModelError, load_model

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

WORDS = ["turn", "on", "off", "the", "lights", "kitchen", "what", "is", "capital", "of"]
WORDS += ["peru", "my", "knee", "hurts", "since"]


@pytest.fixture(scope="module")
def tiny_encoder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A one-block BERT with a word-level vocabulary, saved like a model folder."""
    folder = tmp_path_factory.mktemp("tiny-bert")
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    tokenizer = transformers.BertTokenizerFast(str(folder / "vocab.txt"))
    tokenizer.save_pretrained(str(folder))
    torch.manual_seed(0)
    config = transformers.BertConfig(
        vocab_size=len(vocab),
        hidden_size=8,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=16,
        max_position_embeddings=32,
    )
    transformers.BertModel(config).save_pretrained(str(folder))
    return folder


def _texts() -> tuple[list[str], list[int]]:
    texts = ["turn on the lights", "turn off the kitchen lights", "what is the capital of peru"]
    texts += ["what is peru", "my knee hurts", "my knee hurts since"]
    return texts, [0, 0, 1, 1, 2, 2]


def test_fine_tune_fits_every_target_layer_and_is_repeatable(tiny_encoder: Path) -> None:
    texts, labels = _texts()
    cfg = TuneConfig(epochs=2, rank=2, batch_size=2, threads=1)
    first = fine_tune(tiny_encoder, texts, labels, 3, cfg)
    encoder = transformers.AutoModel.from_pretrained(str(tiny_encoder))
    assert sorted(first.factors) == sorted(adapted_layers(encoder))
    assert len(first.factors) == 6 and first.rank == 2
    assert any(np.abs(b).max() > 0 for _, b in first.factors.values())  # it learned
    again = fine_tune(tiny_encoder, texts, labels, 3, cfg)
    assert again.sha256 == first.sha256  # same data and seed: the same adapter


def test_fine_tune_refuses_mismatched_labels(tiny_encoder: Path) -> None:
    with pytest.raises(ValueError, match="one label per text"):
        fine_tune(tiny_encoder, ["turn on the lights"], [0, 1], 3)


def test_merge_adds_the_low_rank_product(tiny_encoder: Path) -> None:
    encoder = transformers.AutoModel.from_pretrained(str(tiny_encoder))
    name = adapted_layers(encoder)[0]
    layer = dict(encoder.named_modules())[name]
    before = layer.weight.detach().clone().numpy()
    rng = np.random.default_rng(1)
    a = rng.normal(size=(2, before.shape[1])).astype(np.float32)
    b = rng.normal(size=(before.shape[0], 2)).astype(np.float32)
    merge_into(encoder, Adapter(0.5, {name: (a, b)}))
    assert np.allclose(layer.weight.detach().numpy(), before + 0.5 * b @ a, atol=1e-5)
    with pytest.raises(ValueError, match="not in this encoder"):
        merge_into(encoder, Adapter(1.0, {"encoder.layer.9.output.dense": (a, b)}))


def _model(adapter: Adapter | None) -> RouterModel:
    rng = np.random.default_rng(2)
    w = rng.normal(size=(8, 3)).astype(np.float32)
    return RouterModel(w, np.zeros(3, np.float32), 1.0, "tiny", "0" * 64, 6, adapter)


def test_the_adapter_travels_in_the_model_file(tiny_encoder: Path, tmp_path: Path) -> None:
    texts, labels = _texts()
    adapter = fine_tune(tiny_encoder, texts, labels, 3, TuneConfig(rank=2, threads=1))
    sha = _model(adapter).save(tmp_path / "m.npz")
    loaded = load_model(tmp_path / "m.npz", sha)
    assert loaded.adapter is not None and loaded.adapter.sha256 == adapter.sha256
    plain = _model(None)
    sha = plain.save(tmp_path / "p.npz")
    assert load_model(tmp_path / "p.npz", sha).adapter is None


def test_a_tampered_adapter_is_refused(tiny_encoder: Path, tmp_path: Path) -> None:
    texts, labels = _texts()
    adapter = fine_tune(tiny_encoder, texts, labels, 3, TuneConfig(rank=2, threads=1))
    path = tmp_path / "m.npz"
    _model(adapter).save(path)
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    key = next(k for k in arrays if k.startswith("lora_B:"))
    arrays[key] = arrays[key] + np.float16(0.5)
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    path.write_bytes(buf.getvalue())
    with pytest.raises(RouterModelError, match="adapter does not match"):
        load_model(path, "")  # no configured hash: the adapter's own record still holds
    torn = replace(adapter, factors=dict(list(adapter.factors.items())[:1]))
    assert torn.sha256 != adapter.sha256
