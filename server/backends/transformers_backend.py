"""Transformers backend: a local causal LM, optionally quantized with bitsandbytes.

Loading a GGUF file through transformers de-quantizes every tensor (about a minute for the
default model on 2 cores). The result is saved once as a plain safetensors folder in the cache,
keyed by the GGUF's checksum, so later starts load in seconds. bitsandbytes quantization (NF4 or
int8) is applied when loading that folder, never baked into the cache.

torch/transformers are imported lazily: importing this module is cheap.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from server.backends.base import (
    CancelToken,
    FinishReason,
    GenerationRequest,
    GenerationResult,
    ModelInfo,
    detect_fim,
)
from server.config import Config, Device, Quantization
from server.model_assets import ModelError, ModelFormat, ModelSource

logger = logging.getLogger(__name__)

Progress = Callable[[str], None]

# Bump when the layout of a converted folder changes, so old caches are rebuilt, not misread.
_CONVERSION_VERSION = 1


def resolve_device(requested: Device) -> str:
    import torch

    if requested is Device.CUDA:
        if not torch.cuda.is_available():
            raise ModelError("device is 'cuda' but no CUDA device is available to torch.")
        return "cuda"
    if requested is Device.CPU:
        return "cpu"
    return "cuda" if torch.cuda.is_available() else "cpu"


def resolve_quantization(requested: Quantization, device: str) -> Quantization:
    # On CPU, bitsandbytes NF4 prefills slower than fp32 and single-line latency (prefill-bound)
    # is worse (see BENCHMARKS.md), so AUTO means full precision there; on CUDA it means NF4
    # weights with 16-bit compute (W4A16).
    if requested is Quantization.AUTO:
        return Quantization.NF4 if device == "cuda" else Quantization.NONE
    return requested


def _gguf_cache_key(source: ModelSource) -> str:
    if source.sha256:
        return source.sha256[:20]
    st = source.path.stat()
    raw = f"{source.path}|{st.st_size}|{st.st_mtime_ns}".encode()
    return hashlib.sha256(raw).hexdigest()[:20]


def converted_dir(source: ModelSource, cache_dir: Path) -> Path:
    return cache_dir / "converted" / f"{_gguf_cache_key(source)}-v{_CONVERSION_VERSION}"


def convert_gguf(source: ModelSource, cache_dir: Path, progress: Progress | None = None) -> Path:
    """De-quantize a GGUF file into a cached safetensors folder (once) and return the folder."""
    target = converted_dir(source, cache_dir)
    if (target / "pingti-complete.json").is_file():
        return target
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if progress:
        progress("Converting the GGUF model for transformers (first start only, about a minute)")
    t0 = time.perf_counter()
    folder, name = str(source.path.parent), source.path.name
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
        model: Any = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name,
                                                          dtype=torch.float32)
    except Exception as exc:  # transformers raises many types for an unreadable file
        raise ModelError(f"Could not read GGUF model {source.path}: {exc}") from exc
    # NOTE: a model loaded from GGUF is marked "quantized with gguf" and save_pretrained refuses
    # it; the weights are already de-quantized fp32 tensors, so the marker is dropped.
    model.hf_quantizer = None
    model.is_quantized = False
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    tmp = target.with_name(target.name + f".tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        (tmp / "pingti-complete.json").write_text(
            json.dumps({"source": str(source.path), "sha256": source.sha256,
                        "seconds": round(time.perf_counter() - t0, 1)})
        )
        shutil.rmtree(target, ignore_errors=True)
        os.replace(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    logger.info("converted %s in %.1fs to %s", source.path, time.perf_counter() - t0, target)
    del model
    return target


def _bnb_config(quant: Quantization, device: str) -> Any:
    import torch
    from transformers import BitsAndBytesConfig

    if quant is Quantization.NF4:
        if device == "cuda":
            compute = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        else:
            compute = torch.float32
        return BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_compute_dtype=compute,
            bnb_4bit_use_double_quant=False,
        )
    if quant is Quantization.INT8:
        return BitsAndBytesConfig(load_in_8bit=True)
    return None


def load_model(folder: Path, quant: Quantization, device: str) -> tuple[Any, Any, str]:
    """Load tokenizer + model from an HF folder with the given quantization; return dtype name."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    kwargs: dict[str, Any] = {}
    if quant is Quantization.NONE:
        dtype = torch.float32 if device == "cpu" else (
            torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16)
        kwargs["dtype"] = dtype
    else:
        try:
            import bitsandbytes  # noqa: F401
        except ImportError as exc:
            raise ModelError(
                f"quantization '{quant.value}' needs the bitsandbytes package") from exc
        kwargs["quantization_config"] = _bnb_config(quant, device)
        kwargs["device_map"] = {"": device}
        dtype = torch.float32 if device == "cpu" else torch.float16
        kwargs["dtype"] = dtype
    try:
        model: Any = AutoModelForCausalLM.from_pretrained(folder, **kwargs)
    except (OSError, ValueError) as exc:
        raise ModelError(f"Could not load model from {folder}: {exc}") from exc
    if quant is Quantization.NONE:
        model.to(device)
    model.eval()
    return tokenizer, model, str(dtype).replace("torch.", "")


