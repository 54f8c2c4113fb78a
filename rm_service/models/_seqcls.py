"""A local sequence-classification reward model: loading, TRL's input conventions, the forward pass.

Why it exists: users train with TRL, verl or OpenRLHF against a Bradley-Terry reward model, an
``AutoModelForSequenceClassification`` with one label. To mix that RM with rule rewards and judges
here, its scores must be the ones the trainer would compute. So this module follows TRL 1.16's
``GRPOTrainer`` reward-model path exactly:

* **Text.** A conversational input (a prompt that is a list of messages, and the completion's
  messages) is the tokenizer's chat template over ``prompt + completion`` rendered to text
  (``apply_chat_template(messages, tokenize=False)``, no generation prompt); a plain-text input is
  ``prompt + completion``, concatenated with nothing between.
* **Tokens.** The text is tokenized with ``add_special_tokens=False`` (the template already wrote
  any special tokens it wants), padded on the right. A tokenizer without a pad token pads with
  eos, and the model's ``pad_token_id`` is set to the tokenizer's: transformers' sequence
  classifiers read the logit at the last token that is not a pad, so the two must agree.
* **Reward.** ``logits[:, 0]``, as a float: the raw logit, unbounded.

Beyond TRL:

* **Truncation, on the left.** TRL does not truncate (a too-long input fails or runs past the
  model's positions). Here an input longer than the model's limit keeps its *last*
  ``max_length`` tokens: the classifier reads the reward at the final token, after the
  completion, so cutting the end would make it score a response it never saw the end of, while
  cutting the start loses the oldest context (system prompt, earlier turns). The result says so
  (``truncated``), and the grader puts that in metadata.
* **Devices.** CUDA when present, in bf16 where the GPU supports it (fp16 otherwise), else CPU in
  fp32; ``device`` and ``dtype`` override.
* **Process-wide, lazy.** Nothing loads at import or construction; ``torch`` and
  ``transformers`` are imported inside functions. One model per (path, device, dtype) per
  process, shared by every grader on it, behind a load lock. Forward passes are serialised by a
  process-wide lock: torch already uses every core (or the whole GPU) for one pass, and two at
  once only contend. Callers run :func:`score_texts` in a worker thread, off the event loop.
* **``smollm2``: a demo body with an untrained head.** The path ``smollm2`` is SmolLM2-135M's
  transformer body (the packaged GGUF the local judge uses) under a freshly initialised, seeded
  one-label head. Its scores are deterministic and mean *nothing*: it exercises the plumbing
  (loading, batching, truncation, maps) at a real model's size, offline. Never train on it.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rm_service._exceptions import InputError
from rm_service.models._weights import (
    LocalModelUnavailable,
    cache_dir,
    default_gguf_path,
    import_runtime,
    load_weights,
    quiet_progress,
)

__all__ = [
    "SMOLLM2",
    "RewardInput",
    "Scored",
    "SeqClsBundle",
    "check_model_dir",
    "load_seqcls",
    "reward_text",
    "score_texts",
]

logger = logging.getLogger(__name__)

SMOLLM2 = "smollm2"
"""The demo path: SmolLM2-135M's body with a fresh, seeded, *untrained* classification head."""

SMOLLM2_HEAD_SEED = 0

_NO_LIMIT = 10**6
"""A ``model_max_length`` at or above this is transformers' "no limit" sentinel (1e30), not a
real one."""

RewardInput = str | Sequence[Mapping[str, Any]]
"""A prompt or completion: plain text, or a list of chat messages."""


@dataclass(frozen=True, slots=True)
class Scored:
    """One input's forward result: the raw logit, the tokens the model saw, and whether the
    input was cut to fit (``tokens`` then is the limit, ``input_tokens`` the full count)."""

    raw: float
    tokens: int
    input_tokens: int
    truncated: bool


