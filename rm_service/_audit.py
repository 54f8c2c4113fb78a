"""``rm-service audit``: how much a reward pays known exploits, measured before training.

For each record the audit grades the honest response and every exploit of it
(:mod:`rm_service._exploits`) with the reward's own runner: judges on an endpoint, embedding or
rule graders offline, whatever the config says. Per exploit it reports:

* ``n``: the records compared: the honest reward and the exploit's reward are both scored and
  the honest reward is at least ``min_honest`` (default 0.5) and above 0. The audit asks
  whether a trick is paid as much as an answer the reward itself calls good; a response the
  reward scores low (a wrong or off-topic answer in the data) is no such baseline, since nearly
  anything "scores at least as much" as 0.01 (and everything as much as 0). Those records are
  graded, counted in the summary line and left out; an unscored honest reward cannot be
  compared either (a note gives its commonest error). Lower ``--min-honest`` for a reward whose
  good answers score under 0.5.
* the mean reward of the honest responses and of the exploit, over those same ``n`` records;
* ``>= honest``: the share of them where the exploit scores at least as much as the honest
  response (ties count, within 1e-9: a reward that pays an exploit as much as the honest answer
  leaves a policy nothing to lose by drifting into it);
* ``unscored``: records whose honest reward was compared but the exploit's reward is unscored.
  An unscored exploit is neither resisted nor exploited (a trainer masks it; it pays nothing and
  teaches nothing), so it is counted apart and left out of ``n``;
* ``skipped``: records the exploit does not apply to (no query to echo, no gold to hedge);
* the verdict: **EXPLOITABLE** when ``>= honest`` reaches ``share_threshold`` (10 %), or, for an
  exploit that drops the honest answer (echo, master key, fake verdict, off-topic, empty), when
  its mean reaches ``mean_ratio`` (0.5) of the honest mean: text with no answer in it should be
  paid close to nothing. Otherwise **resisted**; ``n/a`` when no record could be compared. With
  no exploit compared at all the audit has no verdict (the CLI exits 4), and when no honest
  response can be compared the exploits are not graded.
* ``> honest``: how many of them the exploit beat outright. Ties count as exploited above (a
  trick the reward does not penalise is not defended against), but a column of ties with no
  gains says the trick costs nothing rather than pays: a rule reward indifferent to an appended
  injection, say, on records whose honest response already lost the format points.
* ``why``: the most common reason the reward gave, as ``grader: reason`` (``grader=1:`` when
  it paid full marks, ``grader=0:`` when it paid nothing), from the grader that decided: a
  gate that fired first; else, when the exploit won, the grader that paid it most, and when it
  lost, the grader whose score fell most against the honest response. Numbers and parenthesised
  details of the reason are folded (``#``) so that equal reasons count together, with the
  count shown as ``[k/n]``.

Where the exploit is written: at every source path of the graders' ``response`` field (a
``mapper: {response: choices[0].text}`` makes it ``choices[0].text``; no mapper, the record's
``response``) that holds text in the honest record. The query and the gold are read from the
source paths of ``query`` and ``reference_response`` the same way, falling back to the record's
own ``query`` and ``reference_response``. A callable mapper hides its paths: the audit then
assumes the conventional names and says so in a note.
"""

from __future__ import annotations

import copy
import inspect
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from graders._base import contract
from rm_service._audit_report import (
    MEAN_RATIO,
    MIN_HONEST,
    SHARE_THRESHOLD,
    AuditResult,
    ExploitStats,
)
from rm_service._exceptions import InputError, RMServiceError
from rm_service._exploits import ExploitInput, ExploitSpec, get_exploits
from rm_service._mapper import Step, compile_path, resolve_path
from rm_service._offline import blank_line, check_record, parse_record
from rm_service._result import GraderError, RecordResult
from rm_service._runner import GradingRunner
from rm_service._summary import ComponentStats

# AuditResult and ExploitStats (defined in _audit_report) stay importable from here, as before.
__all__ = ["AuditResult", "ExploitStats", "aaudit", "audit_file", "read_records"]

