"""``rm-service serve``: run the HTTP service under uvicorn.

::

    rm-service serve --config reward.yaml [--config chat=judges.yaml ...] [--host 127.0.0.1]
                     [--port 8000] [--workers N]

Every config is loaded and validated before uvicorn starts, so a bad one fails start-up with a
message naming the file and the field, and exit status 1. The first config is the default reward;
an unnamed one is named after its file's stem. The default bind is 127.0.0.1: exposing the
service is a decision (``--host 0.0.0.0``), ideally with ``RM_SERVICE_API_KEY`` set.

With ``--workers N > 1`` uvicorn starts N processes, each building the app from
``RM_SERVICE_SERVE_SPEC`` (set here); admission limits and ``/metrics`` are then per worker.

Connections are bounded too (``--header-timeout``, ``--body-timeout``, ``--timeout-keep-alive``):
a client that sends nothing, or sends a request a byte at a time, is closed instead of holding a
socket for ever (see ``rm_service._http_protocol``).

The one entry point is the CLI (``rm_service.cli.main``); this module holds its options and the
uvicorn start-up. It imports neither FastAPI nor uvicorn at import time, so ``rm-service --help``
stays fast.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
from pathlib import Path
from typing import Any

from rm_service._exceptions import ConfigError
from rm_service._gc import freeze_startup_heap

__all__ = ["SPEC_ENV", "add_arguments", "app_from_env", "parse_configs", "serve_args"]

SPEC_ENV = "RM_SERVICE_SERVE_SPEC"

_log = logging.getLogger("rm_service.serve")

TIMEOUT_KEEP_ALIVE = 30.0
"""Seconds a connection may idle between requests (uvicorn's own default is 5). Longer than the
idle expiry of the usual client pools (httpx 5 s, aiohttp 15 s), so the client drops an idle
connection before the server does and never sends a request on one being closed; a trainer that
calls every few seconds keeps its connection; idle sockets still go within half a minute."""

HEADER_TIMEOUT = 10.0
"""Seconds for a request's head: a trainer's client sends it in one packet."""

BODY_TIMEOUT = 60.0
"""Seconds for a request's body: a 16 MiB batch (the default body limit) in 60 s needs only
~280 KB/s, far below any link between a trainer and its reward server."""

_SETTING_ARGS = {
    "max_records": "max_records",
    "max_body_bytes": "max_body_bytes",
    "max_in_flight": "max_in_flight",
    "max_queue": "max_queue",
    "deadline": "deadline",
    "get_reward_max_records": "get_reward_max_records",
    "get_reward_max_body_bytes": "get_reward_max_body_bytes",
    "get_reward_deadline": "get_reward_deadline",
    "unscored_fallback": "unscored_fallback",
    "label_field": "label_field",
    "shutdown_grace": "shutdown_grace",
}


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Add the ``serve`` options to ``p`` (the CLI's subparser, or a standalone parser)."""
    p.add_argument(
        "-c",
        "--config",
        action="append",
        metavar="[NAME=]FILE",
        help="a reward config; repeat for several, NAME=FILE to name one; the first is the "
        "default (env RM_SERVICE_CONFIG; with none, the embedded default reward)",
    )
    p.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    p.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
    p.add_argument(
        "--log-level",
        default="info",
        choices=("critical", "error", "warning", "info", "debug", "trace"),
        help="uvicorn log level (default info)",
    )
    p.add_argument(
        "--timeout-keep-alive",
        type=float,
        default=TIMEOUT_KEEP_ALIVE,
        metavar="S",
        help=f"close a connection idle this long between requests (default {TIMEOUT_KEEP_ALIVE:g})",
    )
    p.add_argument(
        "--header-timeout",
        type=float,
        default=HEADER_TIMEOUT,
        metavar="S",
        help="a request's head must arrive within S of the connection opening or of its first "
        f"byte, else 408 and close (default {HEADER_TIMEOUT:g})",
    )
    p.add_argument(
        "--body-timeout",
        type=float,
        default=BODY_TIMEOUT,
        metavar="S",
        help="a request's body must arrive within S of its head, else 408 and close "
        f"(default {BODY_TIMEOUT:g})",
    )
    p.add_argument("--max-records", type=int, help="records per request (default 1024)")
    p.add_argument("--max-body-bytes", type=int, help="request body size (default 16 MiB)")
    p.add_argument("--max-in-flight", type=int, help="records graded at once (default 4096)")
    p.add_argument(
        "--max-queue",
        type=int,
        help="records waiting for a free slot before 429; in-flight records do not count, and a "
        "request bigger than the queue may wait alone; 0: nothing waits (default 8192)",
    )
    p.add_argument("--deadline", type=float, help="per-request deadline, seconds (default 300)")
    p.add_argument(
        "--get-reward-max-records",
        type=int,
        help="records per /get_reward request: OpenRLHF <= 0.9.0 sends a whole rollout batch "
        "(default 16384)",
    )
    p.add_argument(
        "--get-reward-max-body-bytes", type=int, help="/get_reward body size (default 256 MiB)"
    )
    p.add_argument(
        "--get-reward-deadline",
        type=float,
        help="/get_reward deadline, seconds, below OpenRLHF's 180 s client timeout (default 170)",
    )
    p.add_argument(
        "--unscored-fallback",
        type=float,
        help="/get_reward reward of an unscored record, flagged rm_error=1; finite "
        "(env RM_SERVICE_UNSCORED_FALLBACK; default 0.0)",
    )
    p.add_argument("--label-field", help="record field /get_reward labels go to (default label)")
    p.add_argument(
        "--shutdown-grace",
        type=float,
        metavar="S",
        help="on shutdown, requests in flight get S more seconds to finish, then a 503; queued "
        "ones get a 503 at once (default 5)",
    )


def parse_configs(values: list[str] | None) -> dict[str, str]:
    """``["reward.yaml", "chat=judges.yaml"]`` → ``{"reward": "/abs/reward.yaml", "chat": ...}``.

    ``NAME=FILE`` names a config unless the whole value is an existing file (paths may contain
    ``=``).

    With no value and no ``RM_SERVICE_CONFIG``, the embedded default reward is served, named
    ``default``, and a warning says so.

    Raises:
        ConfigError: two configs with the same name.
    """
    if not values:
        env = os.environ.get("RM_SERVICE_CONFIG")
        values = [env] if env else []
    if not values:
        from rm_service._default import DEFAULT_CONFIG, DEFAULT_NOTICE, DEFAULT_REWARD_NAME

        _log.warning("%s", DEFAULT_NOTICE)
        return {DEFAULT_REWARD_NAME: str(DEFAULT_CONFIG)}
    out: dict[str, str] = {}
    for value in values:
        name, sep, path = value.partition("=")
        if not sep or not name or Path(value).exists():
            name, path = Path(value).stem, value
        if name in out:
            raise ConfigError(f"--config {value}: reward name {name!r} is used twice")
        out[name] = str(Path(path).resolve())
    return out


def _settings_overrides(args: argparse.Namespace) -> dict[str, Any]:
    return {
        key: getattr(args, attr)
        for attr, key in _SETTING_ARGS.items()
        if getattr(args, attr, None) is not None
    }


def serve_args(args: argparse.Namespace) -> int:
    """Validate the configs, then run uvicorn until it stops; returns the exit status.

    Raises:
        ConfigError: a bad config (names the file and field) or bad settings.
    """
    import uvicorn

    from rm_service._http_schemas import ServiceSettings
    from rm_service.app import create_app, load_rewards

    if not 0 <= args.port <= 65535:  # uvicorn took 99999 and listened on a random port
        raise ConfigError(f"--port must be from 0 to 65535, got {args.port}")
    if args.workers < 1:  # 0 ran one worker, silently
        raise ConfigError(f"--workers must be at least 1, got {args.workers}")
    configs = parse_configs(args.config)
    connection = _connection_options(args)
    overrides = _settings_overrides(args)
    try:
        settings = ServiceSettings.from_env(**overrides)
    except ValueError as exc:
        raise ConfigError(f"serve settings: {exc}") from None
    if args.workers > 1:
        load_rewards(configs)  # fail here, once, not in every worker
        spec = {"configs": configs, "settings": overrides, "freeze_heap": args.freeze_heap}
        os.environ[SPEC_ENV] = json.dumps(spec)
        uvicorn.run(
            "rm_service._serve:app_from_env",
            factory=True,
            host=args.host,
            port=args.port,
            workers=args.workers,
            log_level=args.log_level,
            **connection,
        )
    else:
        app = create_app(configs, settings)
        if args.freeze_heap:  # the console script's own process
            freeze_startup_heap()
        uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level, **connection)
    return 0


def _connection_options(args: argparse.Namespace) -> dict[str, Any]:
    """uvicorn's arguments for the connection deadlines (see ``rm_service._http_protocol``).

    Raises:
        ConfigError: a deadline that is not a positive number of seconds.
    """
    from rm_service._http_protocol import protocol

    for attr in ("timeout_keep_alive", "header_timeout", "body_timeout"):
        value = getattr(args, attr)
        if not (value > 0 and math.isfinite(value)):
            flag = "--" + attr.replace("_", "-")
            raise ConfigError(f"{flag} must be a positive number of seconds, got {value!r}")
    return {
        "http": protocol(args.header_timeout, args.body_timeout),
        "timeout_keep_alive": args.timeout_keep_alive,
    }


def app_from_env() -> Any:
    """The app a uvicorn worker builds from ``RM_SERVICE_SERVE_SPEC`` (``--workers N``)."""
    from rm_service._http_schemas import ServiceSettings
    from rm_service.app import create_app

    spec = json.loads(os.environ[SPEC_ENV])
    app = create_app(spec["configs"], ServiceSettings.from_env(**spec["settings"]))
    if spec.get("freeze_heap"):  # the worker is a process of its own, started by the script's
        freeze_startup_heap()
    return app
