"""The rewards a service serves, and what serving them opens.

One idea: the service's rewards as loaded objects, apart from HTTP. Each reward is loaded and
built once (:func:`load_rewards`), described for ``GET /graders``, and its graders are warmed,
probed and closed only through the grader contract (``graders._base.GraderContract``): ``aload``
at start-up, ``judges()`` for ``/readyz``'s endpoint probes, ``aclose`` at shutdown.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast
from urllib.parse import urlsplit

import httpx

from aggregators import WeightedSumAggregator
from graders._base import GraderContract, contract, load_all, takes_judge
from rm_service._config import RewardConfig, build_runner, load_config
from rm_service._runner import GradingRunner
from rm_service.models._factory import JudgeSpec
from rm_service.models._http1 import endpoint
from rm_service.models._openai import OpenAIChatModel
from rm_service.models._rm_client import RemoteRMClient

__all__ = [
    "RewardEntry",
    "RewardSource",
    "close_resources",
    "describe",
    "load_rewards",
    "probe_judges",
    "warm_up",
]

_log = logging.getLogger("rm_service.app")

RewardSource = RewardConfig | GradingRunner | str | Path | dict[str, Any]


@dataclass(frozen=True)
class RewardEntry:
    """A configured reward: its runner, and its config when it came from one."""

    name: str
    runner: GradingRunner
    config: RewardConfig | None = None
    source: str = "<runner>"


def load_rewards(rewards: Mapping[str, RewardSource] | RewardSource) -> dict[str, RewardEntry]:
    """Load and validate every reward; the first is the default.

    A single unnamed source is named after its file's stem (``default`` for a dict or runner).

    Raises:
        ConfigError: a config is invalid; the message names the file and the field.
    """
    sources: Mapping[str, RewardSource]
    if isinstance(rewards, Mapping) and not _is_config_dict(rewards):
        sources = rewards
    else:
        sources = {_default_name(rewards): cast(RewardSource, rewards)}
    if not sources:
        raise ValueError("at least one reward config is needed")
    out: dict[str, RewardEntry] = {}
    for name, src in sources.items():
        if isinstance(src, GradingRunner):
            out[name] = RewardEntry(name, src)
            continue
        cfg = src if isinstance(src, RewardConfig) else load_config(src)
        label = str(src) if isinstance(src, str | Path) else "<config>"
        out[name] = RewardEntry(name, build_runner(cfg), cfg, label)
    return out


def _is_config_dict(obj: Any) -> bool:
    return isinstance(obj, dict) and "graders" in obj


def _default_name(src: Any) -> str:
    return Path(src).stem if isinstance(src, str | Path) else "default"


def _described_mapper(mapper: Any) -> dict[str, str] | str | None:
    """A grader's mapper in ``GET /graders``: its paths, ``None`` for none, or ``"callable"``
    for code (a runner built in Python). Not ``None`` for code: a client reading the description
    (``described_reads``: the trainer's field check, OpenRLHF's label routing) then took the
    grader's own field names as what the records must hold, and refused a service whose mapper
    derives them."""
    if mapper is None:
        return None
    return dict(mapper) if isinstance(mapper, Mapping) else "callable"


def describe(entry: RewardEntry) -> dict[str, Any]:
    runner = entry.runner
    graders: dict[str, Any] = {}
    for name, gc in runner.grader_configs.items():
        spec = entry.config.graders.get(name) if entry.config else None
        graders[name] = {
            "type": spec.type if spec else type(gc.grader).__name__,
            "required_fields": list(contract(gc.grader).required_fields),
            "mapper": _described_mapper(gc.mapper),
            "call_timeout": gc.call_timeout or runner.call_timeout,
        }
    aggregators = []
    weights: dict[str, float] | None = None
    specs = entry.config.aggregators if entry.config else []
    for i, agg in enumerate(runner.aggregators):
        # No spec: an aggregator built in Python, or the runner's default equal-weight sum.
        spec_a = specs[i] if i < len(specs) else None
        params = spec_a.params() if spec_a else {}
        if spec_a is None and isinstance(agg, WeightedSumAggregator) and agg.weights:
            params = {"weights": agg.weights}
        aggregators.append(
            {
                "name": agg.name,
                "type": spec_a.type if spec_a else type(agg).__name__,
                "components": list(getattr(agg, "components", None) or []),
                **params,
            }
        )
        if agg.name == runner.reward_name and isinstance(params.get("weights"), Mapping):
            weights = dict(params["weights"])
    return {
        "reward": runner.reward_name,
        "source": entry.source,
        "graders": graders,
        "aggregators": aggregators,
        "weights": weights,
    }


def _graders(entries: Iterable[RewardEntry]) -> Iterator[GraderContract]:
    """Every grader of every reward, committee members included (recursively); each once."""
    seen: set[int] = set()
    stack = [contract(gc.grader) for e in entries for gc in e.runner.grader_configs.values()]
    while stack:
        g = stack.pop()
        if id(g) in seen:
            continue
        seen.add(id(g))
        yield g
        stack.extend(contract(m) for m in g.members)


def _judge_endpoints(entries: Iterable[RewardEntry]) -> dict[str, tuple[str, dict[str, str], int]]:
    """``{endpoint: (probe URL, headers, ok below this status)}`` of every remote backend: the
    judge endpoints the configs declare (``GET {base_url}/models``), and the built backends of
    live graders (committee members included): an
    :class:`~rm_service.models._openai.OpenAIChatModel`, e.g. of a runner passed in directly,
    or a remote reward model's server (its own probe)."""

    default_base = os.environ.get("OPENAI_BASE_URL") or "https://api.openai.com/v1"
    found: dict[str, tuple[str, dict[str, str], int]] = {}

    def judge(base: str, headers: dict[str, str]) -> None:
        base = base.rstrip("/")
        found.setdefault(base, (endpoint(base, "models"), headers, 400))

    entries = list(entries)
    for entry in entries:
        cfg = entry.config
        if cfg is None:
            continue
        for spec in cfg.graders.values():
            if not takes_judge(spec.type):
                continue
            js = spec.judge or cfg.judge or JudgeSpec()
            if js.resolved_backend() != "openai":
                continue  # the embedded model: nothing to reach
            key = os.environ.get(js.api_key_env)
            judge(js.base_url or default_base, {"Authorization": f"Bearer {key}"} if key else {})
    for grader in _graders(entries):
        for model in grader.judges():
            if isinstance(model, OpenAIChatModel):
                judge(model.base_url or default_base, model.probe_headers)
            elif isinstance(model, RemoteRMClient):
                found.setdefault(model.url, model.probe)
    return found