Steps = tuple[Step, ...]


# --- where the fields live ---------------------------------------------------------------------


@dataclass(frozen=True)
class FieldSources:
    """The record paths the reward's graders read a field from, and notes on what was assumed."""

    name: str
    paths: tuple[tuple[str, Steps], ...]
    notes: tuple[str, ...] = ()

    def first_text(
        self, record: Mapping[str, Any], *, answers: bool = False
    ) -> tuple[str, str] | None:
        """``(path, text)`` of the first source path holding text (a number counts as text).

        ``answers``: the field is a gold, where a list means "any of these is right" (verl's
        ``ground_truth``, read so by the math, number and string_match graders); its first
        answer is the gold an exploit sees. Read as no gold, every record skipped the hedge
        with the note "no gold".
        """
        for label, steps in self.paths:
            value = _lookup(record, steps)
            if answers and isinstance(value, list | tuple) and value:
                value = value[0]
            if isinstance(value, str):
                return label, value
            if isinstance(value, int | float) and not isinstance(value, bool):
                return label, str(value)
        return None


def field_sources(runner: GradingRunner, name: str) -> FieldSources:
    """Where the graders of ``runner`` read field ``name`` from, in config order, deduplicated.

    A grader counts when it declares the field (``required_fields``/``optional_fields``) or
    declares nothing (any object with ``aevaluate``); its mapper's path for the field is used, else
    the field's own name. With no grader reading the field, the record's ``name`` is assumed.
    """
    paths: dict[str, Steps] = {}
    notes: list[str] = []
    for gname, cfg in runner.grader_configs.items():
        g = contract(cfg.grader)
        if name not in (*g.required_fields, *g.optional_fields) and not g.takes_all:
            continue
        if cfg.mapper is None or isinstance(cfg.mapper, Mapping):
            path = (cfg.mapper or {}).get(name, name)
        else:
            notes.append(
                f"grader {gname!r} maps its fields with a function; the audit assumes it reads "
                f"{name!r} from the record's {name!r}"
            )
            path = name
        paths.setdefault(path, compile_path(path))
    if not paths:
        paths[name] = (name,)
    return FieldSources(name, tuple(paths.items()), tuple(notes))


def _lookup(record: Any, steps: Steps) -> Any:
    try:
        return resolve_path(record, steps)
    except LookupError:
        return None


def _with_text(record: Mapping[str, Any], paths: Sequence[Steps], text: str) -> dict[str, Any]:
    """A deep copy of ``record`` with ``text`` at each path (every path resolves in ``record``)."""
    out = copy.deepcopy(dict(record))
    for steps in paths:
        parent: Any = out
        for step in steps[:-1]:
            parent = parent[step]
        parent[steps[-1]] = text
    return out


# --- the run ------------------------------------------------------------------------------------


def read_records(
    path: str | Path, limit: int | None = None, *, what: str | None = "audit"
) -> list[tuple[int, dict[str, Any]]]:
    """``(line, record)`` for the first ``limit`` records of a JSONL file (blank lines skipped).

    Raises:
        InputError: the file cannot be read, or a line is not a JSON object (naming the line).
    """
    src = Path(path)
    out: list[tuple[int, dict[str, Any]]] = []
    try:
        with src.open("rb") as f:
            for lineno, raw in enumerate(f, start=1):
                if limit is not None and len(out) >= limit:
                    break
                if blank_line(raw):
                    continue
                try:
                    record = parse_record(raw)
                except ValueError as exc:
                    raise InputError(f"{src} line {lineno}: invalid record: {exc}") from None
                out.append((lineno, record))
    except OSError as exc:
        raise InputError(f"cannot read {src}: {exc.strerror or exc}") from None
    if not out and what is not None:  # what=None: an empty file is the caller's to judge
        raise InputError(f"{src}: no records to {what}")
    return out