@dataclass(frozen=True, slots=True)
class SeqClsBundle:
    """A loaded reward model, shared by every grader on the same (path, device, dtype)."""

    model: Any
    tokenizer: Any
    source: str
    device: str
    dtype: str
    max_length: int
    """The longest input the model takes: the tokenizer's ``model_max_length`` when it sets a
    real one, else the config's ``max_position_embeddings`` (the smaller when both do)."""
    pad_token_id: int
    load_s: float

    @property
    def has_chat_template(self) -> bool:
        return bool(getattr(self.tokenizer, "chat_template", None))


_BUNDLES: dict[tuple[str, str, str], SeqClsBundle] = {}
_LOAD_LOCK = threading.Lock()
_FORWARD_LOCK = threading.Lock()


# --- loading --------------------------------------------------------------------------------------


def check_model_dir(path: str | Path) -> None:
    """Fail at once on a path that cannot hold a sequence-classification model, without torch.

    Checks what a config load can afford: a directory with a readable ``config.json``, a
    tokenizer and weights. Whether the weights load is :func:`load_seqcls`'s business.

    Raises:
        LocalModelUnavailable: saying what is missing.
    """
    if str(path) == SMOLLM2:
        default_gguf_path()  # raises with the install command when the package is missing
        return
    p = Path(path).expanduser()
    if not p.exists():
        raise LocalModelUnavailable(
            f"no reward model at {p}: expected a Hugging Face model directory (models are never "
            "downloaded; save one with save_pretrained or huggingface-cli download first)"
        )
    if not p.is_dir():
        raise LocalModelUnavailable(f"{p} is a file; a reward model is a Hugging Face directory")
    config = p / "config.json"
    try:
        json.loads(config.read_text())
    except FileNotFoundError:
        raise LocalModelUnavailable(
            f"{p} has no config.json, so it is not a Hugging Face model directory"
        ) from None
    except (OSError, ValueError) as exc:
        raise LocalModelUnavailable(f"{config} is not readable JSON: {exc}") from None
    names = {f.name for f in p.iterdir()}
    if not names & {"tokenizer.json", "tokenizer_config.json", "tokenizer.model", "vocab.json"}:
        raise LocalModelUnavailable(f"{p} has no tokenizer files (tokenizer.json, ...)")
    if not any(n.endswith((".safetensors", ".bin", ".safetensors.index.json")) for n in names):
        raise LocalModelUnavailable(f"{p} has no weights (*.safetensors or pytorch_model.bin)")


def load_seqcls(path: str | Path, *, device: str = "auto", dtype: str = "auto") -> SeqClsBundle:
    """The reward model at ``path`` (or :data:`SMOLLM2`), loaded once per process.

    Args:
        path: a Hugging Face model directory, or ``"smollm2"``.
        device: ``"auto"`` (CUDA when available, else CPU), ``"cpu"``, ``"cuda"``, ``"cuda:1"``...
        dtype: ``"auto"`` (bf16 on a GPU that supports it, fp16 on one that does not, fp32 on
            CPU), ``"float32"``, ``"bfloat16"`` or ``"float16"``.

    Raises:
        LocalModelUnavailable: torch/transformers missing, or the model cannot be loaded.
    """
    torch, transformers = import_runtime()
    dev = _device(torch, device)
    dt = _dtype_name(torch, dev, dtype)
    source = SMOLLM2 if str(path) == SMOLLM2 else str(Path(path).expanduser().resolve())
    key = (source, dev, dt)
    bundle = _BUNDLES.get(key)
    if bundle is not None:
        return bundle
    with _LOAD_LOCK:
        bundle = _BUNDLES.get(key)
        if bundle is None:
            started = time.perf_counter()
            check_model_dir(path)
            with quiet_progress(transformers):
                if source == SMOLLM2:
                    model, tokenizer = _smollm2(torch, transformers)
                else:
                    model, tokenizer = _load_dir(Path(source), torch, transformers)
            bundle = _finish(model, tokenizer, source, dev, dt, started, torch)
            _BUNDLES[key] = bundle
            logger.info(
                "loaded reward model %s on %s (%s) in %.1fs", source, dev, dt, bundle.load_s
            )
    return bundle