class TransformersBackend:
    """A causal LM from transformers behind :class:`~server.backends.base.ModelBackend`."""

    def __init__(self, tokenizer: Any, model: Any, info: ModelInfo) -> None:
        self._tok = tokenizer
        self._model = model
        self.info = info
        self._special_ids = {tokenizer.convert_tokens_to_ids(t) for t in info.special_tokens}
        self._stop_ids = sorted(i for i in self._special_ids if isinstance(i, int))

    @classmethod
    def load(cls, source: ModelSource, config: Config, cache_dir: Path,
             progress: Progress | None = None) -> TransformersBackend:
        import torch
        from transformers.utils import logging as hf_logging

        # Progress bars would only clutter the server's log; progress goes through LSP.
        hf_logging.disable_progress_bar()
        t0 = time.perf_counter()
        if config.threads > 0:
            torch.set_num_threads(config.threads)
        device = resolve_device(config.device)
        quant = resolve_quantization(config.quantization, device)
        folder = (convert_gguf(source, cache_dir, progress)
                  if source.format is ModelFormat.GGUF else source.path)
        if progress:
            progress(f"Loading {source.display_name} on {device} ({quant.value})")
        tokenizer, model, dtype = load_model(folder, quant, device)
        specials = _special_tokens(tokenizer)
        info = ModelInfo(
            name=source.display_name,
            backend="transformers",
            device=device,
            quantization=quant.value,
            dtype=dtype,
            fim=detect_fim(specials),
            special_tokens=frozenset(specials),
            load_s=time.perf_counter() - t0,
            weight_bytes=int(model.get_memory_footprint()),
        )
        logger.info("model ready: %s", info)
        return cls(tokenizer, model, info)

    def encode(self, text: str) -> list[int]:
        return list(self._tok.encode(text, add_special_tokens=False))

    def decode(self, ids: Sequence[int]) -> str:
        return str(self._tok.decode(list(ids), skip_special_tokens=False))

    def token_id(self, token: str) -> int | None:
        tid = self._tok.convert_tokens_to_ids(token)
        return tid if isinstance(tid, int) and tid != self._tok.unk_token_id else None

    def generate(self, request: GenerationRequest, cancel: CancelToken) -> GenerationResult:
        import torch
        from transformers import StoppingCriteria, StoppingCriteriaList

        prompt_len = len(request.prompt_ids)
        state: dict[str, Any] = {"first": None, "stopped": False}
        tok = self._tok
        special_ids = self._special_ids

        class _Stop(StoppingCriteria):
            # Runs after every decoding step: this is where cancellation takes effect.
            def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
                if state["first"] is None:
                    state["first"] = time.perf_counter()
                done = cancel.cancelled
                if not done and request.stop is not None:
                    new = [i for i in input_ids[0, prompt_len:].tolist() if i not in special_ids]
                    if request.stop(tok.decode(new, skip_special_tokens=False)):
                        state["stopped"] = True
                        done = True
                return torch.full((input_ids.shape[0],), done, dtype=torch.bool,
                                  device=input_ids.device)

        device = self._model.device
        input_ids = torch.tensor([list(request.prompt_ids)], dtype=torch.long, device=device)
        sampling: dict[str, Any] = {"do_sample": False}
        if request.temperature > 0:
            torch.manual_seed(request.seed)
            sampling = {"do_sample": True, "temperature": request.temperature,
                        "top_p": request.top_p, "top_k": 0}
        t0 = time.perf_counter()
        with torch.inference_mode():
            out = self._model.generate(
                input_ids=input_ids,
                attention_mask=torch.ones_like(input_ids),
                max_new_tokens=request.max_new_tokens,
                stopping_criteria=StoppingCriteriaList([_Stop()]),
                eos_token_id=self._stop_ids,
                pad_token_id=self._tok.pad_token_id or self._stop_ids[0],
                **sampling,
            )
        t_end = time.perf_counter()
        new_ids = out[0, prompt_len:].tolist()
        first = state["first"] or t_end
        if cancel.cancelled:
            finish = FinishReason.CANCELLED
        elif new_ids and new_ids[-1] in special_ids:
            finish = FinishReason.EOS
        elif state["stopped"]:
            finish = FinishReason.STOP
        else:
            finish = FinishReason.LENGTH
        visible = [i for i in new_ids if i not in special_ids]
        return GenerationResult(
            token_ids=new_ids,
            text=tok.decode(visible, skip_special_tokens=False),
            finish=finish,
            prompt_tokens=prompt_len,
            prefill_s=first - t0,
            decode_s=t_end - first,
        )

    def close(self) -> None:
        self._model = None


def _special_tokens(tokenizer: Any) -> set[str]:
    """Every special token of the tokenizer: they end generation and never reach the user."""
    return set(tokenizer.all_special_tokens) | {
        t.content for t in tokenizer.added_tokens_decoder.values() if t.special}
