"""``POST /grade`` and ``POST /get_reward`` of two trees, compared: the same bodies, statuses and
metrics, request by request.

    python bench/grade_path_differential.py --tree /tmp/wt_grade --out /tmp/old.json
    python bench/grade_path_differential.py --tree /work/main --out /tmp/new.json
    python bench/grade_path_differential.py --compare /tmp/old.json /tmp/new.json

Each run imports the service from ``--tree`` (a worktree of an older commit, say) and sends the
same requests, in the same order, to one app serving many rewards: no-op graders, the rule
graders of ``examples/rules.yaml``, graders that fail, raise or return odd values (``True``,
numpy numbers, NaN, a score above 1, pairs with a reason that is no ``str``, result objects,
``GraderError``), awaited graders and mappers, aggregators of every kind (``on_error`` unscored,
``skip`` and a substitute; min, max, formula, gate; custom ones that raise or return odd values),
with and without ``include_metadata``, ids of many JSON types, empty batches, requests that are
refused, and ``/get_reward`` in both forms. What comes back is written to ``--out``: each
response's status, headers and body, and the ``/metrics`` text after every request, with the
timing fields masked (the summary's ``latency_s``; the latency histograms' buckets and sums, and
``_created`` stamps; a histogram's ``_count`` stays: it is the number of calls). ``--compare``
prints each difference and the counts, and exits 1 if there is any.

No socket: the ASGI app is called directly, as ``bench/grade_path.py`` does.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import re
import sys
from pathlib import Path
from typing import Any

import numpy as np
from _asgi import asgi_call  # beside this script (bench/), whichever tree the service is from

# --- graders and aggregators (plain functions: both trees wrap them the same way) ---------------


def g_half(response: str) -> float:
    return 0.5


def g_one(response: str) -> float:
    return 1.0


def g_zero(response: str) -> float:
    return 0.0


def g_negzero(response: str) -> float:
    return -0.0


def g_true(response: str) -> Any:
    return True


def g_int1(response: str) -> Any:
    return 1


def g_np64(response: str) -> Any:
    return np.float64(0.25)


def g_np32(response: str) -> Any:
    return np.float32(0.5)


def g_npint(response: str) -> Any:
    return np.int64(1)


def g_nan(response: str) -> Any:
    return math.nan


def g_big(response: str) -> Any:
    return 1.5


def g_neg(response: str) -> Any:
    return -0.1


def g_inf(response: str) -> Any:
    return math.inf


def g_pair_ok(response: str) -> Any:
    return 0.75, "fine"


def g_pair_nonstr(response: str) -> Any:
    return 0.5, 42


def g_pair_np(response: str) -> Any:
    return np.float64(0.125), ("a", "tuple")


def g_triple(response: str) -> Any:
    return 0.5, "a", {}


def g_string(response: str) -> Any:
    return "0.5"


def g_none(response: str) -> Any:
    return None


def g_raises(response: str) -> Any:
    raise ValueError("boom")


def g_unscored(response: str) -> Any:
    from graders import Unscored

    raise Unscored("cannot read it", kind="unparseable")


def g_unscored_bad(response: str) -> Any:
    from graders import Unscored

    raise Unscored("bad kind", kind="bogus")  # type: ignore[arg-type]


def g_error_obj(response: str) -> Any:
    from rm_service import GraderError

    return GraderError(name="x", error="nope", kind="timeout", metadata={"m": 1})


def g_score_obj(response: str) -> Any:
    from rm_service import GraderScore

    return GraderScore(name="other", score=0.3, reason="r", metadata={"k": [1, 2]})


def g_bad_copy(response: str) -> Any:
    from rm_service import GraderScore

    return GraderScore(name="b", score=0.5).model_copy(update={"score": 2.0})


def g_judge_like(response: str) -> Any:
    from rm_service import GraderScore

    usage = {"prompt_tokens": len(response), "completion_tokens": 3}
    meta: dict[str, Any] = {"usage": usage, "latency_s": 0.25}
    if len(response) % 3 == 0:
        meta["cached"] = True
    return GraderScore(name="j", score=0.6, reason="judged", metadata=meta)


def g_meta_nan(response: str) -> Any:
    from rm_service import GraderScore

    return GraderScore(name="m", score=0.4, metadata={"x": math.nan, "n": np.float64(0.5)})


def g_varied(response: str) -> Any:
    """Varies with the record: scores, a pair, a failure, an odd value."""
    k = len(response) % 7
    if k == 0:
        raise RuntimeError(f"varied fails on {len(response)}")
    if k == 1:
        return 1.5
    if k == 2:
        return k / 7, f"k={k}"
    if k == 3:
        return True
    return k / 7


def g_optional(response: str, ground_truth: Any = None) -> float:
    return 1.0 if ground_truth else 0.25


def g_takes_all(**fields: Any) -> float:
    return 0.5 if "id" in fields else 0.0


def g_params(response: str, bonus: float = 0.0) -> float:
    return min(1.0, 0.5 + bonus)


def g_gold(response: str, reference: Any) -> float:
    return 1.0 if str(reference) in response else 0.0


async def a_half(response: str) -> float:
    return 0.5


async def a_raises(response: str) -> float:
    raise KeyError("awaited boom")


async def a_pair(response: str) -> Any:
    return 0.2, "awaited"


def f_raises(results: Any) -> Any:
    raise ZeroDivisionError("custom aggregator")


def f_float(results: Any) -> Any:
    return 0.3


def f_big(results: Any) -> Any:
    return 2.0


def f_np(results: Any) -> Any:
    return np.float64(0.75)


def f_str(results: Any) -> Any:
    return "high"


def f_obj(results: Any) -> Any:
    from rm_service import GraderScore

    return GraderScore(name="whatever", score=0.9, reason="obj")


# --- the rewards -----------------------------------------------------------------------------


def _rewards() -> dict[str, Any]:
    from aggregators import (
        BaseAggregator,
        FormulaAggregator,
        GateAggregator,
        MaxAggregator,
        MinAggregator,
        WeightedSumAggregator,
    )
    from bench.http_load import CONFIG, NOOP_CONFIG
    from graders import FunctionGrader
    from rm_service import GradingRunner
    from rm_service._mapper import GraderConfig

    class OddCombine(BaseAggregator):
        """Returns what its record's length says: True, a numpy pair, a triple, a raise."""

        def combine(self, values: Any) -> Any:
            k = int(sum(values.values()) * 8) % 5
            if k == 0:
                return True
            if k == 1:
                return np.float32(0.5), "np"
            if k == 2:
                return 0.5, "with metadata", {"m": 1}
            if k == 3:
                raise ValueError("cannot")
            return 0.25, 7

    def fg(fn: Any, **kw: Any) -> Any:
        return FunctionGrader(fn, **kw)

    odd = {
        f.__name__: fg(f)
        for f in (
            g_half, g_one, g_zero, g_negzero, g_true, g_int1, g_np64, g_np32, g_npint, g_nan,
            g_big, g_neg, g_inf, g_pair_ok, g_pair_nonstr, g_pair_np, g_triple, g_string, g_none,
            g_raises, g_unscored, g_unscored_bad, g_error_obj, g_score_obj, g_bad_copy,
            g_meta_nan, g_optional, g_takes_all,
        )
    }  # fmt: skip
    odd["g_params"] = fg(g_params, params={"bonus": 0.25})
    scoring = ["g_half", "g_one", "g_zero", "g_negzero", "g_true", "g_np64", "g_pair_ok"]
    return {
        "noop": NOOP_CONFIG,
        "rules": CONFIG,
        "odd": GradingRunner(odd),  # the default equal-weight sum: unscored when any fails
        "scored": GradingRunner(
            {n: odd[n] for n in scoring},
            aggregators=[
                WeightedSumAggregator("w", {"g_half": 3, "g_one": 1, "g_np64": 0}),
                MinAggregator("lo"),
                MaxAggregator("hi", ["g_half", "g_zero"]),
                FormulaAggregator("f", "0.5 * g_half + 0.5 * min(g_one, g_pair_ok)"),
                GateAggregator("reward", gate="g_one", threshold=0.5, inner="w"),
            ],
        ),
        "policies": GradingRunner(
            {n: odd[n] for n in ("g_half", "g_raises", "g_nan", "g_pair_ok", "g_unscored")},
            aggregators=[
                WeightedSumAggregator("skip", {"g_half": 1, "g_raises": 1}, on_error="skip"),
                WeightedSumAggregator("sub", {"g_half": 1, "g_nan": 2}, on_error=0.25),
                WeightedSumAggregator("uns", {"g_half": 1, "g_unscored": 1}),
                MinAggregator("min_skip", ["g_pair_ok", "g_raises"], on_error="skip"),
                MaxAggregator("max_sub", ["g_half", "g_nan"], on_error=1.0),
                FormulaAggregator("form", "g_half * g_raises", on_error=0.0),
                GateAggregator(
                    "gate", gate="g_raises", threshold=0.5, inner="g_half", on_error=1.0
                ),
                WeightedSumAggregator("all_fail", {"g_raises": 1, "g_nan": 1}, on_error="skip"),
                WeightedSumAggregator("reward", {"skip": 1, "sub": 1, "gate": 1}),
            ],
        ),
        "custom": GradingRunner(
            {"a": odd["g_half"], "b": fg(g_varied)},
            aggregators=[
                f_raises,
                f_float,
                f_big,
                f_np,
                f_str,
                f_obj,
                OddCombine("odd", on_error=0.5),
                WeightedSumAggregator("reward", {"a": 1, "b": 1}, on_error="skip"),
            ],
        ),
        "judge": GradingRunner(
            {"j": fg(g_judge_like), "h": odd["g_half"], "v": fg(g_varied)},
            aggregators=WeightedSumAggregator("reward", {"j": 1, "h": 1}),
        ),
        "mixed": GradingRunner(
            {
                "inline": odd["g_half"],
                "gold": GraderConfig(fg(g_gold), mapper={"reference": "meta.gold[0]"}),
                "aw": fg(a_half),
                "aw_raises": fg(a_raises),
                "aw_pair": fg(a_pair),
                "th": fg(g_half, run_in_thread=True),
            },
            aggregators=WeightedSumAggregator(
                "reward", {"inline": 1, "gold": 1, "aw": 1, "aw_pair": 1}, on_error="skip"
            ),
            max_concurrency=4,
        ),
        "mapped": GradingRunner(
            {
                "gold": GraderConfig(fg(g_gold), mapper={"reference": "meta.gold[0]"}),
                "half": odd["g_half"],
                "var": fg(g_varied),
            },
        ),
        "single": GradingRunner({"only": odd["g_pair_ok"]}),
        "single_plain": GradingRunner({"only": odd["g_one"]}, id_field="key"),
        "varied": GradingRunner(
            {"v": fg(g_varied), "h": odd["g_half"], "o": odd["g_optional"]},
            aggregators=WeightedSumAggregator("reward", {"v": 1, "h": 1}, on_error=0.0),
        ),
    }


