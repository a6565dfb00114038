"""Transformers backend: a local causal LM, optionally quantized with bitsandbytes.

Loading a GGUF file through transformers de-quantizes every tensor (about a minute for the
default model on 2 cores). The result is saved once as a plain safetensors folder in the cache,
keyed by the GGUF's checksum, so later starts load in seconds. bitsandbytes quantization (NF4 or
int8) is applied when loading that folder, never baked into the cache.

torch/transformers are imported lazily: importing this module is cheap.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from server.backends.base import (
    CancelToken,
    GenerationOutOfMemory,
    GenerationRequest,
    GenerationResult,
    ModelInfo,
    detect_fim,
)
from server.backends.decoding import (
    BatchDecoder,
    Logits,
    SeqState,
    common_prefix,
    generate_one,
    slot_rank,
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

    def __init__(self, tokenizer: Any, model: Any, info: ModelInfo, config: Config | None = None
                 ) -> None:
        self._tok = tokenizer
        self._model = model
        self.info = info
        self._special_ids = frozenset(
            i for i in (tokenizer.convert_tokens_to_ids(t) for t in info.special_tokens)
            if isinstance(i, int))
        # The logits' length (the embedding matrix may be padded beyond the tokenizer's size).
        self.vocab_size = int(model.get_output_embeddings().weight.shape[0])
        cfg = config or Config()
        self.runner = TorchRunner(model, cfg.kv_cache_documents, cfg.kv_cache_tokens)
        self._decoder = BatchDecoder(self.runner, self._special_ids, self.decode)

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
            context_window=config.context_window,
        )
        logger.info("model ready: %s", info)
        return cls(tokenizer, model, info, config)

    @property
    def decoder(self) -> BatchDecoder:
        return self._decoder

    def encode(self, text: str, special: bool = False) -> list[int]:
        if special:
            return list(self._tok.encode(text, add_special_tokens=False))
        # Special-token text typed in a document is just text to a completion prompt.
        return list(self._tok.encode(text, add_special_tokens=False, split_special_tokens=True))

    def decode(self, ids: Sequence[int]) -> str:
        return str(self._tok.decode(list(ids), skip_special_tokens=False))

    def token_id(self, token: str) -> int | None:
        tid = self._tok.convert_tokens_to_ids(token)
        return tid if isinstance(tid, int) and tid != self._tok.unk_token_id else None

    def generate(self, request: GenerationRequest, cancel: CancelToken) -> GenerationResult:
        return generate_one(self._decoder, request, cancel)

    def close(self) -> None:
        self.runner.reset()
        self._model = None


@dataclass(eq=False)
class _TorchSlot:
    """One document's cached prompt: its tokens and their per-layer (key, value) tensors."""

    tokens: list[int] = field(default_factory=list)
    kv: list[tuple[Any, Any]] = field(default_factory=list)  # [layer] -> (k, v): (1, H, T, D)
    cache_key: str | None = None
    last_used: float = 0.0
    busy: bool = False