async def close_resources(entries: Iterable[RewardEntry]) -> None:
    """Close what serving opened, through each grader's ``aclose`` (judge clients on this loop,
    judge caches' SQLite files; both reopen lazily if the graders are used again). Each grader
    is guarded: a failing close must not stop the others (or the server's shutdown). A
    committee closes its own members, so only the configured graders are asked, each once."""
    seen: set[int] = set()
    for gc in (gc for e in entries for gc in e.runner.grader_configs.values()):
        grader = contract(gc.grader)
        if id(gc.grader) in seen:
            continue
        seen.add(id(gc.grader))
        try:
            await grader.aclose()
        except Exception as exc:  # shutting down: report, go on
            _log.warning("closing %r failed: %s: %s", grader, type(exc).__name__, exc)
    # Not the math worker pool: it is process-wide, possibly in use by other code in the same
    # process (an in-process trainer sharing a runner), and it is stopped at exit anyway.


async def warm_up(entries: Iterable[RewardEntry]) -> dict[str, str]:
    """Start now what the first request would otherwise wait for; ``{grader: error}`` of what
    failed (also logged as warnings).

    The math pool's workers are processes that import math-verify, and embedding and local
    judge models load on first use, so a first request would be slow. Here, in the lifespan's
    background (``/readyz`` says not ready until it is done), each configured grader's
    ``aload()`` (see ``graders._base.GraderContract``; a committee loads its members) starts
    them. A request that comes meanwhile just shares what is starting.
    """
    graders: dict[str, Any] = {}
    for entry in entries:
        for name, gc in entry.runner.grader_configs.items():
            key = name if name not in graders else f"{entry.name}.{name}"  # same name, two rewards
            graders[key] = gc.grader
    start = time.perf_counter()
    errors = await load_all(graders)
    for name, error in errors.items():
        _log.warning("warm-up of grader %r failed: %s", name, error)
    _log.info("warm-up done in %.2fs: %s", time.perf_counter() - start, ", ".join(graders) or "-")
    return errors


async def probe_judges(entries: Any, probe_timeout: float) -> dict[str, dict[str, Any]]:
    endpoints = _judge_endpoints(entries)
    if not endpoints:
        return {}

    async def probe(
        client: httpx.AsyncClient, url: str, headers: dict[str, str], ok_below: int
    ) -> dict[str, Any]:
        try:
            resp = await client.get(url, headers=headers)
        except httpx.HTTPError as exc:
            return {"ok": False, "detail": f"{type(exc).__name__}: {exc}"}
        path = urlsplit(url).path or "/"
        return {"ok": resp.status_code < ok_below, "detail": f"GET {path} -> {resp.status_code}"}

    async with httpx.AsyncClient(timeout=probe_timeout) as client:
        got = await asyncio.gather(*(probe(client, *p) for p in endpoints.values()))
    return dict(zip(endpoints, got, strict=True))
