"""What an offline output was graded from: the run record ``OUT.run.json``.

One idea: resume keys on line numbers, so it is only right while the reward and the graded input
lines are those the output was made with. A run record beside the output holds a fingerprint of
the reward and a digest of each of the input's first lines; a resume from another reward, or
from an input whose graded lines moved or changed, is refused rather than mixed in (it used to
skip and mislabel records, or mix two rewards in one file, without a word).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rm_service._exceptions import InputError
from rm_service._io import io_error
from rm_service._readers import detect_format
from rm_service._runner import GradingRunner
from rm_service._summary import LineSet

__all__ = ["check_run_record", "reward_fingerprint", "write_run_record"]


_HEAD_LINES = 64
"""Input lines a run record fingerprints, one digest each: enough to tell another or a
reordered file. Lines after them, and lines not yet graded (a malformed line being fixed),
may change between runs."""


def reward_fingerprint(runner: GradingRunner) -> str:
    """A digest of what makes ``runner``'s rewards: its graders (names, kinds, mappers), its
    aggregators (names, kinds, components, weights) and the reward's name. Settings inside a
    grader (a judge's model, a threshold) count where its repr shows them."""

    def shown(obj: Any) -> str:
        text = repr(obj)
        return type(obj).__qualname__ if " at 0x" in text else text

    parts = {
        "reward": runner.reward_name,
        "graders": [
            [name, shown(gc.grader), gc.mapper if isinstance(gc.mapper, Mapping) else "code"]
            for name, gc in runner.grader_configs.items()
        ],
        "aggregators": [
            [a.name, shown(a), getattr(a, "components", None), getattr(a, "weights", None)]
            for a in runner.aggregators
        ],
    }
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _input_head(src: Path) -> list[str] | None:
    """A short digest of each of the first :data:`_HEAD_LINES` lines of a JSONL file, or
    ``None`` for an input that cannot be read twice (a pipe) or is not JSONL."""
    if detect_format(src) != "jsonl" or not src.is_file():
        return None
    out: list[str] = []
    with io_error("read", src), src.open("rb") as f:
        for raw in f:
            if len(out) == _HEAD_LINES:
                break
            out.append(hashlib.sha256(raw.rstrip(b"\r\n")).hexdigest()[:12])
    return out


def check_run_record(path: Path, src: Path, out: Path, fingerprint: str, done: LineSet) -> bool:
    """Refuse to resume ``out`` from another reward, or from an input whose graded lines are
    not those it was graded from; ``False`` when there is no run record to check (an output
    from before they were kept), ``True`` when it matched.

    Resume keys on line numbers: an input with a line added at the top had every later record
    skipped or labelled with its neighbour's number, and a changed config mixed two rewards in
    one file, without a word.
    """
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
        reward, head = record["reward"], record.get("input")
    except FileNotFoundError:
        return False
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InputError(
            f"{path} is not a readable run record ({exc}); move it aside to resume {out} "
            "without the check"
        ) from None
    if reward != fingerprint:
        raise InputError(
            f"{out} was graded with another reward (its graders, mappers or aggregators differ "
            "from this config's); resuming would mix two rewards in one file. Pass --overwrite "
            "to grade it all again with this one, or write to another output"
        )
    now = _input_head(src) if isinstance(head, list) else None
    if now is not None and isinstance(head, list):
        now += [""] * (len(head) - len(now))  # lines since removed
        for line, (was, is_) in enumerate(zip(head, now[: len(head)], strict=True), start=1):
            if line in done and was != is_:
                raise InputError(
                    f"line {line} of {src} is not the line {out} graded there: the input "
                    "changed, and resuming by line number would skip or mislabel records. "
                    "Pass --overwrite to grade it again, or write to another output"
                )
    return True


def write_run_record(path: Path, src: Path, fingerprint: str) -> None:
    record = {"reward": fingerprint, "input": _input_head(src)}
    with io_error("write", path):
        path.write_text(json.dumps(record) + "\n", encoding="utf-8")