def _device(torch: Any, device: str) -> str:
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise LocalModelUnavailable(f"device {device!r} asked for, but torch sees no CUDA GPU")
    return device


def _dtype_name(torch: Any, device: str, dtype: str) -> str:
    if dtype != "auto":
        if dtype not in ("float32", "bfloat16", "float16"):
            raise LocalModelUnavailable(
                f"dtype {dtype!r}: expected auto, float32, bfloat16 or float16"
            )
        return dtype
    if device.startswith("cuda"):
        return "bfloat16" if torch.cuda.is_bf16_supported() else "float16"
    return "float32"


def _load_dir(path: Path, torch: Any, transformers: Any) -> tuple[Any, Any]:
    try:
        tokenizer = transformers.AutoTokenizer.from_pretrained(path, local_files_only=True)
        model, info = transformers.AutoModelForSequenceClassification.from_pretrained(
            path, num_labels=1, local_files_only=True, dtype=torch.float32, output_loading_info=True
        )
    except Exception as exc:
        raise LocalModelUnavailable(
            f"cannot load a sequence-classification reward model from {path}: "
            f"{type(exc).__name__}: {exc}"
        ) from exc
    # transformers fills a head missing from the checkpoint with random weights and only warns;
    # a causal LM's folder named by mistake would then score plausible noise.
    missing = sorted(info.get("missing_keys") or ())
    if missing:
        raise LocalModelUnavailable(
            f"{path} is not a trained reward model: its checkpoint lacks {', '.join(missing[:4])}"
            f"{' ...' if len(missing) > 4 else ''} (transformers would initialise them at random)"
        )
    return model, tokenizer


def _smollm2(torch: Any, transformers: Any) -> tuple[Any, Any]:
    """SmolLM2-135M's body under a fresh one-label head (seeded, untrained: see the module)."""
    causal, tokenizer, _ = load_weights(default_gguf_path(), cache_dir(), torch, transformers)
    config = causal.config
    config.num_labels = 1
    # A private generator: seeding torch's global one would reset every other user's stream.
    gen = torch.Generator().manual_seed(SMOLLM2_HEAD_SEED)
    model = transformers.AutoModelForSequenceClassification.from_config(config)
    model.model.load_state_dict(causal.model.state_dict(), strict=True)
    with torch.no_grad():
        head = model.score.weight
        head.copy_(torch.randn(head.shape, generator=gen) * config.initializer_range)
    return model.to(torch.float32), tokenizer


def _finish(
    model: Any, tokenizer: Any, source: str, device: str, dtype: str, started: float, torch: Any
) -> SeqClsBundle:
    # TRL's convention: a tokenizer without a pad token pads with eos, and the model is told
    # the same id, so its "last token that is not a pad" is where the reward is read.
    if tokenizer.pad_token_id is None:
        if tokenizer.eos_token is None:
            raise LocalModelUnavailable(
                f"{source}: the tokenizer has neither a pad nor an eos token"
            )
        tokenizer.pad_token = tokenizer.eos_token
    model.config.get_text_config().pad_token_id = tokenizer.pad_token_id
    model.config.pad_token_id = tokenizer.pad_token_id
    try:
        model = model.to(device=device, dtype=getattr(torch, dtype))
    except Exception as exc:
        raise LocalModelUnavailable(f"cannot move {source} to {device} ({dtype}): {exc}") from exc
    model.eval()
    model.requires_grad_(False)
    limits = []
    tok_limit = int(getattr(tokenizer, "model_max_length", 0) or 0)
    if 0 < tok_limit < _NO_LIMIT:
        limits.append(tok_limit)
    positions = int(getattr(model.config.get_text_config(), "max_position_embeddings", 0) or 0)
    if positions > 0:
        limits.append(positions)
    if not limits:
        raise LocalModelUnavailable(
            f"{source}: neither the tokenizer nor the config says the longest input; set max_length"
        )
    return SeqClsBundle(
        model=model,
        tokenizer=tokenizer,
        source=source,
        device=device,
        dtype=dtype,
        max_length=min(limits),
        pad_token_id=int(tokenizer.pad_token_id),
        load_s=time.perf_counter() - started,
    )


