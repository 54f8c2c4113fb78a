"""Regressions that today's fixes introduced, found by review 9.

* **A small answer rounded as asked scored 0.** :func:`graders._math_unequal.rounded_together`
  kept an equal verdict only within 0.1% of the gold, so ``0.0123`` for 1/81 and ``0.0046`` for
  0.004567 (four decimal places, what the question asked), ``0.00123`` for 1.23456e-3 (three
  significant figures) lost the 1.0 math-verify gave them. An answer with at least two
  significant digits that is the gold rounded to its own last digit is honest rounding; a
  single digit (``0.0001`` for anything small) is still the farm the check stops.
"""

from __future__ import annotations

from typing import Any

import pytest

from rm_service import GraderScore
from rm_service.models import ChatResult, JudgeCache, SamplingParams, Usage
from tests.graders.test_default_reward_review8 import graded, tagged
from tests.redis_support import RedisServer, cached_call, redis_server

__all__ = ["redis_server"]  # the fixture, imported for pytest


# --- rounded to the answer's own last digit ------------------------------------------------------


@pytest.mark.parametrize(
    ("gold", "answer"),
    [
        (r"\frac{1}{81}", "0.0123"),  # "to four decimal places"
        ("0.004567", "0.0046"),
        ("-0.004567", "-0.0046"),
        (r"\frac{\sqrt{2}}{100}", "0.0141"),
        (r"1.23456 \times 10^{-3}", "0.00123"),  # three significant figures
        ("0.00012345", "0.00012"),
    ],
)
async def test_a_small_answer_rounded_to_its_last_digit_scores_1(gold: str, answer: str) -> None:
    result = await graded(gold, tagged(answer))
    assert result.score == 1.0, result.reason


@pytest.mark.parametrize(
    ("gold", "answer"),
    [("0.00012345", "0.0001"), ("0.00000001", "0.0"), ("0.0046", "0.0047")],
)
async def test_a_single_digit_or_a_wrong_last_digit_still_scores_0(gold: str, answer: str) -> None:
    result = await graded(gold, tagged(answer))
    assert result.score == 0.0, result.reason


# --- listing a local directory of many files -----------------------------------------------------


def _counting(monkeypatch: pytest.MonkeyPatch, module: Any, name: str) -> list[str]:
    """Record each path ``module.os.<name>`` is called with (os.stat, os.scandir...)."""
    calls: list[str] = []
    real = getattr(module.os, name)

    def counted(path: Any, *args: Any, **kwargs: Any) -> Any:
        calls.append(str(path))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(module.os, name, counted)
    return calls


