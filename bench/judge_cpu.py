"""Client CPU per judge call: the runner with three LLM judges against a mock judge process.

    python bench/judge_cpu.py                      # 2000 records x 3 judges, C = 64, 256; 3 runs
    python bench/judge_cpu.py --runs 1 --c 64       # one quick run
    python bench/judge_cpu.py --profile /tmp/prof   # also cProfile each child (slower; for reading)
    PYTHONPATH=/path/to/other/checkout python bench/judge_cpu.py   # measure another checkout

Why CPU per call: on a shared box wall time moves with other people's load, while the client's
process CPU time divided by the number of judge calls is what our own code costs per call
(rendering, fencing, pre-gates, the HTTP request, parsing, bookkeeping). Once that cost times the
calls in flight approaches the judge's latency, the client, not the judge, sets the pace, which
``wall/bound`` shows (bound = calls x latency / C).

The setting mirrors a plain three-judge reward: ``GradingRunner`` -> Relevance, Correctness and
Harmfulness graders (bundled prompts, default pre-gates, strict parsing) -> one
``OpenAIChatModel`` built with its defaults but for ``max_concurrency`` (see ``--pool``) ->
loopback HTTP to ``tests/judge_server.py`` in its own process (its CPU is not billed to the
client), which answers ``{"reason": "ok", "score": 1}`` after 50 ms. Every configuration runs in a
fresh child process, whose working directory is a scratch folder so that ``PYTHONPATH`` decides
which checkout's code is measured (the child reports the path it imported).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.judge_server import spawn  # noqa: E402  (the mock judge, in its own process)

VERDICT = json.dumps({"reason": "ok", "score": 1})
LATENCY = 0.05

CHILD = r"""
import asyncio, cProfile, json, resource, sys, time, urllib.request
n, c, url, pool, prof, setting = (int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4],
                                  sys.argv[5], sys.argv[6])
import rm_service
from rm_service import GradingRunner, GraderConfig
from rm_service.models import OpenAIChatModel
from graders import CorrectnessGrader, HarmfulnessGrader, RelevanceGrader
kw = {} if pool == "default" else {"max_concurrency": c if pool == "c" else int(pool)}
m = OpenAIChatModel(model="mock", base_url=url, api_key="sk-mock", **kw)
only = setting == "judge-only"
off = {"cross_check": "off"} if only else {}
never = {"verify": "never"} if only else {}
cfg = {"relevance": GraderConfig(grader=RelevanceGrader(model=m, **off)),
       "correctness": GraderConfig(grader=CorrectnessGrader(model=m, **never),
                                   mapper={"reference_response": "ground_truth"}),
       "harmfulness": GraderConfig(grader=HarmfulnessGrader(model=m, **off))}
data = [{"query": f"Question {i}: what is {i} + {i}?",
         "response": f"The answer is {2*i}. It is the sum of two equal terms.",
         "ground_truth": str(2 * i)} for i in range(n)]
runner = GradingRunner(grader_configs=cfg, max_concurrency=c)
asyncio.run(runner.arun(data[:50]))  # warm-up: imports, first connections
stats_url = url.rsplit("/v1", 1)[0] + "/_mock/stats"
before = json.loads(urllib.request.urlopen(stats_url).read())["requests"]
profiler = cProfile.Profile() if prof != "-" else None
t = time.perf_counter(); cpu0 = time.process_time()
if profiler: profiler.enable()
res = asyncio.run(runner.arun(data))
if profiler: profiler.disable()
wall = time.perf_counter() - t; cpu = time.process_time() - cpu0
ok = sum(1 for k in cfg for r in res.get(k, []) if getattr(r, "score", None) is not None)
if profiler:
    profiler.dump_stats(prof)
