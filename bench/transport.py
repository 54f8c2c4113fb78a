"""Client CPU per judge call: the SDK's aiohttp transport against its default httpx transport.

    python bench/transport.py              # the issue's table (N = 3000; takes ~1 minute)
    python bench/transport.py --quick      # N = 600, a smoke run
    python bench/transport.py --n 5000 --conc 64 256 --latency 0 0.05

Why: on a 2-core box the judge client, not the judge, limits throughput. The OpenJudge study
measured 3.1-4.5 ms of client CPU per call through the SDK's default httpx transport, against
~1.4 ms with aiohttp, and httpx got *slower* with 256 connections than with 64. This picks
``OpenAIChatModel``'s default transport from numbers taken on this box.

How: the mock judge (``tests/judge_server.py``) runs in its own process, so its CPU is not
billed to the client, and a fresh server and a fresh client process serve each row. The client
runs C workers, each calling ``OpenAIChatModel.achat`` in a loop (as the runner's worker pool
does), after a warm-up of 2 x C calls that opens the pool. Client CPU is
``time.process_time()`` over the measured calls; server CPU comes from ``/proc/<pid>/stat``.

Rows:
* ``OpenAIChatModel``: our backend (raw ``client.post`` + ``json.loads``, our retry loop).
* ``SDK create()``: plain ``AsyncOpenAI.chat.completions.create`` with the same transport and
  pool, the cost our raw path avoids (pydantic params transform and response models).
* ``bare aiohttp``: ``aiohttp.ClientSession.post`` + ``json.loads``, no SDK; the floor.

bound = N x L / C; wall/bound near 1 means the client kept every slot busy. "peak in flight" is
what the server saw; at L = 0 it answers each request without yielding, so it can read 1 there.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.judge_server import spawn  # noqa: E402  (the mock judge, in its own process)

MESSAGES = [
    {"role": "system", "content": "You are a strict grader. Answer with a score from 1 to 5."},
    {"role": "user", "content": "Question: what is 2+2?\nAnswer: 4\n" + "context " * 150},
]


def _server(latency: float) -> tuple[subprocess.Popen[str], str]:
    return spawn(latency)


def _proc_cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _server_stats(base_url: str) -> dict[str, Any]:
    root = base_url.rsplit("/v1", 1)[0]
    with urllib.request.urlopen(f"{root}/_mock/stats", timeout=5) as resp:
        return json.loads(resp.read())


async def _run_workers(call: Any, n: int, conc: int) -> int:
    remaining = n
    errors = 0

    async def worker() -> None:
        nonlocal remaining, errors
        while remaining > 0:
            remaining -= 1
            try:
                await call()
            except Exception:
                errors += 1

    await asyncio.gather(*(worker() for _ in range(conc)))
    return errors


def child(mode: str, transport: str, n: int, conc: int, base_url: str) -> dict[str, Any]:
    """Measure one row in this (fresh) process."""

    async def main() -> dict[str, Any]:
        cleanup: Any = None
        if mode == "model":
            from rm_service.models._base import SamplingParams
            from rm_service.models._openai import OpenAIChatModel

            model = OpenAIChatModel(
                "judge",
                base_url=base_url,
                transport=transport,
                max_concurrency=conc,  # type: ignore[arg-type]
            )
            params = SamplingParams(max_tokens=8)

            async def call() -> None:
                await model.achat(MESSAGES, params)

            cleanup = model.aclose
        elif mode == "create":
            import httpx2
            import openai

            limits = httpx2.Limits(max_connections=conc, max_keepalive_connections=conc)
            http = (
                openai.DefaultAioHttpClient(limits=limits)
                if transport == "aiohttp"
                else openai.DefaultAsyncHttpxClient(limits=limits)
            )
            client = openai.AsyncOpenAI(
                base_url=base_url, api_key="EMPTY", max_retries=0, http_client=http, timeout=30
            )

            async def call() -> None:
                r = await client.chat.completions.create(
                    model="judge", messages=MESSAGES, max_tokens=8, temperature=0.0
                )
                assert r.choices[0].message.content

            cleanup = client.close
        else:  # bare aiohttp
            import aiohttp

            session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=conc))
            url = f"{base_url}/chat/completions"
            body = {"model": "judge", "messages": MESSAGES, "max_tokens": 8, "temperature": 0.0}
            headers = {"Authorization": "Bearer EMPTY"}

            async def call() -> None:
                async with session.post(url, json=body, headers=headers) as resp:
                    resp.raise_for_status()
                    data = json.loads(await resp.read())
                assert data["choices"][0]["message"]["content"]

            cleanup = session.close

        await _run_workers(call, 2 * conc, conc)  # warm-up: open the pool, first-call setup
        cpu0, t0 = time.process_time(), time.perf_counter()
        errors = await _run_workers(call, n, conc)
        wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
        await cleanup()
        return {"wall_s": wall, "cpu_s": cpu, "errors": errors}

    return asyncio.run(main())


def _row(mode: str, transport: str, n: int, conc: int, latency: float) -> dict[str, Any]:
    server, base_url = _server(latency)
    try:
        cpu_before = _proc_cpu_s(server.pid)
        out = subprocess.run(
            [sys.executable, __file__, "--child", mode, transport, str(n), str(conc), base_url],
            capture_output=True,
            text=True,
            check=True,
        )
        server_cpu = _proc_cpu_s(server.pid) - cpu_before
        stats = _server_stats(base_url)
    finally:
        assert server.stdin is not None
        server.stdin.close()
        server.wait(10)
    r = json.loads(out.stdout)
    calls = n + 2 * conc
    bound = n * latency / conc
    return {
        "mode": mode,
        "transport": transport,
        "n": n,
        "conc": conc,
        "latency_ms": latency * 1000,
        "wall_s": r["wall_s"],
        "calls_per_s": n / r["wall_s"],
        "cpu_us": r["cpu_s"] / n * 1e6,
        "server_cpu_us": server_cpu / calls * 1e6,
        "bound_s": bound,
        "ratio": r["wall_s"] / bound if bound else None,
        "peak": stats["peak_in_flight"],
        "errors": r["errors"],
    }


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="N = 600")
    ap.add_argument("--n", type=int, default=None, help="measured calls per row (default 3000)")
    ap.add_argument("--conc", type=int, nargs="+", default=[64, 256])
    ap.add_argument("--latency", type=float, nargs="+", default=[0.0, 0.05], help="seconds")
    ap.add_argument("--no-reference", action="store_true", help="skip SDK create()/bare rows")
    ap.add_argument("--child", nargs=5, metavar=("MODE", "TRANSPORT", "N", "C", "URL"))
    args = ap.parse_args()
    if args.child:
        mode, transport, n, c, url = args.child
        print(json.dumps(child(mode, transport, int(n), int(c), url)))
        return
    n = args.n or (600 if args.quick else 3000)
    plan = [
        ("model", t, c, lat)
        for lat in args.latency
        for c in args.conc
        for t in ("aiohttp", "httpx")
    ]
    if not args.no_reference:
        c0 = args.conc[0]
        plan += [("create", "aiohttp", c0, 0.0), ("create", "httpx", c0, 0.0)]
        plan += [("bare", "aiohttp", c0, 0.0)]

    import aiohttp
    import httpx2
    import openai

    print(f"`python bench/transport.py {' '.join(sys.argv[1:])}`".replace(" `", "`"))
    print()
    print(
        f"Machine: {os.cpu_count()} cores, {_cpu()}, {platform.machine()}, Python "
        f"{platform.python_version()}; openai {openai.__version__}, aiohttp "
        f"{aiohttp.__version__}, httpx2 {httpx2.__version__}. Server and client are separate "
        "processes sharing the cores."
    )
    print()
    print(
        "| client | transport | N | C | L | wall s | calls/s | client CPU µs/call | "
        "server CPU µs/call | bound s | wall/bound | peak in flight | errors |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    labels = {"model": "OpenAIChatModel", "create": "SDK create()", "bare": "bare aiohttp"}
    for mode, transport, c, lat in plan:
        r = _row(mode, transport, n, c, lat)
        ratio = f"{r['ratio']:.2f}" if r["ratio"] else "-"
        bound = f"{r['bound_s']:.2f}" if r["bound_s"] else "-"
        print(
            f"| {labels[mode]} | {'-' if mode == 'bare' else transport} | {n} | {c} | "
            f"{r['latency_ms']:g} ms | {r['wall_s']:.2f} | {r['calls_per_s']:.0f} | "
            f"**{r['cpu_us']:.0f}** | {r['server_cpu_us']:.0f} | {bound} | {ratio} | "
            f"{r['peak']} | {r['errors']} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
