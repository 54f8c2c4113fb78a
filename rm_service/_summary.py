"""Run summaries in constant memory: per-component mean, std, min, max, unscored counts and a
histogram, plus a self-contained HTML report.

The report is plain HTML with inline SVG bars: no plotting library, no JavaScript, no network,
and it opens anywhere. Matplotlib would add ~40 MB to the install for 20 rectangles per chart.
"""

from __future__ import annotations

import html
import json
import math
import operator
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rm_service._result import RecordResult
from rm_service._wire import USAGE_KEYS, plain_line, record_json, usage_of

__all__ = ["ComponentStats", "JudgeTotals", "RunSummary", "summarize_jsonl"]

BINS = 20


class LineSet:
    """A set of input line numbers: 1 bit per line up to 2**31 (256 MB at most, flat in
    practice), a plain set beyond, so a garbled huge number cannot allocate gigabytes."""

    _BITMAP_LIMIT = 1 << 31

    def __init__(self) -> None:
        self.bits = bytearray()
        self.extra: set[int] = set()
        self.count = 0

    def add(self, line: int) -> bool:
        """Add ``line``; False when it was already there (a duplicate)."""
        if not 0 <= line < self._BITMAP_LIMIT:
            if line in self.extra:
                return False
            self.extra.add(line)
            self.count += 1
            return True
        byte, bit = divmod(line, 8)
        if byte >= len(self.bits):
            self.bits.extend(bytes(byte - len(self.bits) + 1))
        if self.bits[byte] & (1 << bit):
            return False
        self.bits[byte] |= 1 << bit
        self.count += 1
        return True

    def __contains__(self, line: int) -> bool:
        if not 0 <= line < self._BITMAP_LIMIT:
            return line in self.extra
        byte, bit = divmod(line, 8)
        return byte < len(self.bits) and bool(self.bits[byte] & (1 << bit))


