"""Judge graders at scale: the runner with three LLM judges against the mock OpenAI server.

    python bench/judge_throughput.py            # N = 5000 records x 3 judges, C = 64 and 256
    python bench/judge_throughput.py --quick    # N = 1000

The scripted OpenAI-compatible server (``tests/judge_server.py``) runs in its own process, so its
CPU is not billed to the client, and answers ``{"reason": ..., "score": 4}`` after 50 ms. The
client is the real stack: ``GradingRunner`` -> Relevance/Correctness/Harmfulness judges (prompt
files, fencing, pre-gates, strict parsing) -> one shared ``OpenAIChatModel`` (aiohttp transport,
pool = C) -> loopback HTTP. Each configuration runs in a fresh process.

bound = calls x latency / C. Also: client CPU per call, peak RSS, and the judge cache's hit rate on
a GRPO-like set (8 completions per prompt, 30% of them duplicates within their group).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.judge_server import spawn  # noqa: E402  (the mock judge, in its own process)

VERDICT = json.dumps({"reason": "Accurate and on topic.", "score": 4})


def start_server(latency: float) -> tuple[subprocess.Popen[str], str]:
    return spawn(latency, VERDICT)


def records(n: int, group: int = 1, dup: float = 0.0, seed: int = 0):
    """``n`` records; with ``group`` > 1, each prompt has ``group`` completions, a ``dup``
    fraction of which repeat an earlier completion of the same group (GRPO's duplicates)."""
    rng = random.Random(seed)
    for i in range(n):
        g, k = divmod(i, group)
        j = rng.randrange(k) if k and rng.random() < dup else k
        yield {
            "query": f"Explain step {g} of making bread at home, briefly.",
            "response": f"Knead the dough about {g % 9 + 5} minutes, then rest it (variant {j}).",
            "reference_response": f"Knead for {g % 9 + 5} minutes and let it rest.",
        }


def child(n: int, conc: int, base_url: str, latency: float, grpo: bool, transport: str) -> dict:
    from graders import CorrectnessGrader, HarmfulnessGrader, RelevanceGrader
    from rm_service import GradingRunner
    from rm_service.models import JudgeCache, OpenAIChatModel

    model = OpenAIChatModel(
        "mock-judge",
        base_url=base_url,
        api_key="x",
        max_concurrency=conc,
        timeout=30,
        transport=transport,
    )
    cache = JudgeCache() if grpo else None
    judges = {
        "relevance": RelevanceGrader(model, cache=cache),
        "correctness": CorrectnessGrader(model, cache=cache),
        "harmfulness": HarmfulnessGrader(model, cache=cache),
    }
    runner = GradingRunner(judges, max_concurrency=conc)
    source = records(n, group=8, dup=0.3) if grpo else records(n)

    async def go() -> tuple[int, int]:
        ok = unscored = 0
        async for r in runner.astream(source):
            ok += r.status == "ok"
            unscored += r.status != "ok"
        return ok, unscored

    cpu0, t0 = time.process_time(), time.perf_counter()
    ok, unscored = asyncio.run(go())
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    calls = 3 * n
    out = {
        "n": n,
        "conc": conc,
        "grpo": grpo,
        "transport": transport,
        "wall": wall,
        "ok": ok,
        "unscored": unscored,
        "bound": calls * latency / conc,
        "cpu_us": cpu / calls * 1e6,
        "rps": n / wall,
        "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }
    if cache is not None:
        out["cache"] = cache.stats()
        texts = [(r["query"], r["response"]) for r in records(n, group=8, dup=0.3)]
        out["dup_share"] = 1 - len(set(texts)) / len(texts)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--child", nargs=6)
    args = ap.parse_args()
    if args.child:
        n, c, url, lat, grpo, transport = args.child
        print(
            json.dumps(child(int(n), int(c), url, float(lat), grpo == "1", transport), default=str)
        )
        return
    n, latency = (1000 if args.quick else 5000), 0.05
    print(f"# python bench/judge_throughput.py{' --quick' if args.quick else ''}")
    print(
        f"# python {platform.python_version()}, {platform.machine()}, {os.cpu_count()} cores; "
        f"mock judge in a separate process, latency {latency * 1000:g} ms"
    )
    print(
        "| N | C | transport | set | wall s | bound s | wall/bound | records/s | "
        "client CPU us/call | peak RSS MiB | scored | unscored | cache |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    server, url = start_server(latency)
    try:
        plan = [(c, False, t) for t in ("direct", "aiohttp") for c in (64, 256)]
        plan.append((64, True, "direct"))
        for conc, grpo, transport in plan:
            res = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--child",
                    str(n),
                    str(conc),
                    url,
                    str(latency),
                    "1" if grpo else "0",
                    transport,
                ],
                capture_output=True,
                text=True,
                check=True,
                cwd=ROOT,
            )
            r = json.loads(res.stdout.strip().splitlines()[-1])
            cache = r.get("cache")
            cache_txt = "-"
            if cache:
                hits, misses = cache.get("hits", 0), cache.get("misses", 0)
                cache_txt = (
                    f"{r['dup_share']:.0%} duplicates in the set; "
                    f"hit rate {hits / max(1, hits + misses):.2f} "
                    f"({hits} hits, {cache.get('coalesced', 0)} coalesced, {misses} calls)"
                )
            label = "GRPO-like, 30% dup, cache" if grpo else "distinct"
            print(
                f"| {r['n']} | {r['conc']} | {r['transport']} | {label} | {r['wall']:.2f} | "
                f"{r['bound']:.2f} | {r['wall'] / r['bound']:.2f} | {r['rps']:.0f} | "
                f"{r['cpu_us']:.0f} | {r['peak_mib']:.0f} | {r['ok']} | {r['unscored']} | "
                f"{cache_txt} |"
            )
    finally:
        server.stdin.close()  # type: ignore[union-attr]
        server.wait(timeout=10)


if __name__ == "__main__":
    main()