# --- the requests ------------------------------------------------------------------------------

_IDS: list[Any] = [
    "s", 7, 3.5, None, True, False, {"a": [1, {"b": None}]}, [1, 2.5, "x"], "ünï✓", 10**30,
    -0.0, 0, "", "\ud800", 1e300, "r" * 40,
]  # fmt: skip
_RESPONSES = [
    "<think>7*8 = 56.</think>\n<answer>56</answer>",
    "<think>7*8... 54?</think>\n<answer>54</answer>",
    "the answer is 56",
    "",
    "x" * 30,
    "<think>a</think><answer>\\frac{3}{4}</answer>",
    "56 " * 9,
]


def _records(n: int, seed: int, *, id_field: str = "id") -> list[dict[str, Any]]:
    out = []
    for i in range(n):
        k = (i * 7 + seed * 3) % 97
        rec: dict[str, Any] = {
            "query": f"What is 7 * 8? ({k})",
            "response": _RESPONSES[k % len(_RESPONSES)] + ("!" * (k % 5)),
            "ground_truth": "56" if k % 4 else "\\frac{3}{4}",
        }
        ident = _IDS[(i + seed) % len(_IDS)]
        if ident is not None or k % 2:  # an id of None sent, or no id at all
            rec[id_field] = ident
        if k % 3:
            rec["meta"] = {"gold": ["56" if k % 2 else "54"]}
        if k % 11 == 5:
            del rec["response"]  # invalid_input for every grader that needs it
        elif k % 13 == 6:
            rec["response"] = None
        elif k % 17 == 8:
            rec["response"] = 56  # not a str: each grader takes it as it takes it
        out.append(rec)
    return out


