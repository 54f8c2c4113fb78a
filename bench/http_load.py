"""HTTP face load test: ``POST /grade`` (rule graders) against a bare FastAPI echo endpoint.

    python bench/http_load.py              # 2 s warm-up + 10 s measured per server, C = 16
    python bench/http_load.py --no-noop    # without the no-op-grader /grade row
    python bench/http_load.py --quick      # 1 s warm-up + 3 s measured, a smoke run
    python bench/http_load.py --conc 16 --duration 10 --warmup 2 --records 64 --rounds 1

What: requests/s, records/s and p50/p99 latency of ``POST /grade`` with 64 records per request,
and the same figures for an echo endpoint that does only what any FastAPI service does with that
body: parse it into the same pydantic model (``GradeRequest``; ``--echo raw`` parses it with
``await request.json()`` instead) and return a JSON of the same shape and a similar size. The
ratio grade/echo says how much of the HTTP floor the service keeps (target: >= 60%).

Rule graders only (``format`` think_answer, ``number`` with ``reference_response:
ground_truth``, ``length_penalty``): the ``math`` grader runs math-verify in a process pool, so
with it the figure would measure the pool and the sympy work, not the HTTP face.

A third server (skip it with ``--no-noop``) is the same ``/grade`` with the three graders
replaced by no-ops (:func:`noop`, a sync function returning 1.0, so inline like the rule
graders) under the same names and aggregator: its ratio to the echo is the service's own overhead
(validation, admission, runner, aggregation, metrics, response), apart from what the graders cost.

How: each server runs in its own subprocess (this file with ``--serve-child``), built like
``rm-service serve`` builds it (``create_app(config, settings)``, the start-up heap frozen, then
``uvicorn.run(app, ...)``; the echo's process too, so both sides run alike)
with 1 worker on 127.0.0.1, a free port, ``--log-level warning`` and no access log. The load
generator runs here, in the parent, with aiohttp: C workers each post in a loop (keep-alive, one
connection each) for the warm-up, then for the measured duration; every request is timed from
send to the last body byte, and every ``/grade`` response is checked (status 200, 64 results).
Each phase is bounded in time and in count (``--max-requests``), every request has a timeout,
and the servers are killed in a ``finally`` (they also exit when this process's pipe closes).
Servers are measured one at a time; the others idle. Client and server share the machine's
cores, so the client's CPU is reported too. All traffic goes to 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# At module level: the echo endpoints' annotations are strings (``from __future__ import
# annotations``) that FastAPI resolves in this module's globals.
from fastapi import Request  # noqa: E402

from rm_service._http_schemas import GradeRequest  # noqa: E402
from rm_service._wire import USAGE_KEYS  # noqa: E402
from tests.app.uvicorn_server import free_port  # noqa: E402

HOST = "127.0.0.1"
SAMPLE = ROOT / "examples" / "math_sample.jsonl"

CONFIG: dict[str, Any] = yaml.safe_load(
    (Path(__file__).resolve().parents[1] / "examples" / "rules.yaml").read_text()
)


def noop(response: str) -> float:
    """A grader that does no work: the no-op row's stand-in for each rule grader."""
    return 1.0


# The rule config with every grader a no-op (same names, so the same aggregator and response).
NOOP_CONFIG: dict[str, Any] = {
    **CONFIG,
    "graders": {name: {"type": "bench.http_load:noop"} for name in CONFIG["graders"]},
}


# --- server side (child process) ----------------------------------------------------------------


def _echo_app(mode: str) -> Any:
    from fastapi import FastAPI
    from fastapi.responses import JSONResponse

    names = [*CONFIG["graders"], "reward"]
    reason = "echo: a reason about as long as a grader's"

    def shaped(records: list[dict[str, Any]]) -> dict[str, Any]:
        # Same shape as a /grade response (the wire record and the summary), so a similar byte size.
        results = [
            {
                "index": i,
                "id": rec.get("id"),
                "reward": 0.5,
                "status": "ok",
                "scores": dict.fromkeys(names, 0.5),
                "reasons": dict.fromkeys(names, reason),
                "errors": {},
                "usage": dict.fromkeys(USAGE_KEYS, 0),
            }
            for i, rec in enumerate(records)
        ]
        summary = {
            "n": len(records),
            "ok": len(records),
            "unscored": 0,
            "error": 0,
            "means": dict.fromkeys(names, 0.5),
            "unscored_records_by_kind": {},
            "unscored_components_by_kind": {},
            "unscored_by_kind": {},
            "usage": dict.fromkeys(USAGE_KEYS, 0),
            "latency_s": 0.0,
        }
        return {"reward": "echo", "results": results, "summary": summary}

    app = FastAPI(title="echo")

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    if mode == "model":

        @app.post("/grade")
        async def echo_model(body: GradeRequest) -> Any:
            return shaped(body.records)

    else:

        @app.post("/grade")
        async def echo_raw(request: Request) -> Any:
            body = await request.json()
            return JSONResponse(shaped(body["records"]))

    return app


