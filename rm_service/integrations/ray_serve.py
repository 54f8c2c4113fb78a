"""The HTTP service as a Ray Serve application, for clusters that already run Ray (KubeRay's
``RayService``): the same FastAPI app as ``rm-service serve``, one per replica, with autoscaling.

::

    from ray import serve
    from rm_service.integrations.ray_serve import deployment

    serve.run(deployment("reward.yaml", min_replicas=1, max_replicas=8), route_prefix="/")

or from a Serve config file (KubeRay ``serveConfigV2``), naming the builder :func:`app`::

    applications:
      - name: rm-service
        route_prefix: /
        import_path: rm_service.integrations.ray_serve:app
        args: {config: /config/reward.yaml, max_replicas: 8}   # or RM_SERVICE_CONFIG in env_vars
        runtime_env: {env_vars: {OPENAI_API_KEY: ..., OPENAI_BASE_URL: ...}}

Why it is built this way:

* **The app is built in the replica,** not in the driver: ``@serve.ingress()`` without an app
  and a ``__serve_build_asgi_app__`` method (Ray 2.60's late-bound ingress). Ray would otherwise
  pickle a built app, with its judge clients and caches, and ship it to every replica.
* **The lifespan runs in the replica.** Serve runs the app's lifespan with uvicorn's
  ``LifespanOn`` after building it (``ASGIAppReplicaWrapper._run_asgi_lifespan_startup``) and its
  shutdown in the replica's ``__del__``: warm-up (math workers, local models) starts there, and
  judge clients and caches are closed when a replica stops.
* **A bad config fails here,** in the caller, naming the file and the field, before any replica
  starts (the replicas load the same files again: they must exist on every node, as in an image).
* **Scale on requests in flight.** A request is a batch that may take up to its deadline (170 s
  for ``/get_reward``), so replicas are added on ongoing requests, not on latency; the service's
  own admission still bounds the records a replica grades at once and answers 429 past its queue.
* **Downscaling never drops a grading.** A stopping replica gets ``graceful_shutdown_timeout_s``
  (default: longer than the ``/get_reward`` deadline) to finish what it holds, since a verdict
  paid for is never dropped.

Settings are read in each replica from its environment, as ``rm-service serve`` reads them
(``RM_SERVICE_API_KEY``, ...): pass them with the runtime environment's ``env_vars``.
This module imports Ray; ``import rm_service`` does not import it.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from pydantic.warnings import PydanticDeprecatedSince20

from rm_service._config import load_config
from rm_service._http_schemas import OPENRLHF_CLIENT_TIMEOUT
from rm_service._serve import parse_configs
from rm_service.app import create_app

with warnings.catch_warnings():
    # Ray 2.60's Serve models use a pydantic v1 idiom that pydantic 2 deprecates, warning on
    # import; nothing the caller can act on.
    warnings.simplefilter("ignore", PydanticDeprecatedSince20)
    from ray import serve
    from ray.serve import Application

__all__ = ["DEFAULT_NAME", "RewardService", "app", "deployment", "serve"]

DEFAULT_NAME = "rm-service"

ConfigPaths = str | os.PathLike[str] | Mapping[str, str | os.PathLike[str]]


@serve.ingress()
class RewardService:
    """One replica: the FastAPI app of :func:`rm_service.app.create_app` over ``rewards``
    (name → config file), built when the replica starts."""

    def __init__(self, rewards: Mapping[str, str]) -> None:
        self.rewards = dict(rewards)

    def __serve_build_asgi_app__(self) -> FastAPI:
        return create_app(self.rewards)


def _rewards(config_path: ConfigPaths | None) -> dict[str, str]:
    """Name → absolute config path, each validated now (a bad one raises ``ConfigError`` naming
    the file and the field). ``None``: ``RM_SERVICE_CONFIG``, else the embedded default."""
    if config_path is None:
        specs = None
    elif isinstance(config_path, Mapping):
        specs = [f"{name}={os.fspath(path)}" for name, path in config_path.items()]
    else:
        specs = [os.fspath(config_path)]
    rewards = parse_configs(specs)
    for path in rewards.values():
        load_config(Path(path))
    return rewards


def deployment(
    config_path: ConfigPaths | None = None,
    *,
    min_replicas: int = 1,
    max_replicas: int = 4,
    initial_replicas: int | None = None,
    target_ongoing_requests: float = 4.0,
    max_ongoing_requests: int = 16,
    max_queued_requests: int = -1,
    num_cpus: float = 1.0,
    graceful_shutdown_timeout_s: float = OPENRLHF_CLIENT_TIMEOUT + 10.0,
    name: str = DEFAULT_NAME,
    ray_actor_options: Mapping[str, Any] | None = None,
) -> Application:
    """The service as a Serve application, ready for ``serve.run``.

    ``config_path``: one reward config, or name → config (the first is the default reward, as
    ``serve --config NAME=FILE``); ``None`` reads ``RM_SERVICE_CONFIG``. Replicas scale between
    ``min_replicas`` and ``max_replicas`` to keep ``target_ongoing_requests`` requests per
    replica; Serve queues a replica's requests past ``max_ongoing_requests``, up to
    ``max_queued_requests`` per caller (``-1``: no bound; past it Serve answers 503).
    ``num_cpus`` per replica (its math workers' processes are not Ray tasks, not counted);
    ``ray_actor_options`` is passed on (``num_gpus`` for local judges, ``runtime_env``...).
    """
    if not 0 <= min_replicas <= max_replicas or max_replicas < 1:
        raise ValueError(
            f"need 0 <= min_replicas <= max_replicas and max_replicas >= 1, got "
            f"min_replicas={min_replicas}, max_replicas={max_replicas}"
        )
    if not 0 < target_ongoing_requests <= max_ongoing_requests:
        raise ValueError(
            f"need 0 < target_ongoing_requests <= max_ongoing_requests, got "
            f"{target_ongoing_requests} and {max_ongoing_requests}"
        )
    autoscaling: dict[str, Any] = {
        "min_replicas": min_replicas,
        "max_replicas": max_replicas,
        "target_ongoing_requests": target_ongoing_requests,
    }
    if initial_replicas is not None:
        autoscaling["initial_replicas"] = initial_replicas
    actor_options = {"num_cpus": num_cpus, **(ray_actor_options or {})}
    dep = serve.deployment(
        name=name,
        autoscaling_config=autoscaling,
        max_ongoing_requests=max_ongoing_requests,
        max_queued_requests=max_queued_requests,
        graceful_shutdown_timeout_s=graceful_shutdown_timeout_s,
        ray_actor_options=actor_options,
    )(RewardService)
    return dep.bind(_rewards(config_path))


_INT_ARGS = (
    "min_replicas",
    "max_replicas",
    "initial_replicas",
    "max_ongoing_requests",
    "max_queued_requests",
)
_FLOAT_ARGS = ("target_ongoing_requests", "num_cpus", "graceful_shutdown_timeout_s")


def app(args: dict[str, Any]) -> Application:
    """The application builder a Serve config's ``import_path`` names
    (``rm_service.integrations.ray_serve:app``); ``args`` is the config's ``args:``.

    ``config``: a path, ``NAME=PATH``, or a list of them (``RM_SERVICE_CONFIG`` when absent);
    the other keys are :func:`deployment`'s keyword arguments. Values may be strings.
    """
    args = dict(args)
    configs = args.pop("config", None)
    kwargs: dict[str, Any] = {}
    for key in _INT_ARGS:
        if key in args:
            kwargs[key] = int(args.pop(key))
    for key in _FLOAT_ARGS:
        if key in args:
            kwargs[key] = float(args.pop(key))
    if "name" in args:
        kwargs["name"] = str(args.pop("name"))
    if args:
        known = ["config", *_INT_ARGS, *_FLOAT_ARGS, "name"]
        raise ValueError(f"unknown args {sorted(args)} for {__name__}:app; known: {known}")
    if isinstance(configs, str):
        configs = [configs]
    specs = None if configs is None else [str(c) for c in configs]
    rewards = parse_configs(specs)
    return deployment(rewards, **kwargs)
