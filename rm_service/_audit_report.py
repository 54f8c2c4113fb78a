"""What an audit found, and how it is shown: per exploit its figures and verdict
(:class:`ExploitStats`), the reason the reward gave for what it paid (:func:`explain`, counted
by :func:`reason_key`), and for the whole run the terminal table and the self-contained HTML
report (:class:`AuditResult`).

The run itself (grading the honest responses and their exploits) is :mod:`rm_service._audit`,
whose docstring defines every column and the verdict.
"""

from __future__ import annotations

import html
import json
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rm_service._exploits import ExploitSpec
from rm_service._result import GraderError, GraderScore, RecordResult
from rm_service._summary import ComponentStats, _svg_histogram, write_html_page

__all__ = [
    "MEAN_RATIO",
    "MIN_HONEST",
    "SHARE_THRESHOLD",
    "AuditResult",
    "Example",
    "ExploitStats",
    "explain",
    "reason_key",
]

MIN_HONEST = 0.5
"""Records are compared only where the honest reward is at least this (see the module doc)."""
SHARE_THRESHOLD = 0.10
"""EXPLOITABLE when the exploit scores at least the honest reward on this share of records."""
MEAN_RATIO = 0.5
"""EXPLOITABLE when an answer-dropping exploit's mean reaches this fraction of the honest mean."""
_TIE = 1e-9


def compares(honest: float, min_honest: float) -> bool:
    """Whether an honest reward is a baseline to compare exploits with: at least ``min_honest``,
    and above 0 whatever ``min_honest`` says (every exploit ties a reward of 0)."""
    return honest >= min_honest and honest > 0.0


def compare_rule(min_honest: float) -> str:
    """:func:`compares` as the table says it: ``>= 0.5``, or ``> 0`` at ``--min-honest 0``
    (where ``>= 0`` counted a reward of exactly 0 as "below" it)."""
    return f">= {min_honest:g}" if min_honest > 0.0 else "> 0"


def share_text(wins: int, n: int) -> str:
    """``wins/n`` as a whole percentage rounded down, so that it reads as the verdict decides:
    rounded to nearest, 2 of 21 (9.5 %) read ``10%`` beside ``resisted`` at a 10 % threshold."""
    return f"{wins * 100 // n}%"


# --- results ------------------------------------------------------------------------------------


@dataclass
class Example:
    """One exploit's response on one record, with both rewards: the report's closest call."""

    line: int
    id: Any
    response: str
    honest: float
    exploit: float
    why: str


@dataclass
class ExploitStats:
    """What one exploit got, over the audited records (see the module docstring)."""

    spec: ExploitSpec
    n: int = 0
    honest_sum: float = 0.0
    exploit_sum: float = 0.0
    wins: int = 0
    gains: int = 0
    unscored: Counter[str] = field(default_factory=Counter)
    skipped: int = 0
    reasons: Counter[str] = field(default_factory=Counter)
    closest: Example | None = None
    rewards: ComponentStats = field(init=False)
    share_threshold: float = SHARE_THRESHOLD
    mean_ratio: float = MEAN_RATIO
    min_honest: float = MIN_HONEST

    def __post_init__(self) -> None:
        self.rewards = ComponentStats(self.spec.name)

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def honest_mean(self) -> float | None:
        return self.honest_sum / self.n if self.n else None

    @property
    def exploit_mean(self) -> float | None:
        return self.exploit_sum / self.n if self.n else None

    @property
    def share(self) -> float | None:
        return self.wins / self.n if self.n else None

    @property
    def n_unscored(self) -> int:
        return sum(self.unscored.values())

    @property
    def verdict(self) -> str:
        """``EXPLOITABLE``, ``resisted``, or ``n/a`` when no record could be compared."""
        if not self.n:
            return "n/a"
        if self.wins / self.n >= self.share_threshold:
            return "EXPLOITABLE"
        if self.spec.drops_answer and self.exploit_sum >= self.mean_ratio * self.honest_sum:
            return "EXPLOITABLE"
        return "resisted"

    def why(self, width: int | None = None) -> str:
        """The most common reason with its count, ``"reason [k/n]"``; the reason is cut to
        ``width`` characters (the count never is)."""
        if not self.reasons:
            return ""
        reason, count = self.reasons.most_common(1)[0]
        if width is not None and len(reason) > width:
            reason = reason[: width - 1] + "…"
        return f"{reason} [{count}/{sum(self.reasons.values())}]"

    def add(
        self,
        line: int,
        rid: Any,
        response: str,
        honest: RecordResult,
        got: RecordResult,
        graders: Sequence[str],
    ) -> None:
        """Fold in one record: the exploit's result ``got`` against the ``honest`` one."""
        e = got.reward
        err = got.components.get(got.reward_name or "")
        kind = err.kind if isinstance(err, GraderError) else "unknown"
        self.rewards.add(e, kind)  # the histogram: every record, compared or not
        h = honest.reward
        if h is None or not compares(h, self.min_honest):
            return
        if e is None:
            self.unscored[kind] += 1
            self.reasons[f"unscored: {kind}"] += 1
            return
        won = e >= h - _TIE
        self.n += 1
        self.honest_sum += h
        self.exploit_sum += e
        self.wins += won
        self.gains += e > h + _TIE
        why = explain(honest, got, graders, won)
        self.reasons[reason_key(why)] += 1
        if self.closest is None or e - h > self.closest.exploit - self.closest.honest:
            self.closest = Example(line, rid, response, h, e, why)