def _requests() -> list[tuple[str, bytes]]:
    reqs: list[tuple[str, Any]] = []
    names = [
        "noop", "rules", "odd", "scored", "policies", "custom", "judge", "mixed", "mapped",
        "single", "single_plain", "varied",
    ]  # fmt: skip
    for r, name in enumerate(names):
        id_field = "key" if name == "single_plain" else "id"
        for n, seed in ((0, 0), (1, r), (5, r + 1), (17, r + 2), (64, r + 3)):
            for meta in (False, True):
                body = {"records": _records(n, seed, id_field=id_field), "reward": name}
                if meta:
                    body["include_metadata"] = True
                reqs.append(("/grade", body))
        reqs.append(("/grade", {"records": _records(3, r), "reward": name, "deadline": 30}))
        queries = [f"Q{i} {resp}" for i, resp in enumerate(_RESPONSES)]
        prompts = [f"Q{i}" for i in range(len(_RESPONSES))]
        labels = ["56", "54", None, "3/4", 56, "56", "x"]
        reqs.append(("/get_reward", {"query": queries, "prompts": prompts, "labels": labels,
                                     "reward": name}))  # fmt: skip
        reqs.append(("/get_reward", {"query": queries[:3], "reward": name}))
    plain = [{"id": f"r{i}", "response": "56"} for i in range(4)]
    reqs += [
        ("/grade", {"records": plain}),  # the default reward
        ("/grade", {"records": plain, "reward": "nope"}),  # 422: no such reward
        ("/grade", {"records": plain, "rewards": "noop"}),  # 422: an unknown field
        ("/grade", {"records": [{"id": math.nan, "response": "a"}], "reward": "noop"}),  # 422
        ("/grade", {"records": [{"id": [1, math.inf], "response": "a"}], "reward": "odd"}),
        ("/grade", {"records": "not a list"}),
        ("/grade", {"records": [1, "two", None], "reward": "noop"}),
        ("/get_reward", {"query": ["a"], "prompts": ["a", "b"], "reward": "noop"}),  # 422
    ]
    return [(path, json.dumps(body).encode()) for path, body in reqs]


