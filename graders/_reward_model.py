"""``RewardModelGrader`` (``type: reward_model``): a local Bradley-Terry reward model as a grader.

A config names a Hugging Face ``AutoModelForSequenceClassification`` directory (one label, as TRL
loads a string in ``reward_funcs``), and each record gets that model's logit, mapped into
``[0, 1]``::

    graders:
      rm:
        type: reward_model
        path: /models/my-rm             # or "smollm2": a demo body with an *untrained* head
        score_map: {map: sigmoid, temperature: 1.0, offset: 0.0}   # the default
        max_batch: 16                   # records per forward pass
        max_wait_ms: 0                  # how long a lone record waits for company

Design points:

* **The same reward as TRL.** The input text, tokens and pooled logit follow TRL's
  ``GRPOTrainer`` reward-model path (see :mod:`rm_service.models._seqcls`). Which text a record
  becomes, in order:

  1. ``messages`` (a conversation, as the TRL integration passes one): the chat template over it;
  2. ``prompt`` and ``completion`` (TRL's own columns): a message-list prompt through the chat
     template, text concatenated, exactly as TRL does;
  3. ``query`` and ``response`` (a plain JSONL record): one user turn and one assistant turn
     through the chat template when the tokenizer has one, else ``query + response``.
     A record has no TRL counterpart here; a chat-trained RM reads a conversation best.

  ``input_format: text`` always concatenates text (``prompt + completion``, else ``query +
  response``); ``input_format: chat`` always uses the template (text wrapped as user/assistant
  turns).
* **The score.** ``metadata["raw"]`` is the logit; the score is ``score_map`` of it (see
  :mod:`graders._rm_score`), a documented map, or a calibration ``rm-service calibrate`` fitted
  and saved into the config. A NaN logit is unscored, never a number.
* **Micro-batched on one model.** Concurrent records (the runner grades many at once) are
  combined by a :class:`~rm_service.models._batch.MicroBatcher` into forward passes of at most
  ``max_batch``; a pass runs in a worker thread, and passes are serialised process-wide. One model
  per (path, device, dtype) per process, however many graders name it.
* **Truncation.** An input longer than ``max_length`` (default: the model's own limit) keeps its
  last tokens, where the reward is read, and says ``truncated: true`` in metadata.
* **Fails early and honestly.** A path that cannot be a model is a :class:`ConfigError` when the
  config loads; the weights load in :meth:`aload` (warm start); an input the model cannot take is
  ``invalid_input``, a failed forward pass ``internal``: unscored, never 0.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from graders._base import BaseGrader, Unscored, grader
from graders._pregate import grader_pregates, pregate_result
from graders._rm_score import ScoreMap, score_map
from graders._text import as_text, is_content_parts
from rm_service._exceptions import ConfigError, InputError, LocalModelUnavailable
from rm_service._result import GraderScore
from rm_service.models._batch import MicroBatcher
from rm_service.models._body import scrub_surrogates
from rm_service.models._seqcls import (
    SMOLLM2,
    Scored,
    SeqClsBundle,
    check_model_dir,
    is_conversation,
    load_seqcls,
    reward_text,
    score_texts,
)

__all__ = ["RewardModelGrader", "gate_view", "with_response"]

InputFormat = Literal["auto", "chat", "text"]


@grader(name="reward_model")
class RewardModelGrader(BaseGrader):
    """A local sequence-classification reward model; see the module docstring.

    Args:
        path: a Hugging Face model directory holding an ``AutoModelForSequenceClassification``
            with one label and its tokenizer (never downloaded), or ``"smollm2"`` (a demo whose
            head is untrained: its scores mean nothing).
        name: the result name.
        score_map: how the logit becomes a score in ``[0, 1]`` (default: sigmoid, temperature 1,
            offset 0).
        max_batch: the most records in one forward pass.
        max_wait_ms: how long the first record of a batch waits for others (0: a pass starts as
            soon as the model is free, and records arriving meanwhile form the next one).
        max_length: the longest input in tokens (default and ceiling: the model's limit).
        device: ``auto`` (CUDA when present, else CPU), ``cpu``, ``cuda``, ``cuda:N``.
        dtype: ``auto`` (bf16 on a GPU that supports it, fp32 on CPU), ``float32``,
            ``bfloat16``, ``float16``.
        input_format: ``auto``, ``chat`` or ``text``; see the module docstring.
        pregates: the gates run before the model (see
            :func:`graders._pregate.resolve_pregates`); default
            :data:`~graders._pregate.DEFAULT_PREGATES`. A learned reward model is as easy to
            fool as a judge with a master key (``"Let's solve this step by step."``), a copy of
            the question or words addressed to the grader, so those score ``pregate_score``
            with the gate's reason and never reach the model.
        pregate_score: the score of a gated response.

    Raises:
        ConfigError: a path that is not a model directory, a bad ``score_map``, or a limit < 1.
    """

    default_name = "reward_model"
    required_fields: tuple[str, ...] = ("response",)
    optional_fields: tuple[str, ...] = ("query", "prompt", "completion", "messages")

    def __init__(
        self,
        *,
        path: str,
        name: str | None = None,
        score_map: Mapping[str, Any] | None = None,
        max_batch: int = 16,
        max_wait_ms: float = 0.0,
        max_length: int | None = None,
        device: str = "auto",
        dtype: str = "auto",
        input_format: InputFormat = "auto",
        pregates: object = None,
        pregate_score: float = 0.0,
    ) -> None:
        super().__init__(name=name)
        self.pregates, self.pregate_score = grader_pregates(
            self.name, self.default_name, pregates, pregate_score
        )
        try:
            check_model_dir(path)
        except LocalModelUnavailable as exc:
            raise ConfigError(f"path: {exc}") from None
        if max_batch < 1:
            raise ConfigError(f"max_batch: must be at least 1, got {max_batch}")
        if not max_wait_ms >= 0:
            raise ConfigError(f"max_wait_ms: must be >= 0, got {max_wait_ms}")
        if max_length is not None and max_length < 1:
            raise ConfigError(f"max_length: must be at least 1, got {max_length}")
        if input_format not in ("auto", "chat", "text"):
            raise ConfigError(f"input_format: expected auto, chat or text, got {input_format!r}")
        self.path = path if path == SMOLLM2 else str(Path(path).expanduser())
        self.score_map: ScoreMap = _map(score_map)
        self.max_batch = max_batch
        self.max_wait_ms = float(max_wait_ms)
        self.max_length = max_length
        self.device = device
        self.dtype = dtype
        self.input_format: InputFormat = input_format
        self._setup()

    def _setup(self) -> None:
        self._bundle: SeqClsBundle | None = None
        self._load_error: LocalModelUnavailable | None = None
        self._load_lock = threading.Lock()
        self._batcher: MicroBatcher[str, Scored] = MicroBatcher(
            self._forward, max_batch=self.max_batch, max_wait_s=self.max_wait_ms / 1000.0
        )

    def __getstate__(self) -> dict[str, Any]:
        """Pickled without the model or the batcher (a Ray worker loads its own)."""
        state = dict(self.__dict__)
        state.pop("_bundle", None)
        state.pop("_batcher", None)
        state.pop("_load_lock", None)
        state.pop("_load_error", None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._setup()

    def __repr__(self) -> str:
        return f"RewardModelGrader(name={self.name!r}, path={self.path!r})"

    @property
    def forward_passes(self) -> int:
        """Forward passes run so far (batches), for tests and benches."""
        return self._batcher.batches

    # -- loading --

    def load(self) -> SeqClsBundle:
        """Load the model now (blocking); later calls return it at once, or raise the same
        failure again without retrying.

        Raises:
            LocalModelUnavailable: the weights cannot be loaded, or ``max_length`` is above the
                model's limit.
        """
        if self._bundle is not None:
            return self._bundle
        with self._load_lock:
            if self._load_error is not None:
                raise self._load_error
            if self._bundle is None:
                try:
                    self._bundle = self._load()
                except LocalModelUnavailable as exc:
                    # Remembered: every record would otherwise retry a load that takes seconds
                    # (minutes for a large model) and fails the same way.
                    self._load_error = exc
                    raise
            return self._bundle

    def _load(self) -> SeqClsBundle:
        bundle = load_seqcls(self.path, device=self.device, dtype=self.dtype)
        if self.max_length is not None and self.max_length > bundle.max_length:
            raise LocalModelUnavailable(
                f"max_length {self.max_length} is above {bundle.source}'s limit of "
                f"{bundle.max_length} tokens"
            )
        if self.input_format == "chat" and not bundle.has_chat_template:
            raise LocalModelUnavailable(
                f"input_format chat, but {bundle.source}'s tokenizer has no chat template"
            )
        return bundle

    async def aload(self) -> None:
        """Load the weights off the event loop, before the first record (warm start)."""
        await asyncio.to_thread(self.load)

    # -- grading --

    async def _aevaluate(
        self,
        response: Any,
        query: Any = None,
        prompt: Any = None,
        completion: Any = None,
        messages: Any = None,
    ) -> GraderScore:
        bundle = self._bundle if self._bundle is not None else await asyncio.to_thread(self.load)
        messages = with_response(messages, response)
        try:
            text, form = self._text(bundle, response, query, prompt, completion, messages)
        except (ValueError, TypeError) as exc:
            raise Unscored(str(exc), kind="invalid_input") from None
        if not text:
            raise Unscored("the reward model's input is empty", kind="invalid_input")
        text = scrub_surrogates(text)  # a lone surrogate (valid JSON) no tokenizer takes
        view = gate_view(response, query, prompt, completion, messages)
        if view is not None:
            gated = pregate_result(self.pregates, *view, name=self.name, score=self.pregate_score)
            if gated is not None:
                return gated
        try:
            scored = await self._batcher.submit(text)
        except InputError as exc:  # tokenized to nothing
            raise Unscored(str(exc), kind="invalid_input") from None
        try:
            score = self.score_map(scored.raw)
        except ValueError as exc:
            raise Unscored(str(exc), kind="internal", raw=scored.raw) from None
        metadata: dict[str, Any] = {
            "raw": scored.raw,
            "score_map": self.score_map.describe(),
            "tokens": scored.tokens,
            "truncated": scored.truncated,
            "input": form,
        }
        if scored.truncated:
            metadata["input_tokens"] = scored.input_tokens
        cut = f", truncated from {scored.input_tokens} tokens" if scored.truncated else ""
        return GraderScore(
            name=self.name,
            score=score,
            reason=(
                f"reward model logit {scored.raw:.4g} -> {score:.4f} ({self.score_map.kind}{cut})"
            ),
            metadata=metadata,
        )

    def _text(
        self,
        bundle: SeqClsBundle,
        response: Any,
        query: Any,
        prompt: Any,
        completion: Any,
        messages: Any,
    ) -> tuple[str, str]:
        """The text the model reads, and which form it took (``chat`` or ``text``)."""
        tok = bundle.tokenizer
        fmt = self.input_format
        # OpenAI's content-parts form of one text is that text (a TRL column may hold it)
        if is_content_parts(prompt):
            prompt = as_text(prompt, "prompt")
        if is_content_parts(completion):
            completion = as_text(completion, "completion")
        if fmt != "text" and is_conversation(messages):
            return reward_text(tok, list(messages), []), "chat"
        if prompt is not None and completion is not None:
            if is_conversation(prompt):
                if fmt != "text":
                    return reward_text(tok, prompt, completion), "chat"
            elif isinstance(prompt, str) and isinstance(completion, str):
                if fmt == "chat":
                    return reward_text(tok, _user(prompt), completion), "chat"
                return reward_text(tok, prompt, completion), "text"
        response = as_text(response, "response")
        query = as_text(query, "query") if query is not None else None
        chat = fmt == "chat" or (fmt == "auto" and bundle.has_chat_template)
        if not chat and query is None and (is_conversation(messages) or is_conversation(prompt)):
            # query + response would be the response alone: the conversation dropped, the same
            # score whatever was asked.
            raise ValueError(
                "the record's conversation ('messages' or a message-list 'prompt') cannot be read "
                "with input_format: text, which would score the response alone; use "
                "input_format: auto or chat, or map a text 'query'"
            )
        if chat:
            turns = _user(query) if query else []
            return reward_text(
                tok, [*turns, {"role": "assistant", "content": response}], []
            ), "chat"
        return (query or "") + response, "text"

    async def _forward(self, texts: list[str]) -> list[Scored | Exception]:
        bundle = self.load()  # loaded before any record was submitted; returns at once
        limit = self.max_length or bundle.max_length
        try:
            return list(await asyncio.to_thread(score_texts, bundle, texts, limit))
        except Exception:
            if len(texts) == 1:
                raise
        # One input the tokenizer or the model cannot take failed the whole pass: each text
        # alone, so that only it fails and its batch-mates keep their scores.
        out: list[Scored | Exception] = []
        for text in texts:
            try:
                out += await asyncio.to_thread(score_texts, bundle, [text], limit)
            except Exception as exc:
                out.append(exc)
        return out


def gate_view(
    response: Any, query: Any, prompt: Any, completion: Any, messages: Any
) -> tuple[str, dict[str, str]] | None:
    """What the pre-gates read of a reward-model record: the response text (the last assistant
    message of a conversation) and the question (the last user message before it), or ``None``
    when the record holds no text response to gate. Shared with the remote grader, which reads
    records the same way."""
    if is_conversation(messages):
        answer, asked = _last(messages, "assistant"), _last(messages, "user")
    elif prompt is not None and completion is not None:
        answer = completion if isinstance(completion, str) else _last(completion, "assistant")
        asked = prompt if isinstance(prompt, str) else _last(prompt, "user")
    else:
        answer = response if isinstance(response, str) else None
        asked = query if isinstance(query, str) else None
    if answer is None:
        return None
    return answer, ({"query": asked} if asked else {})


def _last(messages: Any, role: str) -> str | None:
    """The text of the last ``role`` message of a conversation, if it has one."""
    if not is_conversation(messages):
        return None
    for m in reversed(list(messages)):
        if isinstance(m, Mapping) and m.get("role") == role and isinstance(m.get("content"), str):
            return str(m["content"])
    return None


def with_response(messages: Any, response: Any) -> Any:
    """``messages`` as the conversation to score, with the record's ``response`` in it.

    A record may carry only the prompt's turns in ``messages`` and the answer in ``response``
    (the usual offline shape); those turns alone would score the prompt, the same number for
    every answer, an empty one included. So a conversation that ends with a user or system turn
    gets ``response`` appended as the assistant's. One that ends otherwise holds its own answer
    (TRL passes prompt and completion, which may end with a tool result) and is scored as it is.

    Raises:
        Unscored: ``invalid_input``, the response to append is not text.
    """
    if not is_conversation(messages):
        return messages
    turns = list(messages)
    if turns[-1].get("role") in ("user", "system"):
        return [*turns, {"role": "assistant", "content": as_text(response, "response")}]
    return turns


def _user(text: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": text}]


def _map(spec: Mapping[str, Any] | ScoreMap | None) -> ScoreMap:
    if isinstance(spec, ScoreMap):
        return spec
    try:
        return score_map(spec, where="score_map")
    except ConfigError:
        raise
    except Exception as exc:  # a malformed spec the checks did not foresee: still a ConfigError
        raise ConfigError(f"score_map: {exc}") from None