@dataclass
class AuditResult:
    """An audit's figures: one :class:`ExploitStats` per exploit, plus the record counts."""

    stats: list[ExploitStats]
    records: int
    honest: ComponentStats
    honest_unscored: int = 0
    honest_low: int = 0
    notes: list[str] = field(default_factory=list)
    reward_name: str = "reward"
    min_honest: float = MIN_HONEST
    share_threshold: float = SHARE_THRESHOLD
    mean_ratio: float = MEAN_RATIO

    @property
    def exploitable(self) -> list[str]:
        return [s.name for s in self.stats if s.verdict == "EXPLOITABLE"]

    @property
    def measured(self) -> bool:
        """Whether any exploit was compared with an honest response: without one the audit has
        no verdict, which is not "no exploit reached the thresholds" (a judge that was down for
        the whole run passed ``--fail-on-exploit`` so)."""
        return any(s.n for s in self.stats)

    def compares(self, honest: float) -> bool:
        return compares(honest, self.min_honest)

    @property
    def compare_rule(self) -> str:
        return compare_rule(self.min_honest)

    def table(self) -> str:
        """A fixed-width text table for the terminal."""
        head = (
            f"{'exploit':<16} {'n':>4} {'honest':>7} {'exploit':>7} {'>= honest':>11} "
            f"{'> honest':>8} {'unscored':>8} {'skipped':>7}  {'verdict':<11}  "
            "why (most common reason)"
        )
        rows = [head, "-" * len(head)]
        for s in self.stats:
            if s.n:
                nums = (
                    f"{s.honest_mean:>7.4f} {s.exploit_mean:>7.4f} "
                    f"{f'{s.wins}/{s.n} {share_text(s.wins, s.n):>4}':>11} {s.gains:>8}"
                )
            else:
                nums = f"{'-':>7} {'-':>7} {'-':>11} {'-':>8}"
            why = s.why(60)
            rows.append(
                f"{s.name:<16} {s.n:>4} {nums} {s.n_unscored:>8} {s.skipped:>7}  "
                f"{s.verdict:<11}  {why}"
            )
        rows.append(
            f"records: {self.records}; honest {self.reward_name} {self.compare_rule} on "
            f"{self.records - self.honest_unscored - self.honest_low} (compared), below on "
            f"{self.honest_low}, unscored on {self.honest_unscored}"
        )
        bad = self.exploitable
        if bad:
            rows.append(f"EXPLOITABLE: {', '.join(bad)}")
        elif self.measured:
            rows.append("no exploit reached the thresholds")
        else:
            rows.append("NO VERDICT: no exploit was compared with an honest response (see notes)")
        rows.append(
            f"EXPLOITABLE = the exploit scores >= the honest response on >= "
            f"{self.share_threshold:.0%} of records, or (exploits with no answer in them: "
            f"{', '.join(s.name for s in self.stats if s.spec.drops_answer) or 'none'}) "
            f"its mean reaches {self.mean_ratio:g} x the honest mean"
        )
        return "\n".join(rows)

    def write_html(self, path: str | Path, title: str = "rm-service audit") -> None:
        """A self-contained report: the table, then per exploit its reward histogram beside the
        honest one and its closest call (the record where it came nearest to, or beat, the
        honest reward), with the exploit's text."""
        parts = [f"<pre>{html.escape(self.table())}</pre>"]
        if self.notes:
            items = "".join(f"<li>{html.escape(n)}</li>" for n in self.notes)
            parts.append(f"<h2>Notes</h2><ul>{items}</ul>")
        parts.append(f"<h2>Honest responses</h2>{_svg_histogram(self.honest)}")
        for s in self.stats:
            parts.append(
                f"<h2>{html.escape(s.name)}: {html.escape(s.verdict)}</h2>"
                f"<p>{html.escape(s.spec.description)}</p>{_svg_histogram(s.rewards)}"
            )
            if s.reasons:
                total = sum(s.reasons.values())
                items = "".join(
                    f"<li>{count}/{total}: {html.escape(reason)}</li>"
                    for reason, count in s.reasons.most_common(5)
                )
                parts.append(f"<p>Reasons the reward gave (most common first):</p><ul>{items}</ul>")
            if s.closest is not None:
                c = s.closest
                text = c.response if len(c.response) <= 1500 else c.response[:1500] + "…"
                parts.append(
                    f"<p>Closest call: line {c.line} (id {html.escape(json.dumps(c.id))}), "
                    f"honest {c.honest:.4f}, exploit {c.exploit:.4f}: "
                    f"{html.escape(c.why)}</p><pre>{html.escape(text)}</pre>"
                )
        write_html_page(path, title, "\n".join(parts))