# --- the run -----------------------------------------------------------------------------------


async def _call(app: Any, method: str, path: str, body: bytes) -> dict[str, Any]:
    status, headers, data = await asgi_call(app, method, path, body, host=b"diff")
    return {"status": status, "headers": headers, "body": data.decode("utf-8")}


_LATENCY = re.compile(r'"latency_s":[-+0-9.eE]+')
_TIMED = re.compile(
    r"^(rm_http_request_duration_seconds_(?:bucket|sum)|rm_grader_call_duration_seconds_"
    r"(?:bucket|sum)|\w+_created)(\{[^}]*\})? .*$",
    re.MULTILINE,
)


def _masked_metrics(text: str) -> str:
    return _TIMED.sub(lambda m: f"{m.group(1)}{m.group(2) or ''} <masked>", text)


async def _run() -> list[dict[str, Any]]:
    from rm_service._http_schemas import ServiceSettings
    from rm_service.app import create_app

    app = create_app(_rewards(), ServiceSettings())
    rows = []
    for path, body in _requests():
        got = await _call(app, "POST", path, body)
        # The length of a body with a latency in it varies with the latency's digits: checked
        # here, against the body, and not compared.
        length = [v for k, v in got["headers"] if k == "content-length"]
        got["length_ok"] = length == [str(len(got["body"].encode()))]
        got["headers"] = [[k, v] for k, v in got["headers"] if k != "content-length"]
        got["body"] = _LATENCY.sub('"latency_s":"<masked>"', got["body"])
        metrics = await _call(app, "GET", "/metrics", b"")
        got["metrics"] = _masked_metrics(metrics["body"])
        got["request"] = f"{path} {body[:120].decode('utf-8', 'backslashreplace')}"
        rows.append(got)
    return rows


def _write(rows: list[dict[str, Any]], out: Path) -> int:
    out.write_text(json.dumps(rows, indent=0, ensure_ascii=True))
    statuses: dict[int, int] = {}
    for row in rows:
        statuses[row["status"]] = statuses.get(row["status"], 0) + 1
    print(f"{len(rows)} requests written to {out}; statuses {dict(sorted(statuses.items()))}")
    return 0


def _compare(old: Path, new: Path) -> int:
    a, b = json.loads(old.read_text()), json.loads(new.read_text())
    if len(a) != len(b):
        print(f"different request counts: {len(a)} vs {len(b)}")
        return 1
    diffs = 0
    fields = ("status", "headers", "length_ok", "body", "metrics")
    for i, (x, y) in enumerate(zip(a, b, strict=True)):
        for f in fields:
            if x[f] != y[f]:
                diffs += 1
                print(f"request {i} ({x['request']}): {f} differs")
                xs, ys = str(x[f]), str(y[f])
                at = next(
                    (j for j, (p, q) in enumerate(zip(xs, ys, strict=False)) if p != q),
                    min(len(xs), len(ys)),
                )
                print(f"  old: ...{xs[max(0, at - 80) : at + 120]!r}")
                print(f"  new: ...{ys[max(0, at - 80) : at + 120]!r}")
    bodies = sum(1 for x in a if x["status"] == 200)
    bad = sum(1 for x in a + b if not x["length_ok"])
    if bad:
        print(f"{bad} responses whose content-length is not their body's length")
        diffs += bad
    print(
        f"{len(a)} requests ({bodies} answered 200), {len(a) * len(fields)} fields compared "
        f"(status, headers, content-length = body length, body, /metrics after each): "
        f"{diffs} differences"
    )
    return 1 if diffs else 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--tree", type=Path, help="the tree to import the service from")
    p.add_argument("--out", type=Path, help="where to write the responses (JSON)")
    p.add_argument("--compare", nargs=2, type=Path, metavar=("OLD", "NEW"))
    args = p.parse_args(argv)
    if args.compare:
        return _compare(*args.compare)
    if args.tree is None or args.out is None:
        p.error("give --tree and --out, or --compare OLD NEW")
    tree = str(args.tree.resolve())
    sys.path.insert(0, tree)
    import rm_service

    if not rm_service.__file__ or not rm_service.__file__.startswith(tree + "/"):
        raise SystemExit(f"rm_service came from {rm_service.__file__}, not {tree}")
    return _write(asyncio.run(_run()), args.out)


if __name__ == "__main__":
    raise SystemExit(main())
