"""The inference session the pipeline uses: loaded once, reloaded when production changes.

The model comes from ``SYNMAG_MODEL`` (a registry version or an ONNX path) or,
by default, the registry's production version. ONNX Runtime's GPU build falls
back to the CPU silently when CUDA or TensorRT cannot start, so the providers
actually active (``session.get_providers()``) are logged and exported as
``synmag_model_info{version,provider}``; with ``SYNMAG_REQUIRE_GPU`` a CPU-only
session is refused (:class:`~service.errors.FatalError`, ``synmag serve`` exits 1).

When no model exists at all the runtime stays empty: the service runs, says so
in its logs and readiness, and records minutes as skipped.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from service import observability as obs
from service.errors import FatalError, ModelIncompatible
from service.settings import Settings
from service.vocabulary import GPU_PROVIDERS

log = logging.getLogger(__name__)

@dataclass(frozen=True)
class LoadedModel:
    """An inference session and what it is."""

    generator: Any  # service.inference.onnx_model.OnnxGenerator
    version: str
    path: Path
    sha256: str
    providers: list[str]


class ModelRuntime:
    """Holds the current :class:`LoadedModel`; thread-safe reads, reloads under a lock.

    Parameters
    ----------
    settings : Settings
        ``model``, ``providers`` and ``require_gpu``.
    registry : service.registry.Registry
        Where versions are resolved (and a model given by path is registered).
    on_change : callable, optional
        Called with the new :class:`LoadedModel` after each (re)load.
    """

    def __init__(self, settings: Settings, registry: Any, on_change: Any = None) -> None:
        self.settings = settings
        self.registry = registry
        self.on_change = on_change  # called with the LoadedModel after each (re)load
        self._lock = threading.Lock()
        self._current: LoadedModel | None = None
        self._missing_logged = False
        self._path_spec_version: str | None = None
        # exported at start so that a CPU session alerts only where a GPU was asked for
        asked_first = settings.providers[0] if settings.providers else None
        obs.set_gpu_required(settings.require_gpu or asked_first in GPU_PROVIDERS)

    @property
    def current(self) -> LoadedModel | None:
        return self._current

    @property
    def version(self) -> str | None:
        return self._current.version if self._current else None

    def check_gpu_available(self) -> None:
        """With ``require_gpu``, refuse early when ONNX Runtime has no GPU provider at all."""
        if not self.settings.require_gpu:
            return
        import onnxruntime as ort

        available = ort.get_available_providers()
        if not any(p in GPU_PROVIDERS for p in available):
            raise FatalError(
                "SYNMAG_REQUIRE_GPU is set but this ONNX Runtime has no GPU provider "
                f"(available: {', '.join(available)}); install onnxruntime-gpu or unset it"
            )

    def refresh(self) -> bool:
        """Load the wanted model if it is not the one loaded; ``True`` when it changed.

        Cheap when nothing changed (one registry query for the production
        version). A model that fails to load leaves the previous one in place,
        except for a refused CPU fallback, which raises
        :class:`~service.errors.FatalError`.
        """
        with self._lock:
            version = self._wanted_version()
            if version is None:
                if self._current is None and not self._missing_logged:
                    log.warning(
                        "no model available (no SYNMAG_MODEL, no production version in the registry, "
                        "nothing in %s): minutes are recorded as skipped until one is promoted",
                        self.settings.bundled_model_dir,
                    )
                    self._missing_logged = True
                    obs.set_model(None, [])
                return False
            if self._current is not None and self._current.version == version:
                return False
            path = self._path_of(version)
            try:
                loaded = self._load(version, path)
            except ModelIncompatible as exc:
                if self._current is None:
                    raise FatalError(f"model {version} cannot be used: {exc}") from exc
                log.error("model %s cannot be used, keeping %s: %s", version, self._current.version, exc)
                return False
            previous = self._current
            self._current = loaded
            self._missing_logged = False
            obs.set_model(loaded.version, loaded.providers)
            if self.on_change is not None:
                self.on_change(loaded)
            log.info(
                "model %s loaded from %s (sha256 %s), providers active: %s%s",
                loaded.version, loaded.path, loaded.sha256[:12], ", ".join(loaded.providers),
                f" (replacing {previous.version})" if previous else "",
            )
            return True

    def _wanted_version(self) -> str | None:
        """Registry version id of the model that should be loaded, or ``None``."""
        from service.registry import model_file

        spec = self.settings.model
        if spec is None:
            production = self.registry.production()
            return production.version if production is not None else None
        path = model_file(spec)
        if path is None:
            return spec  # a version id
        if self._path_spec_version is None:
            # A file given by path still gets a registry row: products refer to it by version.
            mv = self.registry.register(
                path, metrics={}, report=None, lineage={"source": "SYNMAG_MODEL", "file": str(path.resolve())}
            )
            self._path_spec_version = mv.version
        return self._path_spec_version

    def _path_of(self, version: str) -> Path:
        from service.registry import model_file

        return model_file(self.settings.model) or Path(self.registry.resolve(version))

    def _load(self, version: str, path: Path) -> LoadedModel:
        from service.inference.onnx_model import OnnxGenerator

        generator = OnnxGenerator.from_settings(path, self.settings)
        generator.version = version  # the registry's id, which products record
        providers = list(generator.active_providers)
        if self.settings.require_gpu and not any(p in GPU_PROVIDERS for p in providers):
            raise FatalError(
                f"SYNMAG_REQUIRE_GPU is set but model {version} runs on {', '.join(providers)} only "
                f"(asked for {', '.join(self.settings.providers)}): the GPU provider did not start"
            )
        return LoadedModel(
            generator=generator, version=version, path=path, sha256=generator.sha256, providers=providers
        )