@dataclass
class ComponentStats:
    """Streaming statistics of one component's scores, the same whatever order they come in.

    Why sums and not Welford's running mean: records finish in whatever order the judges and
    workers answer, and a running mean's rounding depends on that order, so a mean of exactly
    0.84375 printed as 0.8438 one run and 0.8437 the next. Exact sums of the scores and their
    squares, as integers in units of 2**-62 and 2**-124 (:func:`_fixed`), give the same figures
    in any order, in constant memory: integer arithmetic does not round (and costs less than
    compensated float sums)."""

    name: str
    n: int = 0
    _sum: int = 0
    _sq: int = 0
    min: float = math.inf
    max: float = -math.inf
    unscored: Counter[str] = field(default_factory=Counter)
    hist: list[int] = field(default_factory=lambda: [0] * BINS)

    def add(self, score: float | None, error_kind: str | None = None) -> None:
        if score is None:
            self.unscored[error_kind or "unknown"] += 1
            return
        self.n += 1
        if 0.0 <= score <= 1.0:  # a reward: scales exactly
            units = int(score * _UNIT)
            # The last bin holds 1.0 too; a comparison, not ``min()``: this runs for every
            # component of every record a face summarises.
            bin_ = int(score * BINS)
            self.hist[bin_ if bin_ < BINS else BINS - 1] += 1
        else:  # a file's line (``summarize_jsonl``) may hold anything: the end bins
            units = _fixed(score)
            self.hist[0 if score < 0.0 else BINS - 1] += 1
        self._sum += units
        self._sq += units * units  # in units of 1 / _UNIT**2: exact too
        if score < self.min:
            self.min = score
        if score > self.max:
            self.max = score

    def add_all(self, scores: list[float]) -> None:
        """:meth:`add` each of ``scores`` (none of them ``None``), to the same statistics.

        Why: a face that folds a batch (``POST /grade``) calls this once per component rather
        than :meth:`add` once per score, whose attribute reads and writes cost several times
        the arithmetic. Rewards (every score in ``[0, 1]``) are folded with list-wide builtins;
        anything else (a file's line may hold any number) goes through :meth:`add`, one by one.
        A NaN among rewards raises the same ``ValueError`` as there."""
        if not scores:
            return
        lo, hi = min(scores), max(scores)
        if not (lo >= 0.0 and hi <= 1.0):
            for score in scores:
                self.add(score)
            return
        counts = Counter(scores) if len(scores) >= _GROUPED else None
        if counts is not None and len(counts) * 2 <= len(scores):
            # Each distinct score once, times its count: a batch's scores mostly repeat (a
            # rule's 0 and 1, a weighted sum of them), and integer sums are exact however they
            # are grouped. Equal scores share their units and bin (0.0 and -0.0 too). All are
            # read before any is added, so a NaN raises with nothing folded, as below.
            grouped = [(int(s * _UNIT), int(s * BINS), n) for s, n in counts.items()]
            total = squares = 0
            hist = self.hist
            for unit, bin_, n in grouped:
                total += unit * n
                squares += unit * unit * n
                hist[bin_ if bin_ < BINS else BINS - 1] += n
            self._sum += total
            self._sq += squares
        else:
            units = [int(score * _UNIT) for score in scores]
            self._sum += sum(units)
            self._sq += sum(map(operator.mul, units, units))
            hist = self.hist
            for score in scores:
                bin_ = int(score * BINS)
                hist[bin_ if bin_ < BINS else BINS - 1] += 1
        self.n += len(scores)
        # ``min`` and ``max`` keep the first of equal scores, as the comparisons in add do.
        if lo < self.min:
            self.min = lo
        if hi > self.max:
            self.max = hi

    @property
    def mean(self) -> float:
        return self._sum / (self.n * _UNIT) if self.n else 0.0

    @property
    def std(self) -> float:
        if self.n < 2:
            return 0.0
        # Exact integers until the one division: n * sq - sum**2 is (n * UNIT)**2 * variance,
        # so equal scores have a std of exactly 0.
        spread = self.n * self._sq - self._sum * self._sum
        try:
            return math.sqrt(max(0, spread) / (self.n * self.n)) / _UNIT
        except OverflowError:  # scores near the float range, from a file
            return math.inf

    @property
    def n_unscored(self) -> int:
        return sum(self.unscored.values())


_GROUPED = 16
"""Scores a column needs before :meth:`ComponentStats.add_all` looks for repeats among them."""

_UNIT = 2**62
"""Scores are summed as integers in units of ``1 / _UNIT``: scaling a float by a power of two is
exact, and a score in [2**-9, 1] has no bits below 2**-62, so its units are the score itself."""


def _fixed(x: float) -> int:
    """``x`` in units of ``1 / _UNIT``, for any finite float (``inf`` and ``nan`` raise)."""
    whole = int(x)
    return whole * _UNIT + int((x - whole) * _UNIT)


@dataclass
class JudgeTotals:
    """What the judge calls of a run cost: calls, cache hits, tokens, time."""

    calls: int = 0
    cached: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_s: float = 0.0

    def add(self, line: Mapping[str, Any]) -> None:
        """Fold in one record's ``usage`` (a wire record; see ``rm_service._wire``), and its
        judge components' latency from ``metadata`` where the record carries it."""
        used = line.get("usage")
        metadata = line.get("metadata")
        judged: Sequence[Mapping[str, Any]] = _judged(metadata) if metadata else ()
        # No ``usage`` on a line written before records carried it. The type test first: an
        # ABC's ``isinstance`` costs more.
        if type(used) is not dict and not isinstance(used, Mapping):
            used = usage_of(judged)
        # A record that made no judge call (every rule-graded one) adds nothing: one dict
        # comparison, not four lookups and conversions.
        if type(used) is not dict or used != _NO_USAGE:
            self.calls += int(used.get("calls") or 0)
            self.cached += int(used.get("cached_calls") or 0)
            self.prompt_tokens += int(used.get("prompt_tokens") or 0)
            self.completion_tokens += int(used.get("completion_tokens") or 0)
        for meta in judged:
            self.latency_s += float(meta.get("latency_s") or 0.0)

    def usage(self) -> dict[str, int]:
        """The totals in the wire format's ``usage`` shape."""
        return {
            "calls": self.calls,
            "cached_calls": self.cached,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
        }

    def line(self) -> str:
        n = self.calls + self.cached
        mean = self.latency_s / n if n else 0.0
        return (
            f"judge calls: {self.calls} (+{self.cached} served from cache), tokens: "
            f"{self.prompt_tokens} prompt + {self.completion_tokens} completion, "
            f"mean latency {mean:.3f} s"
        )


