"""``POST /grade`` per record, in process: where a request's CPU goes, layer by layer.

    python bench/grade_path.py                  # 3 rounds of each layer, 64-record requests
    python bench/grade_path.py --profile grade  # plus a cProfile of one layer (top 25 by tottime)

No socket and no HTTP client: the ASGI app is called directly with the request body, so the
figures are the server's own CPU per record. Layers, each timed over the same requests:

* ``agrade``: ``GradingRunner.agrade`` with three no-op graders (sync functions returning 1.0)
  and the weighted sum, as ``bench/http_load.py``'s no-op row configures them;
* ``grade``: the whole ``POST /grade`` of ``rm-service serve``'s app with that config: request
  validation, admission, the runner, the wire records, the summary, metrics and the JSON body;
* ``grade-rules``: the same with the rule graders (format, number, length) of
  ``examples/rules.yaml``;
* ``number``: :class:`~graders.NumberGrader` alone on each record, its ``evaluate`` called
  directly (no runner): the rule graders' largest part;
* ``echo``: a bare FastAPI endpoint that validates the same request model and answers a body of
  the same shape (``bench/http_load.py``'s echo), the floor any FastAPI service pays.

Issue 14's target is ``grade`` at 15 us a record or less.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import platform
import pstats
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench._asgi import asgi_call  # noqa: E402
from bench.http_load import CONFIG, NOOP_CONFIG, _echo_app, _records  # noqa: E402

LAYERS = ("agrade", "grade", "grade-rules", "number", "echo")


async def _asgi_post(app: Any, path: str, body: bytes) -> tuple[int, bytes]:
    """One POST through the ASGI interface; the status and the response body."""
    status, _, data = await asgi_call(app, "POST", path, body)
    return status, data


def _app(config: dict[str, Any]) -> Any:
    from rm_service._http_schemas import ServiceSettings
    from rm_service.app import create_app

    # Default limits, no API key (the bench must not pick one up from the environment).
    return create_app(config, ServiceSettings())


def build(layer: str) -> Any:
    """An async callable grading one request's records on ``layer``."""
    if layer == "agrade":
        from rm_service._config import load_runner

        runner = load_runner(NOOP_CONFIG)

        async def call(records: list[dict[str, Any]], body: bytes) -> None:
            await runner.agrade(records)

        return call
    if layer == "number":
        from graders import NumberGrader

        evaluate = NumberGrader().evaluate

        async def each(records: list[dict[str, Any]], body: bytes) -> None:
            for r in records:
                evaluate({"response": r["response"], "reference_response": r["ground_truth"]})

        return each
    if layer == "echo":
        app = _echo_app("model")
    else:
        app = _app(NOOP_CONFIG if layer == "grade" else CONFIG)

    async def post(records: list[dict[str, Any]], body: bytes) -> None:
        status, data = await _asgi_post(app, "/grade", body)
        if status != 200:
            raise SystemExit(f"{layer}: HTTP {status}: {data[:300]!r}")

    return post


async def _measure(layer: str, n_requests: int, per_request: int, rounds: int) -> list[float]:
    call = build(layer)
    records = _records(per_request)
    body = json.dumps({"records": records}).encode()
    for _ in range(20):  # warm: imports, caches, the first metrics series
        await call(records, body)
    figures = []
    for _ in range(rounds):
        cpu = time.process_time()
        for _ in range(n_requests):
            await call(records, body)
        figures.append((time.process_time() - cpu) / (n_requests * per_request) * 1e6)
    return figures


async def _profile(layer: str, n_requests: int, per_request: int, sort: str = "tottime") -> None:
    call = build(layer)
    records = _records(per_request)
    body = json.dumps({"records": records}).encode()
    for _ in range(20):
        await call(records, body)
    prof = cProfile.Profile()
    prof.enable()
    for _ in range(n_requests):
        await call(records, body)
    prof.disable()
    pstats.Stats(prof).sort_stats(sort).print_stats(25)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--requests", type=int, default=300, help="requests per round (default 300)")
    p.add_argument("--records", type=int, default=64, help="records per request (default 64)")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--layers", nargs="+", default=list(LAYERS))
    p.add_argument("--profile", choices=LAYERS)
    p.add_argument("--sort", default="tottime", help="the profile's order (default tottime)")
    args = p.parse_args(argv)
    print(f"$ python bench/grade_path.py {' '.join(sys.argv[1:] if argv is None else argv)}")
    print(f"machine: {platform.machine()}, Python {platform.python_version()}")
    print(f"{args.requests} requests of {args.records} records per round; CPU us per record")
    for layer in args.layers:
        figures = asyncio.run(_measure(layer, args.requests, args.records, args.rounds))
        print(f"{layer:12s} " + "  ".join(f"{f:6.1f}" for f in figures))
    if args.profile:
        asyncio.run(_profile(args.profile, args.requests, args.records, args.sort))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
