"""Judge backends: OpenAI-compatible endpoints and embedded local models behind one protocol.

The backends' exceptions are defined in the one exception tree (:mod:`rm_service._exceptions`)
and re-exported here, beside the backends that raise them.
"""

from rm_service._exceptions import (
    EmbedderUnavailable,
    JudgeConnectionError,
    JudgeError,
    JudgeHTTPError,
    JudgeRateLimited,
    JudgeTimeout,
    LocalModelUnavailable,
)
from rm_service.models._base import (
    ChatModel,
    ChatResult,
    Message,
    ResponseFormat,
    SamplingParams,
    TokenLogprob,
    Usage,
)
from rm_service.models._cache import JudgeCache
from rm_service.models._embed import Embedder, cosine
from rm_service.models._factory import JudgeSpec, build_judge, judge_factory
from rm_service.models._limits import RateLimiter
from rm_service.models._local import LocalChatModel, cache_dir
from rm_service.models._openai import OpenAIChatModel
from rm_service.models._redis import RedisStore
from rm_service.models._redis_budget import RedisRateLimiter
from rm_service.models._retry import RetryPolicy

__all__ = [
    "ChatModel",
    "ChatResult",
    "Embedder",
    "EmbedderUnavailable",
    "JudgeCache",
    "JudgeConnectionError",
    "JudgeError",
    "JudgeHTTPError",
    "JudgeRateLimited",
    "JudgeSpec",
    "JudgeTimeout",
    "LocalChatModel",
    "LocalModelUnavailable",
    "Message",
    "OpenAIChatModel",
    "RateLimiter",
    "RedisRateLimiter",
    "RedisStore",
    "ResponseFormat",
    "RetryPolicy",
    "SamplingParams",
    "TokenLogprob",
    "Usage",
    "build_judge",
    "cache_dir",
    "cosine",
    "judge_factory",
]