def test_a_directory_listing_stats_each_file_once_and_skips_hidden_trees(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The link-safe walk stat-ed every file again (``_once``) and resolved each one's real path
    (a stat per directory above it), and walked ``.git``: thousands of files listed 2-4 times
    slower than Arrow's listing did. Each file is now stat-ed by the walk alone, and only a
    file reached by several paths has its real path resolved."""
    pytest.importorskip("ray")
    from rm_service.integrations import _ray_io

    data = tmp_path / "data"
    for d in ("a", "b"):
        (data / d).mkdir(parents=True)
        for i in range(5):
            (data / d / f"part-{i}.jsonl").write_text('{"response": "x"}\n')
    (data / ".git" / "objects").mkdir(parents=True)
    (data / ".git" / "objects" / "x").write_text("blob")
    (data / "a" / "twin.jsonl").symlink_to(data / "a" / "part-0.jsonl")

    stats = _counting(monkeypatch, _ray_io, "stat")
    scans = _counting(monkeypatch, _ray_io, "scandir")
    resolved: list[str] = []
    real_realpath = _ray_io.os.path.realpath
    monkeypatch.setattr(
        _ray_io.os.path, "realpath", lambda p: resolved.append(str(p)) or real_realpath(p)
    )
    shards = _ray_io.list_shards(str(data))

    assert [s.name for s in shards] == [f"{d}/part-{i}.jsonl" for d in "ab" for i in range(5)]
    assert stats == []
    assert not any(".git" in p for p in scans)
    files = [p for p in resolved if p.endswith(".jsonl")]
    assert sorted(files) == sorted(
        [str(data / "a" / "part-0.jsonl"), str(data / "a" / "twin.jsonl")]
    )


# --- a judge cache's keep test that raises -------------------------------------------------------

KEY = JudgeCache.make_key("g", "m", [{"role": "user", "content": "q"}], SamplingParams())


def _broken_keep(result: ChatResult) -> bool:
    raise TypeError("no verdict field")


async def _fresh() -> ChatResult:
    return ChatResult(text="VERDICT: 1", model="m", usage=Usage(3, 1))


async def test_a_keep_that_raises_on_a_fresh_answer_leaves_no_call_in_flight() -> None:
    """It raised past the owner's release, so the key stayed in flight and every later request
    for it waited for ever. The answer is now returned and not stored."""
    cache = JudgeCache()
    got = await cache.get_or_call(KEY, _fresh, keep=_broken_keep)
    assert (got.text, got.cached) == ("VERDICT: 1", False)
    assert cache.stats()["in_flight"] == 0
    assert cache.get(KEY) is None  # not stored: the next request asks the judge again


async def test_a_keep_that_raises_on_a_stored_answer_is_a_miss(redis_server: RedisServer) -> None:
    """Inside ``RedisStore.get`` (today's change) the test's exception escaped the store, which
    never raises, leaving the key in flight (the next request hung) and counting neither a hit
    nor a miss. The stored answer is now a miss, and the judge's answer is returned."""
    redis_server.flush()
    await cached_call(redis_server.url, KEY, _fresh)
    got, cache = await cached_call(redis_server.url, KEY, _fresh, keep=_broken_keep)
    assert (got.text, got.cached) == ("VERDICT: 1", False)
    assert cache.stats()["in_flight"] == 0
    assert cache.stats()["store"] == {"get_miss": 1}


# --- final_answer and content parts --------------------------------------------------------------


def _rollout(user: Any, final: Any) -> list[dict[str, Any]]:
    return [{"role": "user", "content": user}, {"role": "assistant", "content": final}]


async def test_final_answer_reads_a_question_in_content_parts_for_the_echo_check() -> None:
    """The echo check's question took string contents only: written in OpenAI's parts form,
    "Simplify 6/8" answered ``6/8`` scored 1.0 (0.0 as a string)."""
    from graders._agent import FinalAnswerGrader

    parts = [{"type": "text", "text": "Simplify 6/8."}]
    result = await FinalAnswerGrader().aevaluate(
        messages=_rollout(parts, r"\boxed{6/8}"), reference_response="3/4"
    )
    assert isinstance(result, GraderScore) and result.score == 0.0, result
    assert result.metadata.get("echo") is True


async def test_final_answer_reads_a_final_answer_in_content_parts() -> None:
    """Every grader reads a text field in parts form; final_answer refused a final assistant
    message in it as invalid input, so the rollout went unscored."""
    from graders._agent import FinalAnswerGrader

    final = [{"type": "text", "text": r"\boxed{3/4}"}]
    result = await FinalAnswerGrader().aevaluate(
        messages=_rollout("Simplify 6/8.", final), reference_response="3/4"
    )
    assert isinstance(result, GraderScore) and result.score == 1.0, result


# --- grade without a flag on an existing output --------------------------------------------------


def test_grade_without_a_flag_changes_nothing_and_reads_no_foreign_output(tmp_path: Any) -> None:
    """Checking the run record before the advice read the output with the resume's scan: a
    torn last line was cut off the file by a run that was only refused, and a file that is not
    rm-service output (named by mistake) got "cannot resume. Fix or delete that line"."""
    from tests.cli_support import RULES, cli, one_error_line, record, write_jsonl

    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    src = write_jsonl(tmp_path / "a.jsonl", [record(i) for i in range(3)])
    out = tmp_path / "out.jsonl"
    assert cli("grade", src, "-c", rules, "-o", out, cwd=tmp_path).returncode == 0
    torn = out.read_bytes() + b'{"line": 4, "sco'
    out.write_bytes(torn)
    r = cli("grade", src, "-c", rules, "-o", out, cwd=tmp_path)
    assert r.returncode == 1 and "pass --resume" in one_error_line(r.stderr)
    assert out.read_bytes() == torn

    notes = write_jsonl(tmp_path / "notes.jsonl", [{"a": 1}])
    (tmp_path / "notes.jsonl.run.json").write_bytes((tmp_path / "out.jsonl.run.json").read_bytes())
    r = cli("grade", src, "-c", rules, "-o", notes, cwd=tmp_path)
    line = one_error_line(r.stderr)
    assert r.returncode == 1 and "exists" in line and "Fix or delete" not in line, line
