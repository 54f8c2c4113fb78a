"""AUC of the offline harmfulness grader (``harmless_offline``) on labelled sets.

    python bench/harm_auc.py             # the AUC table (overall, per language, per kind)
    python bench/harm_auc.py --items     # also every case's score and most harmful segment

Sets:

* ``tests/data/harm_labelled.jsonl`` (the main figure): hand-written cases with ``label``
  (``harmful`` or ``harmless``), ``lang`` and ``kind`` (compliance, safe_claim, fake_refusal,
  refusal, refusal_alternative, benign_sensitive, benign). Harmful content is written
  generically, with ``[placeholders]`` instead of operational detail.
* other sets, written by others (not a clean hold-out: their misses were looked at while the
  safe-neighbour examples and stance cues were tuned, so their figures are optimistic too):
  ``tests/data/judge_labelled.jsonl``'s harmfulness cases, and the harmful-content cases of
  ``tests/data/judge_attacks.jsonl`` (harmful_safe_claim, fake_refusal and attacks whose payload
  is harmful text) against its harmfulness controls.

AUC is the probability that a harmful case scores below a harmless one (ties count half); the
grader's score is 1.0 = harmless, so the ranking is by ``1 - score``. Accuracy is at the score
0.5. A per-language AUC needs both labels in that language.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from graders._harm import HarmDetector  # noqa: E402

DATA = ROOT / "tests" / "data"
_ATTACK_HARM_KINDS = frozenset(
    {
        "harmful_safe_claim",
        "fake_refusal",
        "fake_verdict",
        "delimiter_close",
        "hidden_instruction",
        "grader_roleplay",
    }
)


def _read(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def main_set() -> list[dict[str, Any]]:
    return _read(DATA / "harm_labelled.jsonl")


def held_out_sets() -> dict[str, list[dict[str, Any]]]:
    labelled = [
        {**r, "lang": "en", "kind": r["label"]}
        for r in _read(DATA / "judge_labelled.jsonl")
        if r["criterion"] == "harmfulness"
    ]
    attacks = []
    for r in _read(DATA / "judge_attacks.jsonl"):
        if r["criterion"] != "harmfulness":
            continue
        if r["label"] == "attack" and r["kind"] in _ATTACK_HARM_KINDS:
            attacks.append({**r, "label": "harmful", "lang": _lang(r["response"])})
        elif r["label"] == "control":
            attacks.append({**r, "label": "harmless", "lang": _lang(r["response"])})
    return {"judge_labelled (harm)": labelled, "judge_attacks (harm content)": attacks}


def _lang(text: str) -> str:
    if any("\u4e00" <= c <= "\u9fff" for c in text):
        return "zh"
    if any(c in "áéíóúñ¿¡" for c in text.lower()):
        return "es"
    return "en"


def auc(pairs: Iterable[tuple[float, bool]]) -> float | None:
    """AUC of ``harm`` (higher = more harmful) for the positive class ``harmful``."""
    pos = [h for h, y in pairs if y]
    neg = [h for h, y in pairs if not y]
    pairs = None
    if not pos or not neg:
        return None
    wins = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p in pos for n in neg)
    return wins / (len(pos) * len(neg))


def score_all(det: HarmDetector, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    analyses = det.analyze_many([(r["response"], r.get("query")) for r in rows])
    return [{**r, "score": a.score, "analysis": a} for r, a in zip(rows, analyses, strict=True)]


def _fmt(x: float | None) -> str:
    return "  n/a" if x is None else f"{x:.3f}"


def report(title: str, scored: list[dict[str, Any]], items: bool) -> float | None:
    pairs = [(1.0 - r["score"], r["label"] == "harmful") for r in scored]
    total = auc(pairs)
    acc = sum((r["score"] < 0.5) == (r["label"] == "harmful") for r in scored) / len(scored)
    n_pos = sum(y for _, y in pairs)
    print(f"\n## {title}: {len(scored)} cases ({n_pos} harmful, {len(scored) - n_pos} harmless)")
    print(f"AUC {_fmt(total)}   accuracy at 0.5: {acc:.3f}")
    for key in ("lang", "kind"):
        groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for r in scored:
            groups[r.get(key, "?")].append(r)
        print(
            f"\n| {key} | n | harmful | AUC | acc@0.5 | mean score harmful | mean score harmless |"
        )
        print("|---|---|---|---|---|---|---|")
        for g, rs in sorted(groups.items()):
            ps = [(1.0 - r["score"], r["label"] == "harmful") for r in rs]
            hs = [r["score"] for r in rs if r["label"] == "harmful"]
            ns = [r["score"] for r in rs if r["label"] != "harmful"]
            a = sum((r["score"] < 0.5) == (r["label"] == "harmful") for r in rs) / len(rs)
            mh = f"{sum(hs) / len(hs):.2f}" if hs else "-"
            mn = f"{sum(ns) / len(ns):.2f}" if ns else "-"
            print(f"| {g} | {len(rs)} | {len(hs)} | {_fmt(auc(ps))} | {a:.2f} | {mh} | {mn} |")
    if items:
        print()
        for r in scored:
            a = r["analysis"]
            wrong = (r["score"] < 0.5) != (r["label"] == "harmful")
            print(
                f"{'!!' if wrong else '  '} {r['id']:<32} {r['label']:<8} score {r['score']:.2f} "
                f"margin {a.margin:+.3f} {a.category or '-':<16} refusal={a.refusal:d} "
                f"fake={a.fake_refusal:d} | {a.segment[:90]!r}"
            )
    return total


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--items", action="store_true", help="print every case")
    args = ap.parse_args(argv)
    det = HarmDetector()
    started = time.perf_counter()
    det.analyze("warm-up: load the model and the prototypes.")
    load_s = time.perf_counter() - started
    print("command: python bench/harm_auc.py" + (" --items" if args.items else ""))
    started = time.perf_counter()
    rows = main_set()
    main_auc = report("tests/data/harm_labelled.jsonl", score_all(det, rows), args.items)
    n = len(rows)
    for title, held in held_out_sets().items():
        report(f"also scored (not a clean hold-out): {title}", score_all(det, held), args.items)
        n += len(held)
    per_case = (time.perf_counter() - started) / n
    print(f"\nmodel + prototypes load {load_s:.1f} s; {per_case * 1000:.0f} ms per case")
    print(f"\nAUC (tests/data/harm_labelled.jsonl): {_fmt(main_auc)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
