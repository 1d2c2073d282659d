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
from service.vocabulary import GPU_PROVIDERS, ModelKind

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
    """Holds the current :class:`LoadedModel` of each kind; thread-safe reads, reloads under a lock.

    The H-alpha-only model (``current``) serves every minute the nowcast (``nowcast``)
    cannot: no nowcast in production, or no prior. ``SYNMAG_MODEL`` takes the place of
    its own kind's production version.

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
        self._loaded: dict[ModelKind, LoadedModel] = {}
        self._missing_logged = False
        self._path_spec: tuple[str, ModelKind] | None = None
        # exported at start so that a CPU session alerts only where a GPU was asked for
        asked_first = settings.providers[0] if settings.providers else None
        obs.set_gpu_required(settings.require_gpu or asked_first in GPU_PROVIDERS)

    @property
    def current(self) -> LoadedModel | None:
        """The H-alpha-only model (the fallback that can serve every frame)."""
        return self._loaded.get(ModelKind.HALPHA)

    @property
    def nowcast(self) -> LoadedModel | None:
        """The nowcast model, when one is in production."""
        return self._loaded.get(ModelKind.NOWCAST)

    def serving(self) -> Any:
        """``service.inference.process.ServingModels`` of the loaded models (None when none is)."""
        from service.inference.process import ServingModels

        if not self._loaded:
            return None
        halpha, nowcast = self.current, self.nowcast
        return ServingModels(halpha=halpha.generator if halpha else None,
                             nowcast=nowcast.generator if nowcast else None)

    @property
    def loaded(self) -> list[LoadedModel]:
        """The loaded models, nowcast first."""
        return [m for m in (self.nowcast, self.current) if m is not None]

    def choose(self, prior: Any, why: str | None) -> tuple[LoadedModel, Any, str | None]:
        """The loaded model to serve a frame with ``prior`` (or none, because ``why``): see
        ``service.inference.process.ServingModels.choose``."""
        generator, prior, note = self.serving().choose(prior, why)
        model = next(m for m in self.loaded if m.generator is generator)
        return model, prior, note

    @property
    def version(self) -> str | None:
        return self.current.version if self.current else None

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
        """Load the wanted model of each kind if it is not the one loaded; ``True`` when one changed.

        Cheap when nothing changed (one registry query per kind). A model that fails to
        load leaves the previous one of its kind in place, except for a refused CPU
        fallback, which raises :class:`~service.errors.FatalError`.
        """
        with self._lock:
            changed = False
            for kind in ModelKind:
                changed |= self._refresh(kind)
            if not self._loaded:
                if not self._missing_logged:
                    log.warning(
                        "no model available (no SYNMAG_MODEL, no production version in the registry, "
                        "nothing in %s): minutes are recorded as skipped until one is promoted",
                        self.settings.bundled_model_dir,
                    )
                    self._missing_logged = True
                    obs.set_model(None, [])
            return changed

    def _refresh(self, kind: ModelKind) -> bool:
        version = self._wanted_version(kind)
        current = self._loaded.get(kind)
        if version is None:
            if current is not None:
                log.warning("no %s model in production any more: %s unloaded", kind, current.version)
                del self._loaded[kind]
                return True
            return False
        if current is not None and current.version == version:
            return False
        path = self._path_of(version)
        try:
            loaded = self._load(version, path)
        except ModelIncompatible as exc:
            if not self._loaded and kind == ModelKind.HALPHA:
                raise FatalError(f"model {version} cannot be used: {exc}") from exc
            log.error("%s model %s cannot be used, keeping %s: %s", kind, version,
                      current.version if current else "none", exc)
            return False
        if loaded.generator.kind != kind:
            log.error("model %s is a %s model, registered as %s: not loaded", version, loaded.generator.kind, kind)
            return False
        self._loaded[kind] = loaded
        self._missing_logged = False
        if kind == ModelKind.HALPHA:
            obs.set_model(loaded.version, loaded.providers)
        if self.on_change is not None:
            self.on_change(loaded)
        log.info(
            "%s model %s loaded from %s (sha256 %s), providers active: %s%s", kind,
            loaded.version, loaded.path, loaded.sha256[:12], ", ".join(loaded.providers),
            f" (replacing {current.version})" if current else "",
        )
        return True

    def _wanted_version(self, kind: ModelKind) -> str | None:
        """Registry version id of the ``kind`` model that should be loaded, or ``None``."""
        from service.registry import model_file

        spec = self.settings.model
        if spec is not None:
            path = model_file(spec)
            if path is not None:
                if self._path_spec is None:
                    # A file given by path still gets a registry row: products refer to it by version.
                    mv = self.registry.register(
                        path, metrics={}, report=None, lineage={"source": "SYNMAG_MODEL", "file": str(path.resolve())}
                    )
                    self._path_spec = (mv.version, ModelKind(mv.kind))
                if self._path_spec[1] == kind:
                    return self._path_spec[0]
            else:
                mv = self.registry.get(spec)
                if mv is None or ModelKind(mv.kind) == kind:
                    return spec  # an unknown id fails to load, loudly
        production = self.registry.production(kind)
        return production.version if production is not None else None

    def _path_of(self, version: str) -> Path:
        from service.registry import model_file

        if self._path_spec is not None and self._path_spec[0] == version:
            return model_file(self.settings.model)
        return Path(self.registry.resolve(version))
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
