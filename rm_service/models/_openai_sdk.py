"""The SDK transports of :class:`~rm_service.models._openai.OpenAIChatModel`: ``openai.AsyncOpenAI``
on its aiohttp client (``transport="aiohttp"``) or on its default httpx2 client (``"httpx"``).

They exist for what only the SDK does (its proxy and Azure handling, say); the default ``direct``
transport never imports this module's libraries. ``openai`` takes about a second to import, so
it is imported on first use (:func:`load_sdk`, which the model runs in a thread), never at module
import.

Why the calls look the way they do:

* **Raw JSON instead of pydantic models.** Calls go through the SDK's documented
  ``client.post(path, cast_to=httpx2.Response)`` and the model reads the body with
  ``json.loads``: this skips the SDK's request-params transform and its response-model
  construction, which cost as much again as the call itself (``docs/benchmarks.md``).
* **Our retries, not the SDK's** (``max_retries=0``): the model retries, under its own deadline.
* **Errors are classified by cause.** The SDK's aiohttp transport reports a refused connection
  as a timeout; the cause chain is inspected so that it surfaces as
  :class:`JudgeConnectionError`, and a read timeout as :class:`JudgeTimeout`.

``httpx2`` is the SDK's own HTTP library; we import it only for the two types the SDK's API
takes (``Limits`` and ``Response``).
"""

from __future__ import annotations

import asyncio
import threading
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlsplit, urlunsplit

from rm_service.models._base import JudgeConnectionError, JudgeError, JudgeTimeout
from rm_service.models._body import without_surrogates

if TYPE_CHECKING:
    from rm_service.models._openai import OpenAIChatModel

__all__ = ["SdkClient", "load_sdk"]


class _Sdk:
    """The lazily imported SDK pieces a call needs."""

    def __init__(self) -> None:
        import aiohttp
        import httpx2
        import openai

        self.openai = openai
        self.limits = httpx2.Limits
        self.response_type = httpx2.Response
        self.status_error = openai.APIStatusError
        self.connection_error = openai.APIConnectionError
        self.timeout_error = openai.APITimeoutError
        self.aiohttp_connection_error = aiohttp.ClientConnectionError


_sdk_lock = threading.Lock()
_sdk_cache: _Sdk | None = None


def _split_query(base_url: str | None) -> tuple[str | None, dict[str, str] | None]:
    """The SDK appends its path to the whole base URL, so a query in it (Azure's
    ``?api-version=``) would end up in the path: it goes as the client's default query."""
    if base_url is None:
        return None, None
    parts = urlsplit(base_url)
    if not parts.query:
        return base_url, None
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    return urlunsplit(parts._replace(query="", fragment="")), query


def load_sdk() -> _Sdk:
    """Import the SDK once per process (about a second: call it in a thread, off the loop)."""
    global _sdk_cache
    with _sdk_lock:
        if _sdk_cache is None:
            _sdk_cache = _Sdk()
        return _sdk_cache


class SdkClient:
    """One loop's ``AsyncOpenAI`` client, with the same ``post``/``close`` as the direct client.

    ``post`` returns the response body or raises the same :class:`JudgeError` classes as the
    direct transport, so retries and deadlines behave identically on every transport.
    """

    def __init__(self, model: OpenAIChatModel, endpoint: str) -> None:
        sdk = load_sdk()
        self._sdk = sdk
        self._model = model
        self._endpoint = endpoint
        limits = sdk.limits(
            max_connections=model.max_concurrency,
            max_keepalive_connections=model.max_concurrency,
        )
        http_cls = (
            sdk.openai.DefaultAioHttpClient
            if model.transport == "aiohttp"
            else sdk.openai.DefaultAsyncHttpxClient
        )
        base, query = _split_query(model.base_url)
        self.client = sdk.openai.AsyncOpenAI(
            api_key=model._api_key,
            base_url=base,
            default_query=query,
            timeout=model.timeout,
            max_retries=0,
            http_client=http_cls(limits=limits, timeout=model.timeout),
        )

    async def post(self, body: dict[str, Any], n: int, *, until: float | None = None) -> bytes:
        sdk = self._sdk
        try:
            async with asyncio.timeout_at(until):
                response = await self.client.post(
                    "/chat/completions", body=without_surrogates(body), cast_to=sdk.response_type
                )
        except sdk.status_error as exc:
            detail = str(getattr(exc, "message", exc))
            raise self._model._http_error(
                int(exc.status_code), detail, exc.response.headers, n
            ) from exc
        except sdk.connection_error as exc:
            raise self._connection_error(exc, n) from exc
        content: bytes = response.content
        return content

    def _connection_error(self, exc: BaseException, n: int) -> JudgeError:
        # Walk the cause chain: the SDK's aiohttp transport maps *every* aiohttp connection
        # error (refused, reset, disconnected) to httpx's ConnectTimeout, so the SDK's own
        # APITimeoutError/APIConnectionError split cannot be trusted. TimeoutError is checked
        # first because it is itself an OSError.
        name, timeout = self._model.model, self._model.timeout
        cause: BaseException | None = exc.__cause__
        while cause is not None:
            if isinstance(cause, TimeoutError):
                return JudgeTimeout(f"{name}: no answer within {timeout:g} s", attempts=n)
            if isinstance(cause, OSError | self._sdk.aiohttp_connection_error):
                return JudgeConnectionError(
                    f"{name}: cannot reach {self._endpoint}: {cause}", attempts=n
                )
            cause = cause.__cause__ or cause.__context__
        if isinstance(exc, self._sdk.timeout_error):
            return JudgeTimeout(f"{name}: no answer within {timeout:g} s", attempts=n)
        return JudgeConnectionError(f"{name}: connection failed: {exc}", attempts=n)

    async def close(self) -> None:
        await self.client.close()
