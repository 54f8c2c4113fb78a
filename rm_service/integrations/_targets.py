"""The reward a training integration grades with, chosen by arguments or the environment,
built once per process and shared; plus the sync bridge and the failure-proof grading pass that
the verl and OpenRLHF shims share.

Frameworks call these shims per sample, from thread pools and from a loop per worker; a backend
(a runner with its judge clients, or a service description) is expensive to build, so each
choice of reward is built once per process under a lock and reused.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import threading
from collections.abc import Coroutine, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from rm_service._exceptions import ConfigError
from rm_service._result import RecordResult, unscored_record
from rm_service.integrations._backend import Backend, LocalBackend, RemoteBackend, logger

__all__ = [
    "Config",
    "Target",
    "acached_target",
    "cached_target",
    "fallback_reward",
    "finite",
    "grade_safely",
    "reward_key",
    "run_blocking",
]

T = TypeVar("T")

RESERVED_KEYS = frozenset({"score", "rm_error"})
"""The result keys that are not component names."""

Config = str | Path | Mapping[str, Any]
_Key = tuple[str, str, str | None, str | None]


@dataclass(frozen=True)
class Target:
    """A cached backend with what shaping its results needs."""

    backend: Backend
    reward: str
    names: tuple[str, ...]


_targets: dict[_Key, Target] = {}
_targets_lock = threading.Lock()


def reward_key(
    config: Config | None, url: str | None, api_key: str | None, reward: str | None
) -> _Key:
    """The cache key of a reward choice, the environment filling what was not passed.

    ``$RM_SERVICE_URL`` wins over ``$RM_SERVICE_CONFIG`` when both are set: the config variable
    may be there for the CLI (``.env``), a URL is set only to reach a service.
    """
    if config is not None and url is not None:
        raise ConfigError("pass config (a reward YAML) or url (a running rm-service), not both")
    if config is None and url is None:
        url = os.environ.get("RM_SERVICE_URL") or None
        config = None if url else os.environ.get("RM_SERVICE_CONFIG") or None
        if config is None and url is None:
            raise ConfigError(
                "no reward: pass config= (a reward YAML path) or url= (a running rm-service), "
                "e.g. in verl's reward_kwargs, or set RM_SERVICE_CONFIG or RM_SERVICE_URL"
            )
    if url is not None:
        if not isinstance(url, str):
            raise ConfigError(f"url must be a string, got {type(url).__name__}")
        key = api_key if api_key is not None else os.environ.get("RM_SERVICE_API_KEY")
        name = reward if reward is not None else os.environ.get("RM_SERVICE_REWARD")
        return ("url", url, key or None, name or None)
    if reward is not None:
        raise ConfigError("reward names one of a service's rewards: it needs url, not config")
    if isinstance(config, str | Path):
        return ("config", str(Path(config).expanduser().resolve()), None, None)
    if not isinstance(config, Mapping):
        raise ConfigError(
            f"config must be a reward YAML path or a config mapping, got {type(config).__name__}"
        )
    plain = _config_data(config, "config")
    return ("config-dict", json.dumps(plain), None, None)  # key order kept: graders run in it


def _config_data(value: Any, where: str) -> Any:
    """A config mapping as plain data, or a ``ConfigError`` naming what has none.

    Strict where :func:`jsonable` (for records) drops what it cannot hold: verl hands
    ``reward_kwargs`` over as OmegaConf nodes, and a dropped ``aggregators`` list silently
    turned a weighted reward into an equal-weight sum. Any mapping is a mapping, any sequence
    but text a list.
    """
    if value is None or type(value) in (str, bool, int, float):
        return value
    if isinstance(value, str):
        return str.__str__(value)
    if isinstance(value, int | float):
        return float(value) if isinstance(value, float) else int(value)
    if isinstance(value, Mapping):
        return {str(k): _config_data(v, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, Sequence) and not isinstance(value, bytes | bytearray):
        return [_config_data(v, f"{where}[{i}]") for i, v in enumerate(value)]
    tolist = getattr(value, "tolist", None)
    if callable(tolist):
        return _config_data(tolist(), where)
    raise ConfigError(f"{where}: a {type(value).__name__} has no place in a reward config")


def _build(key: _Key) -> Target:
    kind, where, api_key, reward = key
    backend: Backend
    if kind == "url":
        backend = RemoteBackend(where, api_key=api_key, reward=reward)
    else:
        backend = LocalBackend(where if kind == "config" else json.loads(where))
    reward_name, _, names = backend.describe()  # a service: raises now if it cannot answer
    clash = RESERVED_KEYS.intersection(names)
    if clash:
        raise ConfigError(f"component name(s) {sorted(clash)} clash with verl's result keys")
    return Target(backend, reward_name, tuple(names))


def cached_target(key: _Key) -> Target:
    """The cached :class:`Target` of ``key``, built once per process (a failed build is not
    cached, so the next call tries again)."""
    got = _targets.get(key)
    if got is None:
        with _targets_lock:
            got = _targets.get(key)
            if got is None:
                got = _targets[key] = _build(key)
    return got


async def acached_target(key: _Key) -> Target:
    # Building reads a file or asks a service (blocking): off the caller's loop, once.
    got = _targets.get(key)
    return got if got is not None else await asyncio.to_thread(cached_target, key)


def run_blocking(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` from sync code: ``asyncio.run`` when this thread has no running loop,
    else on a short-lived worker thread (a loop cannot be nested)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="rm-service-sync") as pool:
        return pool.submit(asyncio.run, coro).result()


async def grade_safely(target: Target, records: list[dict[str, Any]]) -> list[RecordResult]:
    """Grade, turning even an unexpected exception into unscored results: a trainer that
    cannot skip must get its fallback numbers, not a crashed step."""
    try:
        return await target.backend.agrade(records)
    except Exception as exc:
        logger.warning("rm-service: %d records unscored: %r", len(records), exc, exc_info=True)
        why = f"grading failed: {type(exc).__name__}: {exc}"
        names = dict.fromkeys((*target.names, target.reward))
        return [
            unscored_record(i, names, target.reward, why, "internal") for i in range(len(records))
        ]


def fallback_reward(value: Any, name: str) -> float:
    """``value`` as the reward an unscored sample trains with, or a ``ConfigError``: a finite
    number no greater than 1. Above every reward an answer can earn, a failure (a judge down, a
    bad record) would pay best, and the policy would learn to cause it. Below 0 it is a penalty
    for failing, which a user may choose on purpose."""
    out = finite(value, name)
    if out > 1.0:
        raise ConfigError(
            f"{name} must be at most 1, got {value!r}: an unscored sample trains with it, and "
            "above every reward an answer can earn, a failure would pay best"
        )
    return out


def finite(value: Any, name: str) -> float:
    try:
        out = float(value)
    except (TypeError, ValueError):
        out = math.nan
    if not math.isfinite(out) or isinstance(value, bool):
        raise ConfigError(f"{name} must be a finite number, got {value!r}")
    return out