def _die_with_parent() -> None:
    """Exit when the parent's end of stdin closes (the parent died or is done)."""

    def watch() -> None:
        sys.stdin.buffer.read()
        os._exit(0)

    threading.Thread(target=watch, daemon=True).start()


def serve_child(kind: str, port: int, config_path: str, echo: str) -> None:
    import uvicorn

    _die_with_parent()
    if kind in ("grade", "noop"):
        from rm_service._http_schemas import ServiceSettings
        from rm_service.app import create_app

        config: Any = config_path if kind == "grade" else NOOP_CONFIG
        # Default limits, no API key (the bench must not pick one up from the environment).
        app = create_app(config, ServiceSettings())
    else:
        app = _echo_app(echo)
    from rm_service._gc import freeze_startup_heap

    freeze_startup_heap()  # as rm-service serve does before uvicorn.run
    uvicorn.run(app, host=HOST, port=port, log_level="warning", access_log=False, workers=1)


# --- client side (parent process) ---------------------------------------------------------------


def _start(kind: str, config_path: str, echo: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    cmd = [sys.executable, str(Path(__file__).resolve()), "--serve-child", kind]
    cmd += ["--port", str(port), "--config-path", config_path, "--echo", echo]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdin=subprocess.PIPE)
    base = f"http://{HOST}:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{kind} server exited with status {proc.returncode}")
        try:
            with urllib.request.urlopen(f"{base}/healthz", timeout=1) as resp:
                if resp.status == 200:
                    return proc, base
        except OSError:
            time.sleep(0.1)
    _stop(proc)
    raise RuntimeError(f"{kind} server did not answer /healthz within 60 s")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
    if proc.stdin is not None:
        proc.stdin.close()


def _proc_cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _records(n: int) -> list[dict[str, Any]]:
    lines = [json.loads(x) for x in SAMPLE.read_text().splitlines() if x.strip()]
    return [{**lines[i % len(lines)], "id": f"r{i}"} for i in range(n)]


def _quantile(sorted_xs: list[float], q: float) -> float:
    if not sorted_xs:
        return float("nan")
    return sorted_xs[min(len(sorted_xs) - 1, int(q * len(sorted_xs)))]


async def _load(
    url: str,
    body: bytes,
    n_records: int,
    conc: int,
    warmup: float,
    duration: float,
    cap: int,
    server_cpu: Any = None,
) -> dict[str, Any]:
    import aiohttp

    headers = {"Content-Type": "application/json"}
    lat: list[float] = []
    stats = {"ok": 0, "bad_status": 0, "bad_body": 0, "exc": 0, "sent": 0, "bytes": 0}
    measuring = False
    stop_at = 0.0

    async def worker(session: aiohttp.ClientSession) -> None:
        while time.perf_counter() < stop_at and stats["sent"] < cap:
            if measuring:
                stats["sent"] += 1
            t0 = time.perf_counter()
            try:
                async with session.post(url, data=body, headers=headers) as resp:
                    raw = await resp.read()
                    status = resp.status
            except (aiohttp.ClientError, TimeoutError):
                if measuring:
                    stats["exc"] += 1
                continue
            dt = time.perf_counter() - t0
            if not measuring:
                continue
            lat.append(dt)
            stats["bytes"] = len(raw)
            if status != 200:
                stats["bad_status"] += 1
                continue
            try:
                got = json.loads(raw)
                good = len(got["results"]) == n_records
            except (ValueError, KeyError, TypeError):
                good = False
            stats["ok" if good else "bad_body"] += 1

    timeout = aiohttp.ClientTimeout(total=30)
    connector = aiohttp.TCPConnector(limit=conc)
    async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
        stop_at = time.perf_counter() + warmup
        await asyncio.gather(*(worker(session) for _ in range(conc)))
        measuring = True
        cpu0 = time.process_time()
        server0 = server_cpu() if server_cpu is not None else 0.0
        t0 = time.perf_counter()
        stop_at = t0 + duration
        await asyncio.gather(*(worker(session) for _ in range(conc)))
        wall = time.perf_counter() - t0
        client_cpu = time.process_time() - cpu0
        measured_server_cpu = server_cpu() - server0 if server_cpu is not None else 0.0
    lat.sort()
    done = len(lat)
    return {
        **stats,
        "done": done,
        "wall": wall,
        "rps": done / wall,
        "p50_ms": _quantile(lat, 0.50) * 1e3,
        "p99_ms": _quantile(lat, 0.99) * 1e3,
        "client_cpu": client_cpu,
        "server_cpu_measured": measured_server_cpu,
    }


