"""``rm-service grade --engine ray`` and ``integrations.ray.grade_dataset`` on a real local Ray
(the session's ``ray_instance``): the same rewards as the local CLI, Parquet in and out, a
SIGKILLed job resumed to exactly one row per record, and one-line errors for bad inputs."""

from __future__ import annotations

import bz2
import gzip
import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from rm_service import InputError, grade_file
from rm_service._config import load_runner
from tests.cli_support import ROOT, cli, cli_cmd, env, one_error_line, read_jsonl, write_jsonl
from tests.judge_server import JudgeServer, Reply
from tests.ray.conftest import RayInstance

EXAMPLES = ROOT / "examples"

# Ray Data's DataContext copies itself field by field, deprecated fields included: Ray's
# warnings, not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:ray.data.context")


def ray_rows(out: Path) -> list[dict[str, Any]]:
    """Every row of a ``--engine ray`` output directory, JSONL or Parquet parts."""
    rows: list[dict[str, Any]] = []
    for part in sorted(out.iterdir()):
        if part.suffix == ".jsonl":
            rows += read_jsonl(part)
        elif part.suffix == ".parquet":
            rows += pq.read_table(part).to_pylist()
    return rows


def by_line(rows: list[dict[str, Any]], *drop: str) -> dict[int, dict[str, Any]]:
    return {r["line"]: {k: v for k, v in r.items() if k not in drop} for r in rows}


def grade_local(src: Path, cfg: Path, out: Path) -> tuple[list[dict[str, Any]], str]:
    """The local engine, in this process (a subprocess would only add its start-up)."""
    result = grade_file(load_runner(cfg), src, out, progress=False)
    return read_jsonl(out), result.summary.table()


