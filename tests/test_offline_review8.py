"""``rm-service grade`` on an existing output: advice that a resume would refuse is not given."""

from __future__ import annotations

from pathlib import Path

from tests.cli_support import RULES, cli, one_error_line, read_jsonl, record, write_jsonl


def test_an_output_from_another_input_or_reward_is_not_sent_to_resume(tmp_path: Path) -> None:
    """The output exists and no flag was given: the advice was "pass --resume to continue it",
    which the resume then refused (another input's lines, another reward). The run record is
    read first, so the advice is the one that works: another output, or --overwrite."""
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    a = write_jsonl(tmp_path / "a.jsonl", [record(i) for i in range(3)])
    b = write_jsonl(tmp_path / "b.jsonl", [record(i + 10) for i in range(3)])
    out = tmp_path / "out.jsonl"
    assert cli("grade", a, "-c", rules, "-o", out, cwd=tmp_path).returncode == 0
    before = out.read_bytes()

    r = cli("grade", b, "-c", rules, "-o", out, cwd=tmp_path)
    line = one_error_line(r.stderr)
    assert r.returncode == 1 and "pass --resume" not in line, line  # old code: "pass --resume"
    assert "line 1 of" in line and "another output" in line

    other = tmp_path / "other.yaml"
    other.write_text("graders:\n  length: {type: length_penalty, max_len: 10, buffer: 10}\n")
    r = cli("grade", a, "-c", other, "-o", out, cwd=tmp_path)
    line = one_error_line(r.stderr)
    assert r.returncode == 1 and "graded with another reward" in line, line
    assert out.read_bytes() == before  # nothing changed

    # The same input and reward: --resume is the advice, and it works.
    r = cli("grade", a, "-c", rules, "-o", out, cwd=tmp_path)
    assert r.returncode == 1 and "pass --resume" in one_error_line(r.stderr)
    r = cli("grade", a, "-c", rules, "-o", out, "--resume", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert sorted(row["id"] for row in read_jsonl(out)) == [0, 1, 2]