def _measure(
    kind: str, proc: subprocess.Popen[bytes], base: str, body: bytes, args: argparse.Namespace
) -> dict[str, Any]:
    cpu0 = _proc_cpu_s(proc.pid)
    res = asyncio.run(
        _load(
            f"{base}/grade",
            body,
            args.records,
            args.conc,
            args.warmup,
            args.duration,
            args.max_requests,
            lambda: _proc_cpu_s(proc.pid),
        )
    )
    res["server_cpu"] = _proc_cpu_s(proc.pid) - cpu0  # includes the warm-up
    res["kind"] = kind
    return res


def _machine() -> str:
    model = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return (
        f"{cores} cores ({model}), Python {platform.python_version()} "
        f"({platform.python_implementation()}), {platform.system()} {platform.release()}"
    )


def _versions() -> str:
    import importlib.metadata as md

    out = []
    for pkg in ("fastapi", "starlette", "pydantic", "uvicorn", "aiohttp", "h11", "httptools"):
        try:
            out.append(f"{pkg} {md.version(pkg)}")
        except md.PackageNotFoundError:
            out.append(f"{pkg} -")
    try:
        import uvloop  # noqa: F401

        out.append("uvloop yes")
    except ImportError:
        out.append("uvloop -")
    return ", ".join(out)


def _per_core(r: dict[str, Any], n_records: int) -> str:
    """Records graded per second of the server's CPU (one core fully busy): what a replica
    does per core, whatever the client on the same cores leaves it."""
    cpu = r["server_cpu_measured"]
    return f"{r['done'] * n_records / cpu:.0f}" if cpu > 0 else "-"