_NO_USAGE = dict.fromkeys(USAGE_KEYS, 0)


def _judged(metadata: Any) -> list[Mapping[str, Any]]:
    """The components' metadata in a record's ``metadata`` that are judge calls' (they carry
    ``usage``)."""
    metas = [m for m in metadata.values() if isinstance(m, Mapping)]
    return [m for m in metas if isinstance(m.get("usage"), Mapping)]


@dataclass
class RunSummary:
    """Statistics over a set of graded records: the one summary every face reports.

    The offline grader prints :meth:`table` and writes :meth:`write_html`; ``POST /grade``
    returns :meth:`to_json`. Records are folded in one at a time with :meth:`add`, in the wire
    shape (``rm_service._wire``), so memory stays flat however many there are.

    ``ok``, ``unscored`` and ``error`` count *records* by their status and add up to
    ``records``. ``unscored_records`` says why a record has no reward: the kind of the reward
    component's error (``invalid_input`` for an ``error`` record). Each component's
    :class:`ComponentStats` counts unscored *components* by kind.
    """

    records: int = 0
    ok: int = 0
    unscored: int = 0
    error: int = 0
    components: dict[str, ComponentStats] = field(default_factory=dict)
    reward_name: str | None = None
    judge: JudgeTotals = field(default_factory=JudgeTotals)
    unscored_records: Counter[str] = field(default_factory=Counter)
    duplicates: int = 0  # output lines for an input line already counted (see summarize_jsonl)

    @classmethod
    def of(cls, names: Iterable[str], reward_name: str | None = None) -> RunSummary:
        """An empty summary that lists ``names`` (the reward's components) even if no record
        comes, or none scores them."""
        return cls(components={n: ComponentStats(n) for n in names}, reward_name=reward_name)

    def add(self, line: Mapping[str, Any]) -> None:
        """Fold in one graded record (a wire record: see ``rm_service._wire``)."""
        self._add(line, None)

    def add_all(self, lines: Iterable[Mapping[str, Any]]) -> None:
        """:meth:`add` each of ``lines``, in order, to the same summary: their scores are
        gathered by component and folded with :meth:`ComponentStats.add_all`, once each.

        Why: ``POST /grade`` summarises every batch it answers, and a call to
        :meth:`ComponentStats.add` per score was most of that cost. For a face holding a whole
        batch; one reading a file line by line keeps :meth:`add`. Should a line hold a score
        that is no number, the error is raised once the lines have been read, not at that
        line."""
        scored: dict[str, list[float]] = {}
        for line in lines:
            self._add(line, scored)
        components = self.components
        for name, scores in scored.items():
            components[name].add_all(scores)

    def add_results(
        self, results: Iterable[RecordResult], *, metadata: bool = True
    ) -> tuple[list[dict[str, Any]], dict[str, int] | None]:
        """Each result's wire record (:func:`~rm_service._wire.record_json`, ``metadata`` as
        there), folded in as :meth:`add_all` of those records would fold them; and, when every
        record was *plain* (below), how many scored each component, by name in the order
        first seen: all a face's metrics need of such records (every component ``ok``).

        A plain record (:func:`~rm_service._wire.plain_line`: every component a score, a
        reward, no judge call) is folded here with nothing to read back (no status, no usage,
        no errors); any other record takes ``record_json`` and :meth:`add`'s reading of it.

        Why: ``POST /grade`` walked a batch's results three times (the wire records, this
        summary, the metrics), and each walk's per-record work was a visible share of a cheap
        reward's cost; this is one walk, the same records and the same figures."""
        lines: list[dict[str, Any]] = []
        scored: dict[str, list[float]] = {}
        components = self.components
        plain = 0
        every = True
        for rec in results:
            line = plain_line(rec, metadata=metadata)
            if line is not None:
                lines.append(line)
                plain += 1
                for name, score in line["scores"].items():
                    column = scored.get(name)
                    if column is None:
                        if name not in components:
                            components[name] = ComponentStats(name)
                        column = scored[name] = []
                    column.append(score)
                continue
            every = False
            line = record_json(rec, metadata=metadata)
            lines.append(line)
            self._add(line, scored)
        self.records += plain
        self.ok += plain
        for name, column in scored.items():
            components[name].add_all(column)
        return lines, ({n: len(c) for n, c in scored.items()} if every else None)

    def _add(self, line: Mapping[str, Any], scored: dict[str, list[float]] | None) -> None:
        """Fold in ``line``; its scores into their components now, or, given ``scored``, into
        its lists by component name, for the caller to fold (unscored ones are counted now)."""
        self.records += 1
        status = line.get("status")
        errors = line.get("errors") or {}
        for name, score in (line.get("scores") or {}).items():
            stats = self.components.get(name)
            if stats is None:
                stats = self.components[name] = ComponentStats(name)
            if score is None:
                stats.add(None, errors.get(name, {}).get("kind"))
            elif scored is None:
                stats.add(score)
            else:
                column = scored.get(name)
                if column is None:
                    column = scored[name] = []
                column.append(score)
        if status == "ok":
            self.ok += 1
        else:
            if status == "error":
                self.error += 1
                kind = "invalid_input"
            else:
                self.unscored += 1
                kind = errors.get(self.reward_name or "", {}).get("kind")
            if not kind:
                kind = next((e.get("kind") for e in errors.values() if e.get("kind")), "unknown")
            self.unscored_records[kind] += 1
        self.judge.add(line)

    def unscored_components(self) -> Counter[str]:
        """Unscored components (graders and aggregates) over all records, by kind."""
        kinds = Counter[str]()
        for s in self.components.values():
            kinds.update(s.unscored)
        return kinds

    def to_json(self, latency_s: float | None = None) -> dict[str, Any]:
        """The summary as JSON (``/grade``'s ``summary``): counts, each component's mean over
        the records that scored it, the unscored counts by kind, and the judge usage."""
        kinds = dict(self.unscored_components())
        out: dict[str, Any] = {
            "n": self.records,
            "ok": self.ok,
            "unscored": self.unscored,
            "error": self.error,
            "means": {n: (s.mean if s.n else None) for n, s in self.components.items()},
            "unscored_records_by_kind": dict(self.unscored_records),
            "unscored_components_by_kind": kinds,
            "unscored_by_kind": dict(kinds),
            "usage": self.judge.usage(),
        }
        if latency_s is not None:
            out["latency_s"] = round(latency_s, 6)
        return out

    def table(self) -> str:
        """A fixed-width text table for the terminal."""
        cols = ("mean", "std", "min", "max")
        head = (
            f"{'component':<24} " + " ".join(f"{c:>7}" for c in cols) + f" {'n':>8} {'unscored':>9}"
        )
        rows = [head, "-" * len(head)]
        for s in self.components.values():
            if s.n:
                nums = f"{s.mean:>7.4f} {s.std:>7.4f} {s.min:>7.4f} {s.max:>7.4f}"
            else:
                nums = f"{'-':>7} {'-':>7} {'-':>7} {'-':>7}"
            rows.append(f"{s.name:<24} {nums} {s.n:>8} {s.n_unscored:>9}")
        counts = (
            f"records: {self.records}, reward scored: {self.ok}, unscored: {self.records - self.ok}"
        )
        if self.error:
            counts += f" ({self.error} for invalid input)"
        rows.append(counts)
        if self.duplicates:
            rows.append(f"duplicate lines ignored: {self.duplicates} (the first of each counts)")
        kinds = self.unscored_components()
        if self.judge.calls or self.judge.cached:
            rows.append(self.judge.line())
        if kinds:
            rows.append(
                "unscored components by kind: "
                + ", ".join(f"{k}={v}" for k, v in kinds.most_common())
            )
        return "\n".join(rows)

    def write_html(self, path: str | Path, title: str = "rm-service report") -> None:
        """Write a self-contained HTML report: the table and one histogram per component."""
        charts = "\n".join(_svg_histogram(s) for s in self.components.values())
        body = (
            f"<pre>{html.escape(self.table())}</pre>\n"
            f"<h2>Reward histograms (score in [0, 1], {BINS} bins)</h2>\n{charts}"
        )
        write_html_page(path, title, body)


