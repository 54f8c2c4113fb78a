"""Judge backends: OpenAI-compatible endpoints and embedded local models behind one protocol."""

from rm_service.models._base import (
    ChatModel,
    ChatResult,
    JudgeConnectionError,
    JudgeError,
    JudgeHTTPError,
    JudgeRateLimited,
    JudgeTimeout,
    Message,
    ResponseFormat,
    SamplingParams,
    TokenLogprob,
    Usage,
)

__all__ = [
    "ChatModel",
    "ChatResult",
    "JudgeConnectionError",
    "JudgeError",
    "JudgeHTTPError",
    "JudgeRateLimited",
    "JudgeTimeout",
    "Message",
    "ResponseFormat",
    "SamplingParams",
    "TokenLogprob",
    "Usage",
]
