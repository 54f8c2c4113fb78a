"""The HTTP face of the grading engine: a FastAPI app over one or more named reward configs.

Endpoints: ``POST /grade`` (our shape, modelled on the OpenAI graders ``run`` response),
``POST /get_reward`` (OpenRLHF's remote reward protocol, old and new forms), ``GET /graders``,
``GET /healthz``, ``GET /readyz``, ``GET /metrics`` (Prometheus) and the OpenAPI docs.

Why it is built this way:

* **One engine.** Every request goes through ``GradingRunner.agrade``; the HTTP layer only
  validates, admits, and reshapes. Unscored stays ``null`` with its reason on ``/grade``.
* **Admission, not an unbounded queue.** Records in flight across all requests are bounded
  (:class:`~rm_service._admission.Admission`); past a bounded queue a request gets 429 with
  ``Retry-After`` at once, so an overloaded service sheds load instead of timing everyone out.
* **Nothing hangs.** Each request has a deadline (the runner returns unfinished components as
  unscored ``timeout``), and a client that disconnects cancels its grading.
* **Warm before ready.** Start-up starts the math workers and loads local models in the
  background; ``/readyz`` says not ready until that is done, so a first request is not slow.
* **Clean shutdown.** The lifespan hook closes what serving opened: judge clients (committee
  members' too) and judge cache files. The math worker pool is process-wide and stops at exit.
* **Light import.** Only this module and its error handlers (``rm_service._http_errors``)
  import FastAPI; ``import rm_service`` does not import it.

Usage::

    app = create_app({"math": "reward.yaml", "chat": "judges.yaml"})   # or rm-service serve
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import AsyncIterator, Awaitable, Mapping
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from fastapi import FastAPI, HTTPException, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from rm_service._admission import Admission, Overloaded
from rm_service._http_errors import http_error as _http_error
from rm_service._http_errors import json_response as _json
from rm_service._http_errors import validation_error as _validation_error
from rm_service._http_middleware import (
    BearerAuthMiddleware,
    BodyLimitMiddleware,
    RequestMetricsMiddleware,
    install_access_log_redaction,
)
from rm_service._http_schemas import (
    ErrorBody,
    GetRewardRequest,
    GradeRequest,
    GradeResponse,
    ServiceSettings,
    field_error,
)
from rm_service._jobs import record_id
from rm_service._metrics import CONTENT_TYPE_LATEST, GraderTimer, ServiceMetrics
from rm_service._openrlhf import (
    PromptLog,
    UnscoredLog,
    check_labels,
    openrlhf_json,
    openrlhf_records,
    openrlhf_response,
)
from rm_service._result import RecordResult, unscored_record
from rm_service._rewards import (
    RewardEntry,
    RewardSource,
    close_resources,
    describe,
    load_rewards,
    probe_judges,
    warm_up,
)
from rm_service._summary import RunSummary
from rm_service._wire import record_status

__all__ = ["RewardEntry", "create_app", "load_rewards"]

_log = logging.getLogger("rm_service.app")

T = TypeVar("T")

_PATHS = ("/grade", "/get_reward", "/graders", "/healthz", "/readyz", "/metrics")


class _ClientGone(Exception):
    pass


class _NamedBodyLimit(BodyLimitMiddleware):
    """:class:`BodyLimitMiddleware` whose 413 names the setting that limits it."""

    def __init__(self, app: Any, max_bytes: int, setting: str) -> None:
        super().__init__(app, max_bytes)
        self.setting = setting

    def _detail(self, size: str) -> dict[str, str]:
        return {
            "detail": f"request body is {size} bytes; the limit is {self.setting}="
            f"{self.max_bytes} bytes: send fewer or smaller records per request"
        }


class _BodyLimits:
    """:class:`BodyLimitMiddleware` with its own limit on some paths (``/get_reward`` takes
    whole OpenRLHF rollout batches; see ``ServiceSettings.get_reward_max_body_bytes``), and a
    415 for a POST to ``json_paths`` whose body is not plain JSON (see ``_unreadable``); a POST
    elsewhere gets the router's 404 or 405, which say more. ``per_path``: path -> (setting
    name, bytes)."""

    def __init__(
        self,
        app: Any,
        max_bytes: int,
        per_path: Mapping[str, tuple[str, int]],
        json_paths: frozenset[str] = frozenset(),
    ) -> None:
        self._default = BodyLimitMiddleware(app, max_bytes)
        self._paths = {p: _NamedBodyLimit(app, n, name) for p, (name, n) in per_path.items()}
        self._json_paths = json_paths

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if (
            scope["type"] == "http"
            and scope.get("method") == "POST"
            and scope.get("path") in self._json_paths
        ):
            problem = _unreadable(scope)
            if problem is not None:
                await _json({"detail": problem}, 415)(scope, receive, send)
                return
        limit = self._paths.get(scope.get("path", ""), self._default)
        await limit(scope, receive, send)


def _not_finite(value: Any) -> bool:
    """``value`` holds a float that strict JSON cannot write back: an infinity (a number too
    large for a float, or ``Infinity``) or ``NaN``, which came back as ``null``. Walked with a
    stack, not recursion: JSON nests deeper than Python's recursion limit."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, float):
            if not math.isfinite(item):
                return True
        elif isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def _unreadable(scope: Any) -> str | None:
    """Why a POST body cannot be read as JSON from its headers alone, or ``None``: a form or
    text content type (``curl -d`` sends a form unless told otherwise), none at all, or a
    compressed body. Read anyway, each was a 422 about a "dictionary", or one echoing the whole
    body as a string (FastAPI reads a body with no content type as bytes), or a 400 naming no
    cause."""
    headers = {k.lower(): v for k, v in scope.get("headers") or ()}
    if b"content-type" not in headers:
        return (
            "the request has no Content-Type; send JSON with Content-Type: application/json "
            "(curl: -H 'Content-Type: application/json')"
        )
    kind = headers[b"content-type"].split(b";", 1)[0].strip().lower()
    if kind != b"application/json" and not kind.endswith(b"+json"):
        return (
            f"the body is {kind.decode('latin-1')!r}; send JSON with "
            "Content-Type: application/json (curl: -H 'Content-Type: application/json')"
        )
    coding = headers.get(b"content-encoding", b"identity").lower()
    if any(c.strip() not in (b"", b"identity") for c in coding.split(b",")):
        return f"a {coding.decode('latin-1')!r} body is not accepted; send the JSON uncompressed"
    return None