stats = json.loads(urllib.request.urlopen(stats_url).read())
print(json.dumps({"wall": wall, "cpu_us": cpu / (3 * n) * 1e6, "ok": ok, "calls": 3 * n,
                  "judge_calls": stats["requests"] - before,
                  "code": rm_service.__file__,
                  "rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


BARE = r"""
import asyncio, json, sys, time
import aiohttp
n, c, url, client = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
msgs = [{"role": "system", "content": "s" * 1200}, {"role": "user", "content": "u" * 1200}]
body = {"model": "mock", "messages": msgs, "temperature": 0.0, "max_tokens": 512}
headers = {"Content-Type": "application/json"}
async def main():
    if client == "http1":
        from rm_service.models._http1 import Http1Poster
        poster = Http1Poster(url + "/chat/completions", headers, pool=c, who="mock")
        post = lambda: poster.post(body, 1)
    else:
        s = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=c))
        async def post():
            data = json.dumps(body).encode()
            async with s.post(url + "/chat/completions", data=data, headers=headers) as r:
                return await r.read()
    sem = asyncio.Semaphore(c)
    async def one():
        async with sem:
            return json.loads(await post())["choices"][0]["message"]["content"]
    await asyncio.gather(*(one() for _ in range(100)))
    cpu0 = time.process_time()
    await asyncio.gather(*(one() for _ in range(n)))
    return (time.process_time() - cpu0) / n * 1e6
print(json.dumps({"cpu_us": asyncio.run(main())}))
"""
"""The floors: one plain POST of a prompt-sized body and a ``json.loads`` of the answer, at the
same concurrency, with no grader around it: through aiohttp, and through the ``direct``
transport's own HTTP/1.1 client (:mod:`rm_service.models._http1`). Their CPU per request scales
the figures above to the machine (a faster core lowers both)."""


def start_server() -> tuple[subprocess.Popen[str], str]:
    return spawn(LATENCY, VERDICT)


def run_child(
    n: int, c: int, url: str, pool: str, prof: str, setting: str, scratch: str
) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(n), str(c), url, pool, prof, setting],
        capture_output=True,
        text=True,
        cwd=scratch,
        timeout=1200,
    )
    lines = out.stdout.strip().splitlines()
    if out.returncode != 0 or not lines:
        raise SystemExit(f"child failed (C={c}): {out.stderr[-1500:]}")
    return json.loads(lines[-1])  # type: ignore[no-any-return]


def print_profile(path: str, calls: int, top: int) -> None:
    import pstats

    st = pstats.Stats(path)
    rows = []
    for (file, line, fn), (_cc, nc, tt, ct, _callers) in st.stats.items():  # type: ignore[attr-defined]
        rows.append((tt, ct, nc, f"{Path(file).name}:{line}({fn})"))
    print(f"  top {top} by own time (us per judge call; cProfile inflates small functions):")
    for tt, ct, nc, where in sorted(rows, reverse=True)[:top]:
        own, cum, per = tt / calls * 1e6, ct / calls * 1e6, nc / calls
        print(f"    {own:7.1f} own {cum:8.1f} cum {per:6.2f}x  {where}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--n", type=int, default=2000, help="records (3 judge calls each)")
    ap.add_argument("--c", type=int, nargs="+", default=[64, 256], help="runner concurrency")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument(
        "--pool",
        default="default",
        help="the model's max_concurrency: 'default' (the model's own default), 'c' (= C) or N",
    )
    ap.add_argument(
        "--setting",
        choices=("judge-only", "default"),
        default="judge-only",
        help="judge-only: every grader asks the judge for every record (relevance and "
        "harmfulness cross-checks off, correctness verify='never'), so the figure is the judge "
        "path's own cost; default: the graders' defaults (rule-decided correctness, embedding "
        "and harm-detector cross-checks), so it also bills that work",
    )
    ap.add_argument("--profile", metavar="DIR", help="cProfile each child into DIR and summarise")
    ap.add_argument("--top", type=int, default=25)
    args = ap.parse_args()
    print("# " + " ".join(shlex.quote(a) for a in [Path(sys.executable).name, *sys.argv]))
    if os.environ.get("PYTHONPATH"):
        print(f"# PYTHONPATH={os.environ['PYTHONPATH']}")
    load = os.getloadavg()
    print(
        f"# python {platform.python_version()}, {platform.machine()}, {platform.node()}, "
        f"{os.cpu_count()} cores, load {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; mock judge "
        f"(tests/judge_server.py) in a separate process, latency {LATENCY * 1000:g} ms; "
        f"model pool: {args.pool}; setting: {args.setting}"
    )
    print(
        "| C | run | wall s | bound s | wall/bound | client CPU us/judge call | "
        "CPU us/(record x grader) | judge calls | scored | peak RSS MiB |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    server, url = start_server()
    summary: dict[int, dict[str, float]] = {}
    try:
        with tempfile.TemporaryDirectory() as scratch:
            for c in args.c:
                floors = {}
                for client in ("aiohttp", "http1"):
                    bare = subprocess.run(
                        [sys.executable, "-c", BARE, str(3 * args.n), str(c), url, client],
                        capture_output=True,
                        text=True,
                        cwd=scratch,
                        timeout=600,
                        check=True,
                    )
                    floors[client] = json.loads(bare.stdout.strip().splitlines()[-1])["cpu_us"]
                floor = floors["aiohttp"]
                print(
                    f"#   C={c}: bare request (the floor): aiohttp {floor:.0f} us CPU each, "
                    f"the direct transport's HTTP/1.1 client {floors['http1']:.0f} us"
                )
                bound = 3 * args.n * LATENCY / c  # every grader's call; judge-only makes all
                cpus, ratios = [], []
                for run in range(1, args.runs + 1):
                    prof = "-"
                    if args.profile:
                        os.makedirs(args.profile, exist_ok=True)
                        prof = str(Path(args.profile, f"c{c}_run{run}.prof").resolve())
                    r = run_child(args.n, c, url, args.pool, prof, args.setting, scratch)
                    per_judge = r["cpu_us"] * r["calls"] / max(1, r["judge_calls"])
                    cpus.append(per_judge)
                    ratios.append(r["wall"] / bound)
                    print(
                        f"| {c} | {run} | {r['wall']:.2f} | {bound:.2f} | "
                        f"{r['wall'] / bound:.2f} | "
                        f"{per_judge:.0f} | {r['cpu_us']:.0f} | {r['judge_calls']:.0f} | "
                        f"{r['ok']}/{r['calls']} | {r['rss']:.0f} |",
                        flush=True,
                    )
                    if run == 1:
                        print(f"#   code: {r['code']}")
                    if prof != "-":
                        print_profile(prof, int(r["judge_calls"]), args.top)
                summary[c] = {
                    "bare_aiohttp_us": round(floor),
                    "bare_http1_us": round(floors["http1"]),
                    "cpu_us_per_judge_call_median": round(statistics.median(cpus)),
                    "wall_over_bound_median": round(statistics.median(ratios), 2),
                }
    finally:
        server.stdin.close()  # type: ignore[union-attr]
        server.wait(timeout=10)
    load = os.getloadavg()
    print(f"# load after: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