class TorchRunner:
    """The :class:`~server.backends.decoding.KVRunner` over a transformers causal LM.

    Each running sequence owns a KV cache (a slot, kept after it finishes for the next prompt
    of the same document: a prompt reuses the longest common prefix of an idle slot, so typing
    only evaluates new tokens). Sequences of different lengths step together in one forward
    pass: their caches are left-padded into one batch, masked, with explicit positions; the
    padded batch is kept while the set of sequences does not change.
    """

    def __init__(self, model: Any, max_slots: int, max_tokens: int) -> None:
        self._model = model
        self.max_slots = max(1, max_slots)
        self.max_tokens = max_tokens
        self.slots: list[_TorchSlot] = []
        self._stack: dict[str, Any] | None = None  # the padded batch of the last step
        self.evaluated_tokens = 0
        self.prefetched_tokens = 0  # of those, evaluated by prefetch (warm) in idle time

    @property
    def capacity(self) -> int:
        return self.max_slots

    def _make_cache(self, kv: list[tuple[Any, Any]]) -> Any:
        from transformers import DynamicCache

        return DynamicCache(ddp_cache_data=kv, config=self._model.config) if kv \
            else DynamicCache(config=self._model.config)

    @staticmethod
    def _kv_of(cache: Any) -> list[tuple[Any, Any]]:
        return [(layer.keys, layer.values) for layer in cache.layers]

    def _pick_slot(self, prompt: list[int], key: str | None) -> _TorchSlot:
        free = [s for s in self.slots if not s.busy]
        if len(self.slots) < self.max_slots:
            free.append(_TorchSlot())
        if not free:
            raise ModelError("pingti: more concurrent sequences than KV slots; lower maxBatchSize "
                             "or raise kvCacheDocuments")
        slot = max(free, key=lambda s: slot_rank(s.tokens, prompt,
                                                 key is not None and s.cache_key == key,
                                                 s.last_used))
        if slot not in self.slots:
            self.slots.append(slot)
        return slot

    def _bound_memory(self) -> None:
        """Drop idle slots' caches (least recently used first) beyond kvCacheTokens."""
        total = sum(len(s.tokens) for s in self.slots)
        for s in sorted((s for s in self.slots if not s.busy), key=lambda s: s.last_used):
            if total <= self.max_tokens:
                break
            total -= len(s.tokens)
            s.tokens, s.kv = [], []

    def prefill(self, seqs: Sequence[SeqState]) -> list[Logits]:
        with _out_of_memory_as_ours():
            return self._prefill(seqs)

    def step(self, seqs: Sequence[SeqState], tokens: Sequence[int]) -> list[Logits]:
        with _out_of_memory_as_ours():
            return self._step(seqs, tokens)

    def warm(self, prompt: Sequence[int], cache_key: str | None, max_tokens: int) -> int:
        """Prefetch (see ``LlamaCppRunner.warm``): evaluate up to ``max_tokens`` more tokens
        of ``prompt`` into the idle slot that best holds it; returns the tokens still missing.
        Called only while no sequence runs."""
        with _out_of_memory_as_ours():
            return self._warm(list(prompt), cache_key, max(1, max_tokens))

    def _warm(self, prompt: list[int], cache_key: str | None, max_tokens: int) -> int:
        import torch

        if not prompt or (len(self.slots) >= self.max_slots and all(s.busy for s in self.slots)):
            return len(prompt)
        self._unstack()
        slot = self._pick_slot(prompt, None)  # as LlamaCppRunner.warm: keep the document's slot
        n = common_prefix(slot.tokens, prompt)
        slot.kv = [(k[:, :, :n], v[:, :, :n]) for k, v in slot.kv] if n else []
        slot.tokens = prompt[:n]
        slot.cache_key = cache_key or slot.cache_key
        slot.last_used = time.perf_counter()
        end = min(len(prompt), n + max_tokens)
        if end > n:
            ids = torch.tensor([prompt[n:end]], dtype=torch.long, device=self._model.device)
            with torch.inference_mode():
                res = self._model(input_ids=ids, past_key_values=self._make_cache(slot.kv),
                                  use_cache=True, logits_to_keep=1)
            slot.kv = self._kv_of(res.past_key_values)
            slot.tokens = prompt[:end]
            self.evaluated_tokens += end - n
            self.prefetched_tokens += end - n
        self._bound_memory()
        return len(prompt) - end

    def forget(self, cache_key: str) -> None:
        """Drop the cached prompt of a closed document (idle slots only)."""
        for s in self.slots:
            if s.cache_key == cache_key and not s.busy:
                s.tokens, s.kv, s.cache_key = [], [], None

    def _prefill(self, seqs: Sequence[SeqState]) -> list[Logits]:
        import torch

        self._unstack()
        out: list[Logits] = []
        now = time.perf_counter()
        device = self._model.device
        picked: list[_TorchSlot] = []
        try:
            for s in seqs:
                prompt = list(s.request.prompt_ids)
                if not prompt:
                    raise ModelError("pingti: empty prompt")
                slot = self._pick_slot(prompt, s.request.cache_key)
                # Also reuse a prompt just evaluated in this batch (the n candidates of one
                # request): tensors are shared, never written in place, so a slice is a copy.
                src = max([slot, *picked], key=lambda o: common_prefix(o.tokens, prompt))
                slot.busy, slot.last_used = True, now
                picked.append(slot)
                slot.cache_key = s.request.cache_key or slot.cache_key
                s.handle = slot
                n = min(common_prefix(src.tokens, prompt), len(prompt) - 1)
                slot.kv = [(k[:, :, :n], v[:, :, :n]) for k, v in src.kv] if n else []
                slot.tokens = prompt[:n]
                s.reused = n
                cache = self._make_cache(slot.kv)
                ids = torch.tensor([prompt[n:]], dtype=torch.long, device=device)
                with torch.inference_mode():
                    res = self._model(input_ids=ids, past_key_values=cache, use_cache=True,
                                      logits_to_keep=1)
                self.evaluated_tokens += len(prompt) - n
                slot.kv = self._kv_of(res.past_key_values)
                slot.tokens = prompt
                out.append(res.logits[0, -1].float().cpu().numpy())
        except BaseException:
            for slot in picked:
                slot.busy = False
            raise
        self._bound_memory()
        return out

    def _step(self, seqs: Sequence[SeqState], tokens: Sequence[int]) -> list[Logits]:
        import torch

        slots: list[_TorchSlot] = [s.handle for s in seqs]
        device = self._model.device
        if len(slots) == 1:
            self._unstack()
            slot = slots[0]
            cache = self._make_cache(slot.kv)
            ids = torch.tensor([[tokens[0]]], dtype=torch.long, device=device)
            with torch.inference_mode():
                res = self._model(input_ids=ids, past_key_values=cache, use_cache=True)
            slot.kv = self._kv_of(res.past_key_values)
            slot.tokens.append(tokens[0])
            return [res.logits[0, -1].float().cpu().numpy()]
        stack = self._stack
        if stack is None or stack["slots"] != slots:
            self._unstack()
            stack = self._build_stack(slots)
        pos = torch.tensor([[len(s.tokens)] for s in slots], dtype=torch.long, device=device)
        mask = torch.cat([stack["mask"], torch.ones((len(slots), 1), dtype=stack["mask"].dtype,
                                                    device=device)], dim=1)
        ids = torch.tensor([[t] for t in tokens], dtype=torch.long, device=device)
        with torch.inference_mode():
            res = self._model(input_ids=ids, attention_mask=mask, position_ids=pos,
                              past_key_values=stack["cache"], use_cache=True)
        stack["cache"], stack["mask"] = res.past_key_values, mask
        for slot, tok in zip(slots, tokens, strict=True):
            slot.tokens.append(tok)
        logits = res.logits[:, -1].float().cpu().numpy()
        return [logits[i] for i in range(len(slots))]

    def _build_stack(self, slots: list[_TorchSlot]) -> dict[str, Any]:
        """Left-pad the slots' caches into one batch (padding masked out of attention)."""
        import torch

        longest = max(len(s.tokens) for s in slots)
        n_layers = len(slots[0].kv)
        kv = []
        for layer in range(n_layers):
            ks, vs = [], []
            for s in slots:
                k, v = s.kv[layer]
                pad = longest - k.shape[2]
                ks.append(torch.nn.functional.pad(k, (0, 0, pad, 0)))
                vs.append(torch.nn.functional.pad(v, (0, 0, pad, 0)))
            kv.append((torch.cat(ks, dim=0), torch.cat(vs, dim=0)))
        device = self._model.device
        mask = torch.zeros((len(slots), longest), dtype=torch.long, device=device)
        for i, s in enumerate(slots):
            mask[i, longest - len(s.tokens):] = 1
        stack = {"slots": list(slots), "cache": self._make_cache(kv), "mask": mask}
        self._stack = stack
        return stack

    def _unstack(self) -> None:
        """Give each slot of the padded batch its own cache back (without the padding)."""
        stack, self._stack = self._stack, None
        if stack is None:
            return
        kv = self._kv_of(stack["cache"])
        total = stack["mask"].shape[1]
        for i, slot in enumerate(stack["slots"]):
            start = total - len(slot.tokens)
            slot.kv = [(k[i:i + 1, :, start:], v[i:i + 1, :, start:]) for k, v in kv]

    def release(self, seqs: Sequence[SeqState]) -> None:
        self._unstack()
        now = time.perf_counter()
        for s in seqs:
            if isinstance(s.handle, _TorchSlot):
                s.handle.busy = False
                s.handle.last_used = now
        self._bound_memory()

    def reset(self) -> None:
        self._stack = None
        self.slots.clear()
        try:
            import torch

            if torch.cuda.is_available():
                torch.cuda.empty_cache()  # after an out-of-memory error, give the memory back
        except ImportError:
            pass


@contextlib.contextmanager
def _out_of_memory_as_ours() -> Iterator[None]:
    """Translate torch's out-of-memory errors into :class:`GenerationOutOfMemory` here, at the
    backend, so the server decides by type. CUDA raises ``torch.OutOfMemoryError``; torch's CPU
    allocator raises a plain RuntimeError whose only mark is its text (this is the one place
    that reads it)."""
    import torch

    try:
        yield
    except (torch.OutOfMemoryError, MemoryError) as exc:
        raise GenerationOutOfMemory(str(exc).split("\n", 1)[0]) from exc
    except RuntimeError as exc:
        text = str(exc)
        if "DefaultCPUAllocator" in text or "can't allocate memory" in text:
            raise GenerationOutOfMemory(text.split("\n", 1)[0]) from exc
        raise


def _special_tokens(tokenizer: Any) -> set[str]:
    """Every special token of the tokenizer: they end generation and never reach the user."""
    return set(tokenizer.all_special_tokens) | {
        t.content for t in tokenizer.added_tokens_decoder.values() if t.special}