def grade_both(tmp: Path, src: Path, cfg: Path, ray: RayInstance) -> tuple[Any, Any]:
    remote = tmp / "ray.jsonl"
    shutil.copy(src, tmp / src.name)
    # Relative paths, as a user types them: Ray's checkpointing refuses a relative path, and
    # the CLI used to pass it one.
    r = cli(
        "grade", src.name, "-c", cfg, "-o", remote.name, "--engine", "ray",
        "--address", ray.address, "--no-progress", cwd=tmp,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    return grade_local(src, cfg, tmp / "local.jsonl"), (ray_rows(remote), r.stdout)


def same_table(local: str, ray_stdout: str) -> None:
    """The Ray CLI printed the local summary table: the same rows, counts and kinds; means and
    stds equal to the last digit shown but one (rows fold in another order, so the last
    float digit may round the other way)."""
    want = local.splitlines()
    got = ray_stdout.splitlines()[: len(want)]
    for w, g in zip(want, got, strict=True):
        wt, gt = w.split(), g.split()
        assert len(wt) == len(gt), (w, g)
        for a, b in zip(wt, gt, strict=True):
            try:
                assert abs(float(a) - float(b)) <= 2e-4, (w, g)
            except ValueError:
                assert a == b, (w, g)


def test_math_sample_gives_the_local_clis_lines(tmp_path: Path, ray_instance: RayInstance) -> None:
    cfg = EXAMPLES / "reward.yaml"  # math (a worker pool: whole-CPU actors) + rules
    (local, local_out), (remote, ray_out) = grade_both(
        tmp_path, EXAMPLES / "math_sample.jsonl", cfg, ray_instance
    )
    assert len(remote) == len(local) == 32
    # index too: it was the record's place in its Ray batch, repeated across batches
    assert by_line(remote) == by_line(local)
    assert {r["status"] for r in remote} >= {"ok", "error"}  # m-line without a gold answer
    same_table(local_out, ray_out)
    assert (tmp_path / "ray.jsonl.report.html").read_text().count("<svg") == 4


def test_chat_sample_with_a_judge_gives_the_local_clis_rewards(
    tmp_path: Path, ray_instance: RayInstance, judge_server: JudgeServer
) -> None:
    responses = [r["response"] for r in read_jsonl(EXAMPLES / "chat_sample.jsonl")]

    def grade(body: dict[str, Any]) -> Reply:  # a score that depends on the record only
        text = json.dumps(body["messages"])  # (prompts hold a random delimiter: not the text)
        at = next((i for i, r in enumerate(responses) if json.dumps(r)[1:-1] in text), 2)
        return Reply(json.dumps({"reason": "mock", "score": 1 + at % 5}))

    judge_server.responder = grade
    cfg = tmp_path / "judges.yaml"
    cfg.write_text(
        json.dumps(
            {
                "judge": {"backend": "openai", "base_url": judge_server.base_url, "model": "m"},
                # correctness: a judge that loads no embedder (relevance would import torch in
                # every actor, seconds that say nothing about the engine)
                "graders": {
                    "correct": {
                        "type": "correctness",
                        "mapper": {"reference_response": "ground_truth"},
                        "verify": "never",
                    },
                    "length": {"type": "length_penalty", "max_len": 60, "buffer": 60},
                },
                "aggregators": [
                    {
                        "type": "weighted_sum",
                        "name": "reward",
                        "weights": {"correct": 0.8, "length": 0.2},
                    }
                ],
            }
        )
    )
    (local, _), (remote, ray_out) = grade_both(
        tmp_path, EXAMPLES / "chat_sample.jsonl", cfg, ray_instance
    )
    assert len(remote) == len(local) > 0
    want = {r["line"]: (r["reward"], r["scores"]) for r in local}
    assert {r["line"]: (r["reward"], r["scores"]) for r in remote} == want
    assert len({r["reward"] for r in remote}) > 1  # the mock really told records apart
    assert "judge calls:" in ray_out


def test_a_killed_job_resumes_to_every_record_exactly_once(
    tmp_path: Path, ray_instance: RayInstance
) -> None:
    cfg = tmp_path / "slow.yaml"
    cfg.write_text(
        "graders:\n  length: {type: 'tests.support:slow_len'}\n"
        "aggregators:\n  - {type: min, name: reward}\nmax_concurrency: 4\n"
    )
    n = 64
    src = write_jsonl(
        tmp_path / "in.jsonl",
        [{"query": "q", "response": "r" * (i % 30)} for i in range(n)],  # no ids: from lines
    )
    out, ckpt = tmp_path / "out.jsonl", tmp_path / "out.jsonl.checkpoint"
    args = [
        "grade", src, "-c", cfg, "-o", out, "--engine", "ray", "--address", ray_instance.address,
        "--batch-size", "8", "--workers", "1", "--no-progress",
    ]  # fmt: skip
    proc = subprocess.Popen(
        cli_cmd(*args),
        cwd=tmp_path,
        env=env(RM_TEST_DELAY="0.1"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            committed = [p for p in ckpt.glob("*.parquet") if "pending" not in p.name]
            if committed:
                break
            time.sleep(0.05)
        assert proc.poll() is None, "the job ended before it could be killed"
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    before = ray_rows(out)
    assert 0 < len(before) < n
    r = cli(*args, "--resume", cwd=tmp_path, RM_TEST_DELAY="0")
    assert r.returncode == 0, r.stderr
    rows = ray_rows(out)
    lines = sorted(row["line"] for row in rows)
    assert lines == list(range(1, n + 1))  # every record, exactly once
    assert all(row["id"] == row["line"] for row in rows)  # ids from the position
    assert f"graded {n - len(before)} record(s) this run, {len(before)} already done" in r.stdout
    # The checkpoint is kept after success and holds every key: a rerun grades nothing.
    done = pa.concat_tables(pq.read_table(p) for p in ckpt.glob("*.parquet"))
    assert sorted(done.column("key").to_pylist()) == sorted(f"in.jsonl:{i}" for i in lines)
    shutil.rmtree(ckpt)  # without it, what is done is unknown: refuse rather than regrade
    lost = cli(*args, "--resume", cwd=tmp_path)
    assert lost.returncode == 1
    assert "checkpoint" in one_error_line(lost.stderr) and len(ray_rows(out)) == n


def test_parquet_in_parquet_out(tmp_path: Path, ray_instance: RayInstance) -> None:
    rows = read_jsonl(EXAMPLES / "math_sample.jsonl")
    shards = tmp_path / "shards"
    shards.mkdir()
    pq.write_table(pa.Table.from_pylist(rows[:20]), shards / "a.parquet")
    pq.write_table(pa.Table.from_pylist(rows[20:]), shards / "b.parquet")
    (shards / "_SUCCESS").write_text("")  # a marker file is not a shard
    out = tmp_path / "graded.parquet"
    r = cli(
        "grade", shards, "-c", EXAMPLES / "reward.yaml", "-o", out, "--engine", "ray",
        "--address", ray_instance.address, "--no-progress", cwd=tmp_path,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    table = pa.concat_tables(pq.read_table(p) for p in sorted(out.glob("*.parquet")))
    assert table.schema.field("reward").type == pa.float64()
    assert table.schema.field("scores").type == pa.string()  # JSON text: one stable schema
    got = {(r["source"], r["line"]): r for r in table.to_pylist()}
    assert len(got) == 32
    local, _ = grade_local(EXAMPLES / "math_sample.jsonl", EXAMPLES / "reward.yaml",
                           tmp_path / "local.jsonl")  # fmt: skip
    for want in local:
        where = (
            ("a.parquet", want["line"]) if want["line"] <= 20 else ("b.parquet", want["line"] - 20)
        )
        row = got[where]
        assert row["reward"] == want["reward"] and row["id"] == want["id"]
        assert json.loads(row["scores"]) == want["scores"]
        assert json.loads(row["errors"]) == want["errors"]
        assert row["key"] == f"{where[0]}:{where[1]}"


def test_grade_dataset_keeps_a_bad_record_as_an_error_row(ray_instance: RayInstance) -> None:
    import ray.data

    from rm_service.integrations.ray import grade_dataset, rows_from_table

    cfg = {
        "graders": {"format": {"type": "format", "mode": "think_answer"}},
        "aggregators": [{"type": "min", "name": "reward"}],
    }
    items = [
        {"id": "a", "response": "<think>x</think><answer>1</answer>"},
        {"id": "b", "response": None},  # the field the grader needs is missing
    ]
    out = grade_dataset(ray.data.from_items(items), cfg).take_all()
    rows = {r["id"]: r for r in rows_from_table(pa.Table.from_pylist(out))}
    assert rows["a"]["status"] == "ok" and rows["a"]["reward"] == 1.0
    assert rows["b"]["status"] == "error" and rows["b"]["reward"] is None
    assert rows["b"]["errors"]["format"]["kind"] == "invalid_input"


def test_clear_errors_for_missing_input_bad_shard_and_bad_address(
    tmp_path: Path, ray_instance: RayInstance
) -> None:
    rules = EXAMPLES / "rules.yaml"
    missing = cli("grade", tmp_path / "nope.jsonl", "-c", rules, "--engine", "ray", cwd=tmp_path)
    assert missing.returncode == 1
    assert "nope.jsonl: no such file or directory" in one_error_line(missing.stderr)

    shards = tmp_path / "shards"
    shards.mkdir()
    write_jsonl(shards / "a.jsonl", read_jsonl(EXAMPLES / "math_sample.jsonl"))
    (shards / "b.parquet").write_bytes(b"not parquet at all")
    bad = cli(
        "grade", shards, "-c", rules, "-o", tmp_path / "o.parquet", "--engine", "ray",
        "--address", ray_instance.address, "--no-progress", cwd=tmp_path,
    )  # fmt: skip
    assert bad.returncode == 1
    err = one_error_line(bad.stderr)
    assert "b.parquet" in err and "Parquet" in err

    addr = cli(
        "grade", EXAMPLES / "math_sample.jsonl", "-c", rules, "-o", tmp_path / "x.parquet",
        "--engine", "ray", "--address", "ray://127.0.0.1:1", cwd=tmp_path, timeout=30,
    )  # fmt: skip
    assert addr.returncode == 1
    assert "--address ray://127.0.0.1:1: cannot connect" in one_error_line(addr.stderr)


@pytest.mark.parametrize("flag", [["--address", "auto"], ["--workers", "2"]])
def test_ray_flags_need_the_ray_engine(tmp_path: Path, flag: list[str]) -> None:
    r = cli("grade", EXAMPLES / "math_sample.jsonl", *flag, cwd=tmp_path)
    assert r.returncode == 1
    assert "needs --engine ray" in one_error_line(r.stderr)


TWO_NODES = """
import json, sys
import ray, ray.data
from ray._private import state
from ray.cluster_utils import Cluster
from rm_service.integrations.ray import grade_dataset

cluster = Cluster()
cluster.add_node(num_cpus=2, include_dashboard=False)  # two "machines" of 2 CPUs
cluster.add_node(num_cpus=2)
cluster.wait_for_nodes()
ray.init(address=cluster.address, log_to_driver=False)
items = [json.loads(x) for x in open(sys.argv[1])]
cfg = {"graders": {"format": {"type": "format", "mode": "think_answer"}},
       "aggregators": [{"type": "min", "name": "reward"}]}
# 1.5 CPUs an actor: one fits a node, so the two actors must be on both nodes
ds = grade_dataset(ray.data.from_items(items), cfg, num_cpus=1.5, workers=2, min_workers=2,
                   batch_size=4)
rows = ds.take_all()
nodes = {a["Address"]["NodeID"] for a in state.actors().values()
         if "GradeBatch" in a["ActorClassName"] or "MapWorker" in a["ActorClassName"]}
print(json.dumps({"rows": len(rows), "ids": sorted(r["id"] for r in rows),
                  "nodes": len(nodes), "cluster_nodes": len(ray.nodes())}))
ray.shutdown()
cluster.shutdown()
"""


def test_two_nodes_share_the_grading(tmp_path: Path) -> None:
    """Two simulated machines (ray.cluster_utils.Cluster, in a subprocess: one process has one
    Ray): actors on both nodes, every record graded once."""
    src = EXAMPLES / "math_sample.jsonl"
    r = subprocess.run(
        [*cli_cmd()[:1], "-c", TWO_NODES, str(src)],
        cwd=tmp_path,
        env=env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    got = json.loads(r.stdout.strip().splitlines()[-1])
    assert got["cluster_nodes"] == 2 and got["nodes"] == 2
    assert got["ids"] == sorted(x["id"] for x in read_jsonl(src))


def test_shards_of_a_saved_dataset_and_a_glob_keep_their_positions(tmp_path: Path) -> None:
    """The Ray reader numbers a saved dataset's rows across its shards (as load_from_disk
    reads them) and picks a glob's files in path order; no cluster needed to check that."""
    datasets = pytest.importorskip("datasets")
    from rm_service.integrations._ray_io import list_shards, read_shard, resolve

    rows = read_jsonl(EXAMPLES / "math_sample.jsonl")
    saved = tmp_path / "saved"
    datasets.Dataset.from_list(rows).save_to_disk(str(saved), num_shards=3)
    shards = list_shards(str(saved))
    assert len(shards) == 3 and [s.fmt for s in shards] == ["datasets"] * 3
    fs, _ = resolve(str(saved))
    got = [(line, json.loads(rec)) for s in shards for line, rec, _ in read_shard(fs, s)]
    assert [line for line, _ in got] == list(range(1, 33))
    assert [rec for _, rec in got] == rows

    for name in ("b.jsonl", "a.jsonl", "c.txt"):
        write_jsonl(tmp_path / name, rows[:2])
    assert [s.name for s in list_shards(str(tmp_path / "*.jsonl"))] == ["a.jsonl", "b.jsonl"]
    with pytest.raises(InputError, match="no file matches"):
        list_shards(str(tmp_path / "*.parquet"))


def test_without_the_ray_extra_the_error_says_how_to_install_it(tmp_path: Path) -> None:
    code = (
        "import sys; sys.modules['ray'] = None; from rm_service.cli import main; "
        f"sys.exit(main(['grade', {str(EXAMPLES / 'math_sample.jsonl')!r}, '--engine', 'ray']))"
    )
    r = subprocess.run(
        [*cli_cmd()[:1], "-c", code], cwd=tmp_path, env=env(), capture_output=True, text=True
    )
    assert r.returncode == 1
    assert "pip install -e '.[ray]'" in one_error_line(r.stderr)


@pytest.mark.parametrize(
    ("flag", "message"),
    [
        (["--workers", "0"], "--workers must be at least 1"),
        (["--batch-size", "0"], "--batch-size must be at least 1"),
        (["--num-cpus", "0"], "--num-cpus must be more than 0"),
        (["--skip-invalid"], "--skip-invalid is for the local engine"),
    ],
)
def test_bad_ray_flags_fail_before_ray_starts(
    tmp_path: Path, flag: list[str], message: str
) -> None:
    r = cli("grade", EXAMPLES / "math_sample.jsonl", "--engine", "ray", *flag, cwd=tmp_path)
    assert r.returncode == 1
    assert message in one_error_line(r.stderr)


def _batch(records: list[Any]) -> pa.Table:
    """A Ray batch as the CLI's reader shapes it: a key, the line, the record's JSON text, or
    the reason the line is no record."""
    return pa.table(
        {
            "key": [f"f:{i + 1}" for i in range(len(records))],
            "line": list(range(1, len(records) + 1)),
            "record": [r if isinstance(r, str) or r is None else json.dumps(r) for r in records],
            "error": pa.array(
                [
                    f"line {i + 1}: invalid record" if r is None else None
                    for i, r in enumerate(records)
                ],
                pa.string(),
            ),
        }
    )


def _grade_batch(config: Any, table: pa.Table, output: str) -> pa.Table:
    import asyncio

    from rm_service.integrations.ray import GradeBatch

    udf = GradeBatch(
        config, record_column="record", error_column="error", line_column="line",
        keep_columns=("key",), output=output,  # type: ignore[arg-type]
    )  # fmt: skip
    return asyncio.run(udf(table))


@pytest.mark.parametrize("output", ["jsonl", "arrow"])
def test_metadata_strict_json_cannot_hold_neither_fails_the_batch_nor_writes_nan(
    output: str,
) -> None:
    """A grader's metadata holding a numpy number failed the whole Ray job (TypeError in the
    UDF: nothing written), and a NaN (what a reward model reports for a NaN logit) was written
    as the bare word NaN. Both are made plain, as the local CLI writes them."""
    from rm_service._run_files import encode_line

    config = {"graders": {"odd": {"type": "tests.support:odd_metadata"}}}
    out = _grade_batch(config, _batch([{"id": i, "response": "x"} for i in range(3)]), output)
    assert out.num_rows == 3

    def strict(constant: str) -> None:
        raise ValueError(f"not strict JSON: {constant}")

    if output == "jsonl":
        lines = out.column("json").to_pylist()
        rows = [json.loads(line, parse_constant=strict) for line in lines]
        local = load_runner(config).grade([{"id": 0, "response": "x"}])[0]
        from rm_service._wire import record_json

        assert lines[0] + "\n" == encode_line(record_json(local, line=1)).decode()
    else:
        rows = out.to_pylist()
        for row in rows:
            json.loads(row["metadata"], parse_constant=strict)
    assert all(r["status"] == "ok" for r in rows)


def test_an_error_names_its_own_line_when_a_bad_line_comes_before_it() -> None:
    """The runner numbers the good rows it grades; a row after an unreadable one was named by
    the runner's number, which is another row's line ("line 1: ..." on line 2)."""
    config = ROOT / "examples" / "rules.yaml"
    records = [
        None,
        {"id": "a", "response": "<think>x</think><answer>3</answer>"},  # lacks ground_truth
        {"id": "b", "response": "<think>x</think><answer>3</answer>", "ground_truth": "3"},
    ]
    rows = [
        json.loads(j) for j in _grade_batch(config, _batch(records), "jsonl")["json"].to_pylist()
    ]
    assert [(r["line"], r["index"], r["status"]) for r in rows] == [
        (1, 0, "error"), (2, 1, "error"), (3, 2, "ok"),
    ]  # fmt: skip
    missing = [e["error"] for e in rows[1]["errors"].values() if "ground_truth" in e["error"]]
    assert missing and all(m.startswith("line 2: ") or ": line 2: " in m for m in missing)
    assert not any("line 1" in e["error"] for e in rows[1]["errors"].values())


def test_a_checkpoint_left_without_its_output_is_removed_not_obeyed(
    tmp_path: Path, ray_instance: RayInstance
) -> None:
    """The user removed an output and graded again: the old checkpoint listed every record as
    done, so the run wrote nothing and exited 0. Also: each row's index, and a resume with
    another reward."""
    src = tmp_path / "in.jsonl"
    shutil.copy(EXAMPLES / "math_sample.jsonl", src)
    out = tmp_path / "out.jsonl"
    args = ("grade", src, "-c", EXAMPLES / "rules.yaml", "-o", out, "--engine", "ray")
    args += ("--address", ray_instance.address, "--no-progress", "--batch-size", "8")
    assert cli(*args, cwd=tmp_path).returncode == 0
    rows = sorted(ray_rows(out), key=lambda row: row["line"])
    # index is the line counted from 0, as the local engine writes it (it was the place in
    # the Ray batch: lines 9 and 17 both had index 0)
    assert [row["index"] for row in rows] == list(range(32))
    shutil.rmtree(out)
    r = cli(*args, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "a checkpoint without an output" in r.stderr
    assert sorted(row["line"] for row in ray_rows(out)) == list(range(1, 33))
    other = tmp_path / "other.yaml"  # and a resume with another reward is refused
    other.write_text("graders:\n  length: {type: length_penalty, max_len: 10, buffer: 10}\n")
    r = cli(*args[:3], other, *args[4:], "--resume", cwd=tmp_path)
    assert r.returncode == 1 and "graded with another reward" in one_error_line(r.stderr)


def test_a_jsonl_file_opening_with_a_bom_is_graded_as_the_local_engine_grades_it(
    tmp_path: Path, ray_instance: RayInstance
) -> None:
    """The local engine graded it; the Ray engine failed with a JSONDecodeError traceback (a
    second shard's first record became an error row)."""
    src = tmp_path / "bom.jsonl"
    rows = read_jsonl(EXAMPLES / "math_sample.jsonl")[:3]
    src.write_bytes(b"\xef\xbb\xbf" + "".join(json.dumps(r) + "\n" for r in rows).encode())
    out = tmp_path / "out.jsonl"
    r = cli(
        "grade", src, "-c", EXAMPLES / "rules.yaml", "-o", out, "--engine", "ray",
        "--address", ray_instance.address, "--no-progress", cwd=tmp_path,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    got = sorted(ray_rows(out), key=lambda row: row["line"])
    assert [row["id"] for row in got] == [row["id"] for row in rows]
    assert all(row["status"] == "ok" for row in got)


def test_an_id_utf8_cannot_hold_is_a_row_not_a_failed_parquet_job() -> None:
    """A JSONL record's id may be a lone surrogate ("\\ud800", valid JSON); the JSONL output
    kept it, but Arrow refused the raw string, so with Parquet output the batch raised and the
    whole Ray job failed. It is written as its (ASCII-escaped) JSON text, as a non-text id is."""
    config = ROOT / "examples" / "rules.yaml"
    ok = "<think>x</think><answer>3</answer>"
    records = [
        json.dumps({"id": "\ud800x", "response": ok, "ground_truth": "3"}),
        {"id": "café", "response": ok, "ground_truth": "3"},
    ]
    rows = _grade_batch(config, _batch(records), "arrow").to_pylist()
    assert [r["status"] for r in rows] == ["ok", "ok"]
    assert json.loads(rows[0]["id"]) == "\ud800x" and rows[1]["id"] == "café"


def test_resume_with_the_output_inside_the_input_directory_grades_no_output_file(
    tmp_path: Path, ray_instance: RayInstance
) -> None:
    """``grade data/ -o data/out.jsonl``: the resume listed the input directory again and found
    the first run's part files, its checkpoint (Parquet) and its run record (.json), and graded
    each of their rows as a record (error rows, 3 records became 3 + 3 + 3 + 1)."""
    data = tmp_path / "data"
    data.mkdir()
    rows = read_jsonl(EXAMPLES / "math_sample.jsonl")[:3]
    write_jsonl(data / "in.jsonl", rows)
    out = data / "out.jsonl"
    args: tuple[str | Path, ...] = ("grade", data, "-c", EXAMPLES / "rules.yaml", "-o", out)
    args += ("--engine", "ray", "--address", ray_instance.address, "--no-progress")
    assert cli(*args, cwd=tmp_path).returncode == 0
    r = cli(*args, "--resume", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    got = ray_rows(out)
    assert sorted((row.get("source", "in.jsonl"), row["line"]) for row in got) == [
        ("in.jsonl", 1), ("in.jsonl", 2), ("in.jsonl", 3),
    ]  # fmt: skip
    assert all(row["status"] == "ok" for row in got)


def test_a_glob_star_stops_at_a_slash(tmp_path: Path) -> None:
    """``rollouts/*.jsonl`` took ``rollouts/backup/a.jsonl`` too (fnmatch's ``*`` matches
    ``/``): a backup copy, or an earlier run's output parts, graded as more records."""
    from rm_service.integrations._ray_io import list_shards

    rows = read_jsonl(EXAMPLES / "math_sample.jsonl")[:2]
    for name in ("a.jsonl", "backup/a.jsonl", "old.jsonl/part-0.jsonl", "x/y/b.jsonl"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        write_jsonl(tmp_path / name, rows)
    assert [s.name for s in list_shards(str(tmp_path / "*.jsonl"))] == ["a.jsonl"]
    assert [s.name for s in list_shards(str(tmp_path / "*" / "*.jsonl"))] == [
        "backup/a.jsonl",
        "old.jsonl/part-0.jsonl",
    ]
    assert [s.name for s in list_shards(str(tmp_path / "x" / "*" / "b.jsonl"))] == ["y/b.jsonl"]


def test_a_globstar_still_crosses_directories(tmp_path: Path) -> None:
    """``*`` stopping at ``/`` made ``**`` one directory too: ``rollouts/**/*.jsonl`` lost
    every file two levels down and ``rollouts/**`` every file below the top, without a word."""
    from rm_service.integrations._ray_io import list_shards

    rows = read_jsonl(EXAMPLES / "math_sample.jsonl")[:1]
    for name in ("a.jsonl", "x/b.jsonl", "x/y/c.jsonl", "x/y/c.txt"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        write_jsonl(tmp_path / name, rows)
    every = ["a.jsonl", "x/b.jsonl", "x/y/c.jsonl"]
    assert [s.name for s in list_shards(str(tmp_path / "**" / "*.jsonl"))] == every
    assert [s.name for s in list_shards(str(tmp_path / "**"))] == every
    assert [s.name for s in list_shards(str(tmp_path / "**" / "y" / "*.jsonl"))] == ["x/y/c.jsonl"]
    assert [s.name for s in list_shards(str(tmp_path / "*" / "*.jsonl"))] == ["x/b.jsonl"]


def test_each_actor_gets_its_share_of_an_endpoints_rate_limit(tmp_path: Path) -> None:
    """Every grading actor builds its own runner, so its own limiter: with ``rpm: 60`` and
    four actors the judge got four times 60 a minute (measured: 18 requests in 5 s). Each
    actor's config now holds a quarter; a budget shared through Redis is left whole."""
    from rm_service.integrations._ray_cli import _plain_config

    judge = {"backend": "openai", "base_url": "http://127.0.0.1:9/v1", "model": "m"}
    cfg = {
        "judge": {**judge, "rpm": 60, "tpm": 1000},
        "graders": {
            "a": {"type": "correctness", "mapper": {"reference_response": "ground_truth"}},
            "b": {
                "type": "correctness",
                "mapper": {"reference_response": "ground_truth"},
                "judge": {**judge, "rpm": 600, "rate_limit_redis": "redis://127.0.0.1:9/0"},
            },
            "c": {"type": "remote_reward_model", "url": "http://127.0.0.1:9", "rpm": 40},
            # YAML reads 1e3 as a string, and the config reads that as 1000
            "d": {"type": "correctness", "judge": {**judge, "rpm": "1e3"}},
        },
    }
    path = tmp_path / "reward.yaml"
    path.write_text(json.dumps(cfg))
    for source in (cfg, str(path)):
        got = _plain_config(source, 0.25, 4)
        assert (got["judge"]["rpm"], got["judge"]["tpm"]) == (15, 250)
        assert got["graders"]["b"]["judge"]["rpm"] == 600  # shared through Redis already
        assert got["graders"]["c"]["rpm"] == 10
        assert got["graders"]["d"]["judge"]["rpm"] == 250
        assert _plain_config(source, 0.25, 1)["judge"]["rpm"] == 60
    assert cfg["judge"]["rpm"] == 60  # the caller's dict is not changed


def test_compressed_jsonl_in_a_directory_is_read_not_skipped(tmp_path: Path) -> None:
    """A directory of ``a.jsonl`` and ``b.jsonl.gz`` graded ``a.jsonl`` alone: the compressed
    file was skipped without a word, its records never graded (a single named ``.jsonl.gz``
    was read, Arrow decompressing it by its name)."""
    from rm_service.integrations._ray_io import list_shards, read_shard, resolve

    rows = read_jsonl(EXAMPLES / "math_sample.jsonl")[:3]
    write_jsonl(tmp_path / "a.jsonl", rows[:1])
    payload = "".join(json.dumps(r) + "\n" for r in rows[1:]).encode()
    (tmp_path / "b.jsonl.gz").write_bytes(gzip.compress(payload))
    (tmp_path / "c.jsonl.bz2").write_bytes(bz2.compress(payload))
    (tmp_path / "notes.txt.gz").write_bytes(gzip.compress(b"not records\n"))
    shards = list_shards(str(tmp_path))
    assert [s.name for s in shards] == ["a.jsonl", "b.jsonl.gz", "c.jsonl.bz2"]
    fs, _ = resolve(str(tmp_path))
    got = [json.loads(rec) for s in shards for _, rec, err in read_shard(fs, s) if not err]
    assert got == rows[:1] + rows[1:] + rows[1:]
    assert [s.name for s in list_shards(str(tmp_path / "*.jsonl.gz"))] == ["b.jsonl.gz"]