def write_html_page(path: str | Path, title: str, body: str) -> None:
    """Write ``body`` (HTML) as a self-contained page under an ``<h1>`` of ``title``; shared by
    the run report and ``rm-service audit``'s report."""
    doc = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:system-ui,sans-serif;margin:2em;color:#222}}
pre{{background:#f6f6f6;padding:1em}} figure{{display:inline-block;margin:1em}}
figcaption{{font-weight:600}}</style></head><body>
<h1>{html.escape(title)}</h1>
{body}
</body></html>
"""
    # backslashreplace: a lone surrogate (in a file name, say) must not lose the report
    Path(path).write_text(doc, encoding="utf-8", errors="backslashreplace")


def _svg_histogram(s: ComponentStats, width: int = 360, height: int = 160) -> str:
    top = max(s.hist) or 1
    bar_w = width / BINS
    bars = []
    for i, count in enumerate(s.hist):
        h = (height - 20) * count / top
        lo, hi = i / BINS, (i + 1) / BINS
        bars.append(
            f'<rect x="{i * bar_w:.1f}" y="{height - 20 - h:.1f}" width="{bar_w - 1:.1f}" '
            f'height="{h:.1f}" fill="#4a7bd0"><title>[{lo:.2f}, {hi:.2f}): {count}</title></rect>'
        )
        if count:
            bars.append(
                f'<text x="{(i + 0.5) * bar_w:.1f}" y="{max(10.0, height - 23 - h):.1f}" '
                f'font-size="9" text-anchor="middle">{count}</text>'
            )
    caption = f"{html.escape(s.name)}: n={s.n}, unscored={s.n_unscored}"
    if s.n:
        caption += f", mean={s.mean:.3f}"
    return (
        f'<figure><figcaption>{caption}</figcaption><svg width="{width}" height="{height}" '
        f'xmlns="http://www.w3.org/2000/svg" role="img">{"".join(bars)}'
        f'<text x="0" y="{height - 4}" font-size="11">0</text>'
        f'<text x="{width - 10}" y="{height - 4}" font-size="11">1</text></svg></figure>'
    )


def summarize_jsonl(lines: Iterable[str], reward_name: str | None = None) -> RunSummary:
    """Summarise output lines (a file object works) in one pass and flat memory.

    Each input ``line`` counts once: a later output line with a ``line`` already seen (left by
    an interrupted or concurrent run) is counted in ``duplicates``, not in the statistics, so
    the summary describes the input, not the accidents of how the output was written.
    """
    summary = RunSummary(reward_name=reward_name)
    seen = LineSet()
    for raw in lines:
        if not raw.strip():
            continue
        row = json.loads(raw)
        line = row.get("line")
        if type(line) is int and not seen.add(line):
            summary.duplicates += 1
            continue
        summary.add(row)
    return summary