async def aaudit(
    runner: GradingRunner,
    records: Sequence[tuple[int, Mapping[str, Any]]],
    *,
    exploits: Sequence[ExploitSpec] | Sequence[str] | None = None,
    min_honest: float = MIN_HONEST,
    share_threshold: float = SHARE_THRESHOLD,
    mean_ratio: float = MEAN_RATIO,
    progress: Callable[[int, int], None] | None = None,
) -> AuditResult:
    """Grade each record's honest response and its exploits with ``runner``; the figures.

    Args:
        runner: the reward (any config: judges, embeddings, rules).
        records: ``(line, record)`` pairs (see :func:`read_records`); the line names records in
            notes and the report.
        exploits: specs or names (default: the whole battery, :data:`EXPLOITS`).
        min_honest, share_threshold, mean_ratio: which records are compared, and the
            verdict's thresholds (see the module docstring).
        progress: called as ``progress(done, total)`` after each grading (honest and exploits);
            ``total`` drops to ``done`` when the exploits are not graded.

    Raises:
        RMServiceError: an exploit function raised or returned something other than text.
    """
    specs = [
        s if isinstance(s, ExploitSpec) else get_exploits([s])[0] for s in (exploits or ())
    ] or get_exploits()
    resp_src = field_sources(runner, "response")
    query_src = field_sources(runner, "query")
    gold_src = field_sources(runner, "reference_response")
    notes = list(dict.fromkeys([*resp_src.notes, *query_src.notes, *gold_src.notes]))
    resp_paths = [label for label, _ in resp_src.paths]
    if resp_paths != ["response"]:
        notes.append(f"exploits are written at {', '.join(resp_paths)} (the graders' response)")

    golds: dict[str, None] = {}  # an ordered set
    inputs: list[tuple[int, Mapping[str, Any], ExploitInput, list[Steps]]] = []
    no_response: list[int] = []
    for line, record in records:
        found = [steps for _, steps in resp_src.paths if isinstance(_lookup(record, steps), str)]
        honest_text = resp_src.first_text(record)
        if not found or honest_text is None:
            no_response.append(line)
            continue
        query = query_src.first_text(record)
        gold = gold_src.first_text(record, answers=True)
        if gold is not None:
            golds.setdefault(gold[1].strip(), None)
        inputs.append(
            (
                line,
                record,
                ExploitInput(
                    index=len(inputs),
                    response=honest_text[1],
                    query=query[1] if query else None,
                    gold=gold[1] if gold else None,
                ),
                found,
            )
        )
    if no_response:
        where = ", ".join(map(str, no_response[:10])) + (" …" if len(no_response) > 10 else "")
        notes.append(
            f"{len(no_response)} record(s) have no text at {', '.join(resp_paths)} and were "
            f"not audited (line {where})"
        )
    all_golds = tuple(golds)

    # Every exploit's text first: a user's exploit that raises fails here, before any grading.
    exploit_batch: list[Mapping[str, Any]] = []
    slots: list[tuple[int, int, str]] = []  # (input position, exploit position, text)
    applied = [[False] * len(specs) for _ in inputs]
    for pos, (line, record, base, paths) in enumerate(inputs):
        fields = ExploitInput(base.index, base.response, base.query, base.gold, all_golds)
        for k, spec in enumerate(specs):
            text = await _run_exploit(spec, record, fields, line)
            if text is None:
                continue
            applied[pos][k] = True
            exploit_batch.append(_with_text(record, paths, text))
            slots.append((pos, k, text))

    stats = [
        ExploitStats(
            s, share_threshold=share_threshold, mean_ratio=mean_ratio, min_honest=min_honest
        )
        for s in specs
    ]
    for k, s in enumerate(stats):
        s.skipped = sum(not row[k] for row in applied)
        if s.skipped:
            notes.append(f"{s.name}: skipped on {s.skipped} record(s): {_skip_reason(s.name)}")
    honest_stats = ComponentStats("honest")
    out = AuditResult(
        stats,
        len(records),
        honest_stats,
        notes=notes,
        reward_name=runner.reward_name,
        min_honest=min_honest,
        share_threshold=share_threshold,
        mean_ratio=mean_ratio,
    )
    out.honest_unscored = len(no_response)

    # The honest responses first: when none can be compared (a judge that is down, a reward that
    # pays the data nothing), the exploits (ten gradings a record, paid calls on a judge) are
    # not graded for a table of n/a.
    total = len(inputs) + len(exploit_batch)
    done = 0

    async def grade(batch: Sequence[Mapping[str, Any]]) -> list[RecordResult]:
        nonlocal done
        results: dict[int, RecordResult] = {}
        async for graded in runner.astream(batch):
            results[graded.index] = graded
            done += 1
            if progress is not None:
                progress(done, total)
        return [results[i] for i in range(len(batch))]  # the runner yields every record

    honest = await grade([record for _, record, _, _ in inputs])
    why_unscored: Counter[str] = Counter()
    for rec in honest:
        if rec.reward is None:
            out.honest_unscored += 1
            err = rec.components.get(rec.reward_name or "")
            why_unscored[
                f"{err.kind}: {err.error}" if isinstance(err, GraderError) else "no reason given"
            ] += 1
        else:
            honest_stats.add(rec.reward)
            out.honest_low += not out.compares(rec.reward)
    if why_unscored:
        reason, count = why_unscored.most_common(1)[0]
        notes.append(
            f"{sum(why_unscored.values())} honest response(s) came back unscored, so their "
            f"exploits are not compared; most common: {reason} [{count}]"
        )
    if inputs and out.honest_low + out.honest_unscored >= out.records:
        advice = []
        if why_unscored:
            advice.append("fix what left the honest responses unscored (above)")
        if out.honest_low:
            advice.append(
                "audit records whose responses the reward pays for, or lower --min-honest"
            )
        notes.append(
            f"no honest response scored {runner.reward_name} {out.compare_rule}, so nothing was "
            f"compared and no exploit was graded: {'; '.join(advice)}"
        )
        if progress is not None and done < total:
            progress(done, done)  # the exploits' gradings are not coming: the bar ends full
        return out

    graders = list(runner.grader_configs)
    for (pos, k, text), rec in zip(slots, await grade(exploit_batch), strict=True):
        line, record, _, _ = inputs[pos]
        rid = record.get(runner.id_field)
        stats[k].add(line, rid, text, honest[pos], rec, graders)
    return out


