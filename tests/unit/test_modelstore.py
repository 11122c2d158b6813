from __future__ import annotations

import hashlib
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from atlas.modelstore import ModelEntry, ModelError, ModelStore, load_manifest
from atlas.settings import PROJECT_ROOT


@pytest.fixture
def fake_package(tmp_path: Path) -> Iterator[Path]:
    """An importable package `atlas_fake_models` with a model folder inside."""
    pkg = tmp_path / "site" / "atlas_fake_models"
    (pkg / "weights").mkdir(parents=True)
    (pkg / "__init__.py").write_text("raise RuntimeError('must not be imported')\n")
    (pkg / "weights" / "model.bin").write_bytes(b"weights" * 100)
    (pkg / "weights" / "config.json").write_text("{}")
    sys.path.insert(0, str(tmp_path / "site"))
    yield pkg / "weights"
    sys.path.remove(str(tmp_path / "site"))


def sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def entry(folder: Path, **over: object) -> ModelEntry:
    fields: dict[str, object] = {
        "name": "fake-stt",
        "kind": "whisper",
        "package": "atlas-fake-models==1.0",
        "module": "atlas_fake_models",
        "path": "weights",
        "main": None,
        "files": {n: sha(folder / n) for n in ("model.bin", "config.json")},
    }
    fields.update(over)
    return ModelEntry(**fields)  # type: ignore[arg-type]


def store(*entries: ModelEntry, **kw: object) -> ModelStore:
    return ModelStore({e.name: e for e in entries}, Path("/nonexistent/cache"), **kw)  # type: ignore[arg-type]


def test_resolves_and_verifies_without_importing(fake_package: Path) -> None:
    m = store(entry(fake_package)).resolve("fake-stt", "whisper", "stt.model")
    assert m.path == fake_package
    assert m.source == "atlas-fake-models==1.0"


def test_main_file(fake_package: Path) -> None:
    m = store(entry(fake_package, main="model.bin")).resolve("fake-stt", "whisper", "stt.model")
    assert m.path == fake_package / "model.bin"


def test_hash_mismatch_names_model_and_file(fake_package: Path) -> None:
    e = entry(fake_package)
    (fake_package / "model.bin").write_bytes(b"tampered")
    with pytest.raises(ModelError, match=r"fake-stt.*failed verification.*model.bin"):
        store(e).resolve("fake-stt", "whisper", "stt.model")


def test_missing_file(fake_package: Path) -> None:
    e = entry(fake_package)
    (fake_package / "config.json").unlink()
    with pytest.raises(ModelError, match=r"incomplete.*config.json"):
        store(e).verify("fake-stt")


def test_missing_package_says_how_to_get_it(fake_package: Path) -> None:
    e = entry(fake_package, module="atlas_not_installed_pkg", package="some-pkg==2.0")
    with pytest.raises(ModelError) as err:
        store(e).verify("fake-stt")
    msg = str(err.value)
    assert "fake-stt" in msg and "some-pkg==2.0" in msg and "setup.sh" in msg


def test_wrong_kind(fake_package: Path) -> None:
    with pytest.raises(ModelError, match="not a vad model"):
        store(entry(fake_package)).resolve("fake-stt", "vad", "vad.model")


def test_local_path_is_used_as_is(tmp_path: Path) -> None:
    m = store().resolve(str(tmp_path), "whisper", "stt.model")
    assert m.path == tmp_path and m.source == "local path"
    with pytest.raises(ModelError, match="does not exist"):
        store().resolve(str(tmp_path / "missing"), "whisper", "stt.model")


def test_hub_name_refused_unless_downloads_allowed(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match=r"stt.model: 'small.en'.*downloads are disabled"):
        store().resolve("small.en", "whisper", "stt.model")

    calls: list[tuple[str, Path]] = []

    def fake_download(name: str, target: Path) -> Path:
        calls.append((name, target))
        target.mkdir(parents=True)
        return target

    s = ModelStore({}, tmp_path, allow_downloads=True, downloaders={"whisper": fake_download})
    m = s.resolve("small.en", "whisper", "stt.model")
    assert calls and m.source == "hub" and m.path.is_dir()


def test_download_failure_is_one_line(tmp_path: Path) -> None:
    def broken(name: str, target: Path) -> Path:
        raise ConnectionError("no route to host\nlots of detail")

    s = ModelStore({}, tmp_path, allow_downloads=True, downloaders={"whisper": broken})
    with pytest.raises(ModelError) as err:
        s.resolve("small.en", "whisper", "stt.model")
    assert "\n" not in str(err.value) and "ConnectionError" in str(err.value)


@pytest.mark.parametrize("text", ["x: [", "- 1\n", "m:\n  kind: whisper\n"])
def test_bad_manifest(tmp_path: Path, text: str) -> None:
    p = tmp_path / "manifest.yaml"
    p.write_text(text)
    with pytest.raises(ModelError, match=r"manifest|missing or has a bad field"):
        load_manifest(p)


def test_project_manifest_models_all_verify() -> None:
    manifest = load_manifest(PROJECT_ROOT / "models" / "manifest.yaml")
    s = ModelStore(manifest, PROJECT_ROOT / "models" / "cache")
    for name in manifest:
        assert s.verify(name).path.exists()