def _row(label: str, r: dict[str, Any], n_records: int) -> str:
    fails = r["bad_status"] + r["bad_body"] + r["exc"]
    return (
        f"| {label} | {r['done']} | {r['rps']:.1f} | {r['rps'] * n_records:.0f} | "
        f"{r['p50_ms']:.1f} | {r['p99_ms']:.1f} | {r['bytes'] / 1024:.1f} | "
        f"{r['server_cpu']:.1f} | {r['client_cpu']:.1f} | {fails} | {_per_core(r, n_records)} |"
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="1 s warm-up + 3 s measured")
    p.add_argument("--conc", type=int, default=16, help="client concurrency (default 16)")
    p.add_argument("--records", type=int, default=64, help="records per request (default 64)")
    p.add_argument("--duration", type=float, default=10.0, help="measured seconds (default 10)")
    p.add_argument("--warmup", type=float, default=2.0, help="warm-up seconds (default 2)")
    p.add_argument("--rounds", type=int, default=1, help="echo/grade pairs measured (default 1)")
    p.add_argument(
        "--max-requests", type=int, default=200_000, help="cap per measured phase (default 200000)"
    )
    p.add_argument(
        "--echo",
        choices=("model", "raw"),
        default="model",
        help="echo parses the body with GradeRequest (model, default) or request.json() (raw)",
    )
    p.add_argument("--no-noop", action="store_true", help="skip the /grade row with no-op graders")
    p.add_argument("--serve-child", choices=("grade", "noop", "echo"), help=argparse.SUPPRESS)
    p.add_argument("--port", type=int, help=argparse.SUPPRESS)
    p.add_argument("--config-path", help=argparse.SUPPRESS)
    args = p.parse_args(argv)

    if args.serve_child:
        serve_child(args.serve_child, args.port, args.config_path, args.echo)
        return 0
    if args.quick:
        args.duration, args.warmup = 3.0, 1.0

    cmd = "python bench/http_load.py" + (" " + " ".join(sys.argv[1:]) if sys.argv[1:] else "")
    records = _records(args.records)
    body = json.dumps({"records": records}).encode()
    procs: list[subprocess.Popen[bytes]] = []
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        config_path = str(Path(tmp) / "rules.json")
        Path(config_path).write_text(json.dumps(CONFIG))
        try:
            echo_proc, echo_base = _start("echo", config_path, args.echo)
            procs.append(echo_proc)
            servers = [("grade", *_start("grade", config_path, args.echo))]
            if not args.no_noop:
                servers.append(("noop", *_start("noop", config_path, args.echo)))
            procs += [proc for _, proc, _ in servers]
            for _ in range(args.rounds):
                rows.append(_measure("echo", echo_proc, echo_base, body, args))
                for kind, proc, base in servers:
                    rows.append(_measure(kind, proc, base, body, args))
        finally:
            for proc in procs:
                _stop(proc)

    def mean_rps(kind: str) -> float:
        got = [r["rps"] for r in rows if r["kind"] == kind]
        return sum(got) / len(got) if got else float("nan")

    echo_rows = [r for r in rows if r["kind"] == "echo"]
    grade_rows = [r for r in rows if r["kind"] != "echo"]
    echo_rps = mean_rps("echo")
    ratio = mean_rps("grade") / echo_rps if echo_rps else float("nan")

    print(f"\ncommand: {cmd}")
    print(f"machine: {_machine()}")
    print(f"stack:   {_versions()}")
    print(
        f"load:    C={args.conc}, {args.records} records/request "
        f"({len(body) / 1024:.1f} KiB body), "
        f"{args.warmup:g} s warm-up + {args.duration:g} s measured per row, aiohttp keep-alive; "
        f"uvicorn 1 worker, 127.0.0.1, log-level warning, no access log; "
        f"echo parses with {'GradeRequest' if args.echo == 'model' else 'request.json()'}"
    )
    print(
        "graders: format (think_answer), number (reference_response: ground_truth), "
        "length_penalty; no math grader (its process pool would dominate)\n"
    )
    print(
        "| server | requests | requests/s | records/s | p50 ms | p99 ms | resp KiB "
        "| server CPU s | client CPU s | failures | records/s per server core |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    labels = {
        "echo": "echo (bare FastAPI)",
        "grade": "POST /grade (rules)",
        "noop": "POST /grade (no-op graders)",
    }
    per_round = len(rows) // args.rounds
    for i, r in enumerate(rows):
        label = labels[r["kind"]]
        if args.rounds > 1:
            label += f" #{i // per_round + 1}"
        print(_row(label, r, args.records))
    echo_fails = sum(r["bad_status"] + r["bad_body"] + r["exc"] for r in echo_rows)
    fails = sum(r["bad_status"] + r["bad_body"] + r["exc"] for r in grade_rows)
    checked = sum(r["done"] for r in grade_rows)
    print(
        f"\n/grade: {checked - fails}/{checked} responses status 200 with {args.records} results; "
        f"failures {fails} (status {sum(r['bad_status'] for r in grade_rows)}, body "
        f"{sum(r['bad_body'] for r in grade_rows)}, transport {sum(r['exc'] for r in grade_rows)})"
    )
    verdict = "MET" if ratio >= 0.60 else "MISSED"
    print(
        f"ratio /grade / echo requests/s: {ratio:.1%} (target >= 60%: {verdict}); "
        f"server CPU s includes the warm-up"
    )
    if not args.no_noop:
        print(
            f"ratio /grade with no-op graders / echo requests/s: "
            f"{mean_rps('noop') / echo_rps:.1%} (the service's own overhead)"
        )
    if echo_fails:
        print(f"echo: {echo_fails} failed responses: its figures are not a valid baseline")
    return 0 if fails == 0 and echo_fails == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