def _unadmitted(
    entry: RewardEntry, records: list[dict[str, Any]], deadline: float | None, bound: int
) -> list[RecordResult]:
    """Every record unscored with ``kind="timeout"``: the deadline passed while the request
    waited for admission, so nothing was graded. What the runner answers for work unfinished at
    a deadline, so ``/get_reward`` reports it the same way (``rm_error`` = 1)."""
    runner = entry.runner
    why = (
        f"the deadline ({deadline} s) passed while waiting for admission: max_in_flight="
        f"{bound} records were being graded"
    )
    names = runner.names
    return [
        unscored_record(
            i, names, runner.reward_name, why, "timeout", id=record_id(rec, runner.id_field)
        )
        for i, rec in enumerate(records)
    ]


async def _unless_disconnected(request: Request, work: Awaitable[T]) -> T:
    """Await ``work``, cancelling it if the client disconnects first.

    The body has been read by the time an endpoint runs, so the next ``receive()`` only returns
    when the connection closes (``http.disconnect``).
    """
    task = asyncio.ensure_future(work)

    async def watch() -> None:
        while (await request.receive())["type"] != "http.disconnect":
            pass

    watcher = asyncio.ensure_future(watch())
    try:
        await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
        if not task.done() and not watcher.cancelled() and watcher.exception() is not None:
            await asyncio.wait({task})  # cannot watch this server's receive(); just finish
    finally:
        watcher.cancel()
        if not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        await asyncio.gather(watcher, return_exceptions=True)
    if task.cancelled():
        raise _ClientGone
    return task.result()


