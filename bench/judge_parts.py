"""Two parts of a judge call's client CPU, measured alone: the pre-gates and the request body.

    python bench/judge_parts.py                     # 3 rounds of 4,000 records, fresh processes
    PYTHONPATH=/path/to/other/checkout python bench/judge_parts.py --gates-only   # before/after

* **Pre-gates:** the default gate sets of the relevance, correctness and harmfulness judges run
  through ``first_gate_hit`` on each record, as the three graders of one record do (the memo
  shares a record's verdicts between them). Two shapes: ``distinct``, the side-by-side's records,
  every prompt different; ``grpo``, 16 distinct completions per prompt, as a GRPO step grades
  them (the query-side work can be shared within a group). CPU per record, each round in a
  fresh process.
* **Request body:** the relevance judge's chat-completions body for one record, encoded as the
  transports send it (``rm_service.models._body.encode_json``: ASCII JSON) against UTF-8 JSON
  (``json.JSONEncoder(ensure_ascii=False).encode(...).encode()``). Microseconds per body.

Figures go in ``docs/benchmarks.md``. The child prints which checkout it imported.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile

GATES = r"""
import json, sys, time
import graders._pregate as pregate
n, shape = int(sys.argv[1]), sys.argv[2]
sets = [pregate.default_pregates(c) for c in ("relevance", "correctness", "harmfulness")]
if shape == "grpo":  # 16 distinct completions per prompt, prompt after prompt
    records = [
        (f"The answer is {2 * (i // 16)}. It is the sum of two equal terms, step {i % 16}.",
         {"query": f"Question {i // 16}: what is {i // 16} + {i // 16}?"},
         {"query": f"Question {i // 16}: what is {i // 16} + {i // 16}?",
          "reference_response": str(2 * (i // 16))})
        for i in range(n + 208)
    ]
else:
    records = [
        (f"The answer is {2 * i}. It is the sum of two equal terms.",
         {"query": f"Question {i}: what is {i} + {i}?"},
         {"query": f"Question {i}: what is {i} + {i}?", "reference_response": str(2 * i)})
        for i in range(n + 208)
    ]
for response, fields, with_ref in records[:208]:  # warm: regex caches, the memo's first entries
    pregate.first_gate_hit(sets[0], response, fields)
cpu = time.process_time()
for response, fields, with_ref in records[208:]:
    pregate.first_gate_hit(sets[0], response, fields)
    pregate.first_gate_hit(sets[1], response, with_ref)
    pregate.first_gate_hit(sets[2], response, fields)
print(json.dumps({"us": (time.process_time() - cpu) / n * 1e6, "code": pregate.__file__}))
"""

BODY = r"""
import json, sys, time
from graders import RelevanceGrader
from rm_service.models import OpenAIChatModel
from rm_service.models._body import encode_json
model = OpenAIChatModel(model="m", base_url="http://127.0.0.1:1/v1", api_key="k")
g = RelevanceGrader(model=model, cross_check="off")
texts = g._texts({"query": "Question 5: what is 5 + 5?",
                  "response": "The answer is 10. It is the sum of two equal terms."})
body = model._build_body(g._messages(g._defang(texts), "abc123"), g.params)
utf8 = json.JSONEncoder(ensure_ascii=False).encode
n = int(sys.argv[1])
out = {"chars": len(encode_json(body))}
for name, enc in (("ascii", encode_json), ("utf8", lambda b: utf8(b).encode())):
    t = time.perf_counter()
    for _ in range(n):
        enc(body)
    out[name] = (time.perf_counter() - t) / n * 1e6
print(json.dumps(out))
"""


def child(code: str, *args: str) -> dict[str, float | str]:
    with tempfile.TemporaryDirectory() as scratch:  # PYTHONPATH decides the checkout
        out = subprocess.run(
            [sys.executable, "-c", code, *args],
            capture_output=True,
            text=True,
            cwd=scratch,
            timeout=600,
            check=True,
        )
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--n", type=int, default=4000, help="records per round")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--gates-only", action="store_true", help="skip the body encoding")
    args = ap.parse_args()
    print(f"command: python bench/judge_parts.py {' '.join(sys.argv[1:])}".rstrip())
    if os.environ.get("PYTHONPATH"):
        print(f"PYTHONPATH={os.environ['PYTHONPATH']}")
    load = os.getloadavg()[0]
    print(f"machine: {platform.machine()}, Python {platform.python_version()}, load {load:.2f}")
    for shape in ("distinct", "grpo"):
        gates = [child(GATES, str(args.n), shape) for _ in range(args.rounds)]
        if shape == "distinct":
            print(f"code: {gates[0]['code']}")
        per = [float(g["us"]) for g in gates]
        print(
            f"pre-gates of relevance + correctness + harmfulness, {shape} prompts: "
            f"{', '.join(f'{x:.0f}' for x in per)} us CPU per record "
            f"(median {statistics.median(per):.0f})"
        )
    if not args.gates_only:
        body = child(BODY, "20000")
        print(
            f"judge request body ({body['chars']} chars): "
            f"ASCII JSON {float(body['ascii']):.1f} us, UTF-8 JSON {float(body['utf8']):.1f} us"
        )


if __name__ == "__main__":
    main()