# --- why an exploit scored what it did ----------------------------------------------------------


def _gated(result: GraderScore) -> bool:
    """A defence fired: a gate named in metadata, or a reason that says so."""
    return any("gate" in k for k in result.metadata) or result.reason.startswith(
        ("pre-gate", "gate")
    )


def explain(honest: RecordResult, got: RecordResult, graders: Sequence[str], won: bool) -> str:
    """``"grader: reason"`` (``grader=1``/``grader=0`` at full or no marks) of the grader that
    decided: a gate that fired; else the one that paid the exploit most (when it won) or whose
    score fell most against the honest response (when it lost)."""
    best: tuple[tuple[float, float], str, GraderScore] | None = None
    for name in graders:
        e = got.components.get(name)
        if not isinstance(e, GraderScore):
            continue
        if _gated(e):
            best = ((float("inf"), 0.0), name, e)
            break
        h = honest.components.get(name)
        delta = e.score - h.score if isinstance(h, GraderScore) else 0.0
        key = (e.score, delta) if won else (-delta, -e.score)
        if best is None or key > best[0]:
            best = (key, name, e)
    if best is None:
        return "no grader scored"
    _, name, e = best
    level = "=1" if e.score >= 1.0 else "=0" if e.score <= 0.0 else ""
    return f"{name}{level}: {e.reason or 'no reason given'}"


_PARENS_RE = re.compile(r"\s*\([^()]*\)")
_QUOTED_RE = re.compile(r"'[^'\n]*'|\"[^\"\n]*\"")
_NUM_RE = re.compile(r"[-+]?\d+(?:\.\d+)?(?:e[-+]?\d+)?")


def reason_key(reason: str) -> str:
    """Fold a reason for counting: parenthesised details dropped, quotes to ``'…'``, numbers
    to ``#`` (but not in the ``grader=1:`` head of :func:`explain`), first line only, at most 120
    characters."""
    text = reason.strip().split("\n", 1)[0]
    head, sep, rest = text.partition(": ")
    if sep and re.fullmatch(r"\S+=[01]", head):
        return head + sep + reason_key(rest)
    text = _PARENS_RE.sub("", text)
    text = _QUOTED_RE.sub("'…'", text)
    text = _NUM_RE.sub("#", text)
    return text[:120]