def create_app(
    rewards: Mapping[str, RewardSource] | RewardSource,
    settings: ServiceSettings | None = None,
) -> FastAPI:
    """Build the service over ``rewards`` (name → config file, dict, ``RewardConfig`` or runner).

    ``settings`` defaults to :meth:`ServiceSettings.from_env` (the API key from
    ``RM_SERVICE_API_KEY``). Every config is loaded and validated here, so a bad one fails
    start-up, not the first request.
    """
    settings = settings if settings is not None else ServiceSettings.from_env()
    metrics = ServiceMetrics()
    timer = GraderTimer(metrics)
    entries = load_rewards(rewards)
    default = next(iter(entries))
    # /get_reward: where each reward's labels go, checked now (a loud warning, not a failure:
    # the same config may serve /grade only); unscored batches are logged, rate-limited.
    label_fields = check_labels(
        {n: e.runner for n, e in entries.items()},
        settings.label_field,
        face="/get_reward",
        setting="--label-field {}",
        strict=False,
    )
    unscored_log = UnscoredLog("get_reward", _log)
    prompt_log = PromptLog("get_reward", _log)

    def on_admission(in_flight: int, queued: int) -> None:
        metrics.records_in_flight.set(in_flight)
        metrics.records_queued.set(queued)

    # Grading in flight, each under a timeout that a shutdown brings forward to
    # ``shutdown_grace`` from then (see ``_admission``: uvicorn waits for every request).
    cuts: set[asyncio.Timeout] = set()

    def on_drain() -> None:
        when = asyncio.get_running_loop().time() + settings.shutdown_grace
        for cut in cuts:
            cut.reschedule(when)

    admission = Admission(
        settings.max_in_flight, settings.max_queue, settings.retry_after, on_admission, on_drain
    )

    def shutting_down() -> HTTPException:
        return HTTPException(
            503,
            "the server is shutting down: send the request again (to another replica)",
            headers={"Retry-After": str(settings.retry_after)},
        )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        install_access_log_redaction()
        warm = app.state.warm = asyncio.ensure_future(warm_up(entries.values()))
        try:
            yield
        finally:
            warm.cancel()
            await asyncio.gather(warm, return_exceptions=True)
            await close_resources(entries.values())

    app = FastAPI(
        lifespan=lifespan,
        title="rm-service",
        summary="Reward signals for LLM post-training",
        description=__doc__.split("\n\n")[0],
        version="0.1.0",
    )
    app.state.rewards = entries
    app.state.settings = settings
    app.state.metrics = metrics
    app.state.admission = admission
    app.state.warm = None  # the warm-up task, started by the lifespan
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)

    app.add_middleware(
        _BodyLimits,
        max_bytes=settings.max_body_bytes,
        per_path={"/get_reward": ("get_reward_max_body_bytes", settings.get_reward_max_body_bytes)},
        json_paths=frozenset({"/grade", "/get_reward"}),
    )
    if settings.api_key:
        app.add_middleware(BearerAuthMiddleware, api_key=settings.api_key)
    app.add_middleware(
        RequestMetricsMiddleware,
        observe=metrics.observe_request,
        paths=(*_PATHS, "/docs", "/openapi.json"),
    )

    def entry_for(name: str | None) -> RewardEntry:
        key = default if name is None else name
        if key not in entries:
            raise HTTPException(
                422,
                field_error(
                    ["reward"], f"{key!r} is not a configured reward; have {list(entries)}"
                ),
            )
        return entries[key]

    async def admit(weight: int, deadline: float | None, patient: bool) -> bool:
        """Take ``weight`` admission slots; ``False`` when the request's deadline passed first,
        or a ``patient`` request was not admitted in time.

        Each waits in the queue up to ``queue_timeout``, and no longer than its deadline: the
        queue admits in order, so a longer wait would hold every request behind it. A request
        whose deadline passes in the queue answers every record unscored (``timeout``), as at
        any deadline: a ``/grade`` asking for 2 s was answered after ``queue_timeout`` (30 s).
        Past ``queue_timeout`` a ``/grade`` request gets a 429: shedding load tells its client
        to back off. A ``patient`` one (``/get_reward``) answers with every record unscored
        instead, since OpenRLHF fails the run after a few 429s and is promised an answer within
        the deadline, unfinished records unscored. A full queue is a 429 for both."""
        queue_timeout = settings.queue_timeout  # None: no limit but the deadline
        by_deadline = deadline is not None and (queue_timeout is None or deadline <= queue_timeout)
        wait = deadline if by_deadline else queue_timeout
        try:
            await admission.acquire(weight, max_wait=wait)
            return True
        except Overloaded as exc:
            if exc.shutdown:
                raise shutting_down() from None
            if not exc.queue_full and (patient or by_deadline):
                return False
            metrics.rejected.inc()
            raise HTTPException(
                429, str(exc), headers={"Retry-After": str(exc.retry_after)}
            ) from None

    async def run(
        request: Request,
        entry: RewardEntry,
        records: list[dict[str, Any]],
        deadline: float | None,
        field: str,
        limit: tuple[str, int] = ("max_records", settings.max_records),
        patient: bool = False,
    ) -> list[RecordResult]:
        """Grade ``records`` once admitted. ``deadline`` counts from now, the wait for
        admission included. A request larger than ``max_in_flight`` (``/get_reward``'s may be)
        is admitted as ``max_in_flight`` records: it waits for the whole bound and runs alone,
        rather than being refused for ever; grading is bounded by the runner's concurrency.
        ``patient``: not admitted in time (see ``admit``), every record comes back unscored
        (``timeout``) rather than a 429."""
        n = len(records)
        if n > limit[1]:
            raise HTTPException(
                413,
                f"{n} records in field {field!r}; the limit is {limit[0]}="
                f"{limit[1]} per request: split the batch",
            )
        if n == 0:
            return []
        if deadline is None or (settings.deadline is not None and deadline > settings.deadline):
            deadline = settings.deadline
        weight = min(n, admission.max_in_flight)

        async def admitted(deadline: float | None) -> list[RecordResult]:
            start = time.monotonic()
            if not await admit(weight, deadline, patient):
                return _unadmitted(entry, records, deadline, admission.max_in_flight)
            if deadline is not None:
                deadline = max(deadline - (time.monotonic() - start), 1e-3)
            try:
                async with asyncio.timeout(None) as cut:
                    cuts.add(cut)
                    if admission.draining:  # began while this one was being admitted
                        on_drain()
                    try:
                        return await entry.runner.agrade(records, deadline=deadline, observer=timer)
                    finally:
                        cuts.discard(cut)
            except TimeoutError:
                if not cut.expired():
                    raise
                raise shutting_down() from None
            finally:
                admission.release(weight)
                metrics.flush()

        # The wait in the queue is watched too: a client that leaves while queued frees its
        # place at once, rather than holding it (and 429-ing others) until admitted.
        return await _unless_disconnected(request, admitted(deadline))

    # ``response_model`` documents the shape; the endpoint returns the JSON itself, so FastAPI
    # neither re-validates nor re-encodes it: building a model per record and letting FastAPI
    # validate and encode them again cost a large share of a rule-graded request. The models
    # stay the documented schema, and ``tests/app`` checks the dicts against them.
    @app.post("/grade", response_model=GradeResponse, responses=_LIMIT_ERRORS)
    async def grade(body: GradeRequest, request: Request) -> Any:
        """Grade a batch of records; results come back in input order."""
        entry = entry_for(body.reward)
        id_field = entry.runner.id_field
        for i, rec in enumerate(body.records):
            if not isinstance(rec, dict):
                continue
            rid = rec.get(id_field)
            # An id that is text or absent (the common case) holds no float: no walk.
            if rid is not None and type(rid) is not str and _not_finite(rid):
                raise HTTPException(
                    422,
                    field_error(
                        ["records", i, id_field],
                        "holds NaN or a number past the float range (1e400, Infinity): it "
                        "could not come back as sent; send the id as a string",
                    ),
                )
        start = time.perf_counter()
        try:
            results = await run(request, entry, body.records, body.deadline, "records")
        except _ClientGone:
            return Response(status_code=499)
        # One walk of the results: the wire records, the summary, and the metrics' counts
        # when every record is plain (else the metrics walk them, as /get_reward's do).
        summary = RunSummary.of(entry.runner.names, entry.runner.reward_name)
        graders = entry.runner.grader_configs
        try:
            out, scored = summary.add_results(results, metadata=body.include_metadata)
        except Exception:  # the batch was graded: it is counted, whatever its answer
            metrics.observe_results(entry.name, results, graders, record_status)
            raise
        if scored is not None:
            metrics.observe_scored(entry.name, len(results), scored, graders)
        else:
            metrics.observe_results(entry.name, results, graders, record_status)
        latency = time.perf_counter() - start
        return _json({"reward": entry.name, "results": out, "summary": summary.to_json(latency)})

    @app.post("/get_reward", responses=_LIMIT_ERRORS)
    async def get_reward(body: GetRewardRequest, request: Request) -> Any:
        """OpenRLHF's remote reward: ``{"query", "prompts", "labels"}`` →
        ``{"rewards", "scores", "extra_logs"}``; the old ``{"query"}`` form also gets ``score``.

        An unscored record's reward and score are ``unscored_fallback`` (the client needs
        numbers) and its ``extra_logs.rm_error`` is 1, so a trainer can mask it; scored
        records have ``rm_error`` 0. An unscored component is ``NaN`` (the JSON token) with
        ``<component>/unscored`` = 1, never a number (see ``rm_service._openrlhf``). A query
        that does not hold its prompt gets ``extra_logs.prompt_not_found`` = 1 (and a
        rate-limited warning): its response is a best guess. Up to ``get_reward_max_records``
        records a request, graded within ``get_reward_deadline`` (below OpenRLHF's timeout).
        """
        entry = entry_for(body.reward)
        try:
            batch = openrlhf_records(
                body.query,
                body.prompts,
                body.labels,
                stripper=settings.stripper,
                label_field=label_fields[entry.name],
            )
        except ValueError as exc:
            fld, _, msg = str(exc).partition(": ")
            raise HTTPException(422, field_error([fld], msg)) from None
        prompt_log.observe(batch.splits)
        limit = ("get_reward_max_records", settings.get_reward_max_records)
        try:
            results = await run(
                request,
                entry,
                batch.records,
                settings.get_reward_deadline,
                "query",
                limit,
                patient=True,
            )
        except _ClientGone:
            return Response(status_code=499)
        metrics.observe_results(entry.name, results, entry.runner.grader_configs, record_status)
        unscored_log.observe(results, entry.name)
        out = openrlhf_response(
            results,
            entry.runner.names,
            batch.splits,
            fallback=settings.unscored_fallback,
            legacy=body.prompts is None and body.labels is None,
        )
        return Response(openrlhf_json(out), media_type="application/json")

    @app.get("/graders", responses=_AUTH_ERROR)
    async def graders() -> dict[str, Any]:
        """The configured rewards: graders, required fields, mappers, aggregators, weights."""
        return {"default": default, "rewards": {n: describe(e) for n, e in entries.items()}}

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        """Alive (no checks, no auth)."""
        return {"status": "ok"}

    @app.get("/readyz", responses={**_AUTH_ERROR, 503: {"description": "not ready"}})
    async def readyz() -> Response:
        """Configs loaded, every endpoint judge reachable (``GET {base_url}/models``) and every
        remote reward-model server up (its client's ``probe``), and, when
        served (the lifespan ran), the warm-up done without errors: math workers started, local
        models loaded (``warm``: ``{"done", "errors": {grader: error}}``)."""
        judges = await probe_judges(entries.values(), settings.ready_timeout)
        ready = all(j["ok"] for j in judges.values())
        body: dict[str, Any] = {"ready": ready, "rewards": list(entries), "judges": judges}
        warm: asyncio.Future[dict[str, str]] | None = app.state.warm
        if warm is not None:
            done = warm.done() and not warm.cancelled()
            errors = warm.result() if done else {}
            body["warm"] = {"done": done, "errors": errors}
            body["ready"] = ready = ready and done and not errors
        return JSONResponse(body, status_code=200 if ready else 503)

    @app.get(
        "/metrics",
        responses={
            **_AUTH_ERROR,
            200: {"description": "Prometheus text format", "content": {"text/plain": {}}},
        },
    )
    async def metrics_endpoint() -> Response:
        """Prometheus metrics of this app instance."""
        return Response(metrics.render(), media_type=CONTENT_TYPE_LATEST)

    return app


_AUTH_ERROR: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorBody, "description": "no or wrong bearer token (RM_SERVICE_API_KEY set)"},
}
_LIMIT_ERRORS: dict[int | str, dict[str, Any]] = {
    **_AUTH_ERROR,
    400: {"model": ErrorBody, "description": "the body is not valid JSON"},
    413: {"model": ErrorBody, "description": "body or batch over the limit; names the limit"},
    429: {
        "model": ErrorBody,
        "description": "over capacity: retry after the Retry-After header's seconds",
        "headers": {"Retry-After": {"schema": {"type": "integer"}}},
    },
}
