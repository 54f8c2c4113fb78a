"""``RemoteRewardModelGrader`` (``type: remote_reward_model``): a learned reward model on a server.

The weights live in a model server (vLLM's ``/classify`` or ``/pooling`` for a
``*ForSequenceClassification`` model, or anything speaking OpenRLHF's ``serve_rm``
``/get_reward``, ``rm-service serve`` included); this grader sends text and turns the number that
comes back into a reward in ``[0, 1]``. The wire forms are described in
:mod:`rm_service.models._rm_client`.

**What the model reads** is what the local ``reward_model`` grader (and TRL) feeds it, from the
same record fields, except that a client without the tokenizer cannot choose for itself:

* ``input_format: text`` (the default; batched): ``prompt + completion`` when the record has
  both as text (TRL's columns), else ``query + response``;
* ``input_format: chat``: messages, which vLLM renders with the model's own chat template, as
  TRL does for conversational data: the record's ``messages`` (a whole conversation), else
  ``prompt`` + ``completion`` as messages (text becomes a user and an assistant turn), else
  ``query`` as the user's turn and ``response`` as the assistant's. vLLM's chat form carries one
  conversation per request, so chat records are not batched.

The local grader's default (``auto``) uses the chat template whenever the tokenizer has one; for
the same scores remotely from a chat-trained model, set ``input_format: chat``.

**The score** is the same map as the local reward-model grader (:mod:`graders._rm_score`,
``score_map:``). ``/classify`` returns probabilities, so its default map is ``identity``;
``/pooling`` and ``/get_reward`` return raw values (logits), mapped by a sigmoid by default.
With TRL's defaults the three agree: vLLM's ``/classify`` probability of a one-label model is
the sigmoid of the logit that ``/pooling`` returns and the local grader reads. (A model whose
config says ``problem_type: regression`` gets no activation from vLLM's ``/classify``; give it
``score_map: {map: sigmoid}``.) The raw value is always in ``metadata.raw``.

**Failures are unscored, never a number:** an HTTP error or 429 left after the retries, or a
malformed response, is ``judge_error``; a deadline is ``timeout``; one item without a usable
number (missing, NaN, a probability outside ``[0, 1]`` under ``identity``) is ``unparseable``;
a ``/get_reward`` sample the server flagged ``rm_error`` is ``judge_error``, never its fallback.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from typing import Any

from graders._base import BaseGrader, Unscored, grader
from graders._pregate import grader_pregates, pregate_result
from graders._reward_model import gate_view, with_response
from graders._rm_score import score_map as build_score_map
from graders._text import as_text
from rm_service._exceptions import ConfigError
from rm_service._result import GraderScore
from rm_service.models._base import JudgeError
from rm_service.models._rm_client import InputForm, RemoteRMClient, RMFormat, RMInput
from rm_service.models._seqcls import is_conversation

__all__ = ["RemoteRewardModelGrader"]


@grader
class RemoteRewardModelGrader(BaseGrader):
    """A reward model served over HTTP, as one grader.

    Fields: ``response``, and, when the record has them, ``query``, ``prompt``, ``completion``
    and ``messages``, read as the local ``reward_model`` grader reads them; with
    ``send_labels``, also ``label``, sent as ``labels`` in the ``get_reward`` form (map it in a
    config, e.g. ``mapper: {label: ground_truth}``).

    Args:
        url: the endpoint (``http://vllm:8000/classify``); a URL without a path gets the
            format's (``/classify``, ``/pooling``, ``/get_reward``).
        format: ``classify`` (default), ``pooling`` or ``get_reward``.
        model: the model name sent to vLLM (default: none, the server's only model).
        input_format: ``text`` (one string; batched) or ``chat`` (messages; vLLM's chat template).
        score_map: how a raw value becomes a reward, as in ``type: reward_model``
            (``{map: sigmoid, temperature: 1.0, offset: 0.0}``, ``logistic``, ``quantile``,
            ``identity``); default ``identity`` for ``classify``, ``sigmoid`` otherwise.
        label_index: which of several values is the reward (a two-class model's ``probs``).
        send_labels: read the record's ``label`` and send it as ``get_reward``'s ``labels``, for
            a server that grades against it (``rm-service serve`` with rule graders). Off by
            default: a grader that reads ``label`` claims the labels ``rm-service serve``'s
            own ``/get_reward`` would otherwise route to a rule grader's gold field.
        api_key_env: an environment variable holding a bearer key for the server.
        timeout: seconds one request attempt may take.
        deadline: seconds a request may take with its retries (default ``4 * timeout``).
        max_retries: retries after the first attempt.
        rpm / tpm: request and token limits, as for a judge endpoint.
        max_batch: the most records in one request.
        max_wait_ms: how long a batch's first record may wait for company (0: none).
        max_inflight: requests in flight at once (per event loop).
        extra_body: extra JSON fields merged into every request.
        pregates: the gates run before the request, as for ``type: reward_model`` (default
            :data:`~graders._pregate.DEFAULT_PREGATES`): a master key, a copy of the question or
            words addressed to the grader score ``pregate_score`` and are never sent.
        pregate_score: the score of a gated response.
        name: the result name (default ``"remote_reward_model"``).
    """

    required_fields = ("response",)
    default_name = "remote_reward_model"

    def __init__(
        self,
        *,
        url: str,
        format: RMFormat = "classify",
        model: str | None = None,
        input_format: InputForm = "text",
        score_map: Mapping[str, Any] | None = None,
        label_index: int | None = None,
        send_labels: bool = False,
        api_key_env: str | None = None,
        timeout: float = 30.0,
        deadline: float | None = None,
        max_retries: int = 4,
        rpm: float | None = None,
        tpm: float | None = None,
        max_batch: int = 32,
        max_wait_ms: float = 0.0,
        max_inflight: int = 4,
        extra_body: Mapping[str, Any] | None = None,
        pregates: object = None,
        pregate_score: float = 0.0,
        name: str | None = None,
    ) -> None:
        super().__init__(name=name)
        self.pregates, self.pregate_score = grader_pregates(
            self.name, self.default_name, pregates, pregate_score
        )
        if send_labels and format != "get_reward":
            raise ConfigError(f"{self.name}: send_labels needs format: get_reward")
        fields = ("query", "prompt", "completion", "messages")
        self.optional_fields = (*fields, "label") if send_labels else fields
        api_key = None
        if api_key_env:
            api_key = os.environ.get(api_key_env)
            if not api_key:
                raise ConfigError(f"{self.name}: api_key_env {api_key_env!r} is not set")
        spec = score_map
        if spec is None and format == "classify":
            spec = {"map": "identity"}  # /classify answers probabilities
        self.score_map = build_score_map(spec, where=f"{self.name}: score_map")
        try:
            self.client = RemoteRMClient(
                url,
                format=format,
                model=model,
                input_format=input_format,
                api_key=api_key,
                timeout=timeout,
                deadline=deadline,
                max_retries=max_retries,
                rpm=rpm,
                tpm=tpm,
                max_batch=max_batch,
                max_wait_s=max_wait_ms / 1000.0,
                max_inflight=max_inflight,
                label_index=label_index,
                extra_body=extra_body,
            )
        except ConfigError as exc:
            raise ConfigError(f"{self.name}: {exc}") from None

    def __repr__(self) -> str:
        return f"RemoteRewardModelGrader(name={self.name!r}, client={self.client!r})"

    async def aclose(self) -> None:
        """Close this loop's HTTP session (it reopens on next use)."""
        await self.client.aclose()

    def judges(self) -> Iterator[Any]:
        """The model server's client, so ``/readyz`` probes it like a judge endpoint."""
        yield self.client

    def _input(self, fields: Mapping[str, Any]) -> RMInput:
        """The record as the server will read it (see the module docstring for the order)."""
        prompt, completion = fields.get("prompt"), fields.get("completion")
        label = fields.get("label")
        if self.client.input_format == "chat":
            messages = fields.get("messages")
            if is_conversation(messages):
                turns = _turns(messages, "messages")
            elif prompt is not None and completion is not None:
                turns = _turns(prompt, "prompt", "user") + _turns(completion, "completion")
            else:
                query = fields.get("query")
                turns = _turns(query, "query", "user") if query is not None else ()
                turns += _turns(fields["response"], "response")
            return RMInput(prompt="", response="", messages=turns, label=label)
        if isinstance(prompt, str) and isinstance(completion, str):
            return RMInput(prompt=prompt, response=completion, label=label)
        query = fields.get("query")
        if query is None and (is_conversation(fields.get("messages")) or is_conversation(prompt)):
            # Text input sends query + response: without a query, the response alone, and the
            # conversation the record holds would be dropped (the same score for any question).
            raise Unscored(
                "the record's conversation ('messages' or a message-list 'prompt') cannot be sent "
                "with input_format: text, which would send the response alone; set input_format: "
                "chat, or map a text 'query'",
                kind="invalid_input",
            )
        if is_conversation(query):
            raise Unscored(
                "field 'query' must be text with input_format: text, got a list of chat "
                "messages; input_format: chat lets the server apply the chat template",
                kind="invalid_input",
            )
        text = as_text(fields["response"], "response")
        prompt_text = as_text(query, "query") if query is not None else ""
        return RMInput(prompt=prompt_text, response=text, label=label)

    async def _aevaluate(self, **fields: Any) -> GraderScore:
        if fields.get("messages") is not None:
            fields["messages"] = with_response(fields["messages"], fields.get("response"))
        item = self._input(fields)
        view = gate_view(
            *(fields.get(f) for f in ("response", "query", "prompt", "completion", "messages"))
        )
        if view is not None:
            gated = pregate_result(self.pregates, *view, name=self.name, score=self.pregate_score)
            if gated is not None:
                return gated
        client = self.client
        meta: dict[str, Any] = {"format": client.format, "url": client.url}
        try:
            value = await client.score(item)
        except (JudgeError, TimeoutError) as exc:
            attempts = getattr(exc, "attempts", 1)
            raise Unscored.backend_failed(exc, "reward model", attempts=attempts, **meta) from None
        meta.update(
            batch_size=value.batch_size,
            attempts=value.attempts,
            latency_s=round(value.latency_s, 6),
            **value.detail,
        )
        if value.error is not None:
            raise Unscored(
                f"reward model gave no usable value: {value.error}",
                kind=value.kind,
                raw=value.raw,
                **meta,
            )
        assert value.raw is not None
        try:
            score = self.score_map(value.raw)
        except ValueError as exc:
            raise Unscored(str(exc), kind="unparseable", raw=value.raw, **meta) from None
        kind = self.score_map.kind
        return GraderScore(
            name=self.name,
            score=score,
            reason=f"reward model {value.raw:.4g} → {score:.3f} ({kind})",
            metadata={"raw": value.raw, "score_map": self.score_map.describe(), **meta},
        )


def _turns(value: Any, field: str, role: str = "assistant") -> tuple[dict[str, str], ...]:
    """``value`` as chat messages: a message list as it is (checked), text as one ``role`` turn."""
    if not is_conversation(value):
        return ({"role": role, "content": as_text(value, field)},)
    out = []
    for i, m in enumerate(value):
        if not isinstance(m.get("role"), str):
            raise Unscored(f"field {field!r} item {i} has no role", kind="invalid_input")
        out.append({"role": m["role"], "content": as_text(m.get("content"), f"{field}[{i}]")})
    return tuple(out)