# --- inputs -------------------------------------------------------------------------------------


def is_conversation(value: Any) -> bool:
    """A list of chat messages (mappings, the first with a ``role``), as TRL's
    ``is_conversational`` reads a prompt. A list of mappings without roles is OpenAI's
    content-parts form of one text (``[{"type": "text", "text": ...}]``), read as that text."""
    return (
        not isinstance(value, str | bytes)  # first: most values are text, and this is cheap
        and isinstance(value, Sequence)
        and len(value) > 0
        and all(isinstance(m, Mapping) for m in value)
        and "role" in value[0]
    )


def reward_text(tokenizer: Any, prompt: RewardInput, completion: RewardInput) -> str:
    """The text TRL's GRPOTrainer feeds the reward model for one (prompt, completion).

    Conversational (``prompt`` is a list of messages): the chat template over ``prompt +
    completion`` (a completion given as text becomes one assistant message), rendered with
    ``tokenize=False`` and no generation prompt. Plain text: ``prompt + completion``.

    Raises:
        ValueError: a conversation and a tokenizer without a chat template; messages mixed with
            text the other way round (a text prompt with a message-list completion).
    """
    if is_conversation(prompt):
        if isinstance(completion, str):
            completion = [{"role": "assistant", "content": completion}]
        if not getattr(tokenizer, "chat_template", None):
            raise ValueError(
                "the input is a conversation but the reward model's tokenizer has no chat template"
            )
        turns: list[Any] = [*prompt, *completion]
        messages = [dict(m) for m in turns]
        text = tokenizer.apply_chat_template(messages, tools=None, tokenize=False)
        return str(text)
    if not isinstance(prompt, str) or not isinstance(completion, str):
        raise ValueError(
            "prompt and completion must both be text, or the prompt a list of chat messages; got "
            f"{type(prompt).__name__} and {type(completion).__name__}"
        )
    return prompt + completion


# --- the forward pass -----------------------------------------------------------------------------


def score_texts(bundle: SeqClsBundle, texts: Sequence[str], max_length: int) -> list[Scored]:
    """Raw rewards for ``texts``, one batch, one forward pass. Blocking: call it in a thread.

    Each text is tokenized alone (``add_special_tokens=False``), cut on the left to its last
    ``max_length`` tokens if longer (see the module docstring), and the batch is padded on the
    right with the pad id the model pools by. Without truncation this is the same tensor TRL's
    ``tokenizer(texts, padding=True, padding_side="right", add_special_tokens=False)`` builds.
    """
    import torch

    tokenizer = bundle.tokenizer
    encoded = tokenizer(list(texts), add_special_tokens=False, verbose=False)["input_ids"]
    kept: list[list[int]] = []
    info: list[tuple[int, int, bool]] = []
    for ids in encoded:
        n = len(ids)
        if n == 0:
            raise InputError("the input tokenized to nothing; the reward model needs a token")
        cut = ids[-max_length:] if n > max_length else list(ids)
        kept.append(cut)
        info.append((len(cut), n, n > max_length))
    width = max(len(ids) for ids in kept)
    pad = bundle.pad_token_id
    input_ids = torch.full((len(kept), width), pad, dtype=torch.long)
    mask = torch.zeros((len(kept), width), dtype=torch.long)
    for row, ids in enumerate(kept):
        input_ids[row, : len(ids)] = torch.tensor(ids, dtype=torch.long)
        mask[row, : len(ids)] = 1
    with _FORWARD_LOCK, torch.inference_mode():
        out = bundle.model(
            input_ids=input_ids.to(bundle.device), attention_mask=mask.to(bundle.device)
        )
        raws = out.logits[:, 0].float().cpu().tolist()
    return [
        Scored(raw=float(raw), tokens=t, input_tokens=n, truncated=cut)
        for raw, (t, n, cut) in zip(raws, info, strict=True)
    ]