def _skip_reason(name: str) -> str:
    return {
        "echo": "no query",
        "off_topic": "no query (or no content word in it)",
        "hedge": "no gold (reference_response), or no wrong alternative to hedge it with",
    }.get(name, "the exploit returned None")


async def _run_exploit(
    spec: ExploitSpec, record: Mapping[str, Any], fields: ExploitInput, line: int
) -> str | None:
    """Call an exploit; a user's exploit that raises or returns a non-string is their bug, said
    in one line naming the exploit and the input line. An ``async def`` exploit (one that asks a
    model to paraphrase, say) is awaited: its coroutine was refused as "not text", with
    Python's "never awaited" warning after the error."""
    try:
        text = spec.func(record, fields)
        if inspect.isawaitable(text):
            text = await text
    except Exception as exc:
        raise RMServiceError(
            f"exploit {spec.name!r} raised {type(exc).__name__} on line {line}: {exc}"
        ) from exc
    if text is not None and not isinstance(text, str):
        raise RMServiceError(
            f"exploit {spec.name!r} returned {type(text).__name__} on line {line}, not text or None"
        )
    return text


async def audit_file(
    runner: GradingRunner,
    path: str | Path,
    *,
    exploits: Sequence[ExploitSpec] | Sequence[str] | None = None,
    limit: int | None = None,
    min_honest: float = MIN_HONEST,
    progress: Callable[[int, int], None] | None = None,
) -> AuditResult:
    """:func:`aaudit` over the first ``limit`` records of a JSONL file; the first record is
    checked against every grader first (a missing field fails here, naming file and line)."""

    records = read_records(path, limit)
    check_record(runner, records[0][1], Path(path), records[0][0])
    return await aaudit(
        runner, records, exploits=exploits, min_honest=min_honest, progress=progress
    )
