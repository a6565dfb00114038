"""Which backend serves a configuration, and loading it.

Heavy libraries (llama_cpp, torch, transformers) are imported only by the backend chosen.
"""

from __future__ import annotations

from collections.abc import Callable

from server.backends.base import ModelBackend
from server.config import Backend, Config, Device
from server.model_assets import ModelFormat, ModelSource, cache_root, resolve_model


def load_backend(config: Config, progress: Callable[[str], None] | None = None) -> ModelBackend:
    """Build the backend the config asks for. Raises ModelError with a user-facing message."""
    if config.backend is Backend.FAKE:
        from server.backends.fake import FakeBackend

        return FakeBackend(token_delay=config.fake_token_delay)
    cache_dir = cache_root(config.cache_dir)
    source = resolve_model(config.model, cache_dir, progress)
    if resolve_backend(config, source) is Backend.LLAMA_CPP:
        from server.backends.llamacpp_backend import LlamaCppBackend

        return LlamaCppBackend.load(source, config, cache_dir, progress)
    from server.backends.transformers_backend import TransformersBackend

    return TransformersBackend.load(source, config, cache_dir, progress)


def resolve_backend(config: Config, source: ModelSource) -> Backend:
    """AUTO: transformers (bitsandbytes 4-bit) on CUDA; llama.cpp on a CPU for a GGUF model."""
    if config.backend is not Backend.AUTO:
        return config.backend
    if config.device is Device.CUDA or (config.device is Device.AUTO and _cuda_available()):
        return Backend.TRANSFORMERS
    if source.format is ModelFormat.GGUF and _llama_cpp_available():
        return Backend.LLAMA_CPP
    return Backend.TRANSFORMERS


def _cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


def _llama_cpp_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("llama_cpp") is not None
