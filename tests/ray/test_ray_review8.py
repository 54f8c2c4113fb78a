"""``--engine ray`` input listing: each input file is read once, however many paths reach it.

A directory holding ``x.jsonl`` and ``x.jsonl.gz`` is two inputs (two files, each graded, each
row naming its own file), but one file reached by two paths (a link beside it, a linked
directory, a link back up the tree) is one input: Arrow's recursive listing followed every
link, so a record was graded once per path (41 times under ``ln -s . loop``, and with two such
links the listing never returned)."""

from __future__ import annotations

import gzip
import os
from collections import Counter
from pathlib import Path

import pytest

from tests.cli_support import ROOT, read_jsonl, write_jsonl
from tests.ray.conftest import RayInstance

EXAMPLES = ROOT / "examples"

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:ray.data.context")


def _tree(root: Path, rows: list[dict[str, object]]) -> Path:
    """``root/in``: ``x.jsonl``, the same records as ``x.jsonl.gz``, a link to ``x.jsonl``, a
    link back up, and a linked directory outside the input holding ``y.jsonl``."""
    src = root / "in"
    src.mkdir()
    write_jsonl(src / "x.jsonl", rows)
    (src / "x.jsonl.gz").write_bytes(gzip.compress((src / "x.jsonl").read_bytes()))
    (src / "alias.jsonl").symlink_to("x.jsonl")
    (src / "loop").symlink_to(".")
    (root / "elsewhere").mkdir()
    write_jsonl(root / "elsewhere" / "y.jsonl", rows[:1])
    (src / "latest").symlink_to(root / "elsewhere")
    return src


def test_a_file_reached_by_several_paths_is_listed_once_under_its_own_path(
    tmp_path: Path,
) -> None:
    from rm_service.integrations._ray_io import list_shards

    rows = read_jsonl(EXAMPLES / "math_sample.jsonl")[:3]
    src = _tree(tmp_path, rows)
    (src / "sub").mkdir()
    write_jsonl(src / "sub" / "a.jsonl", rows[:1])
    (src / "a-link.jsonl").symlink_to(src / "sub" / "a.jsonl")  # sorts before its target
    os.link(src / "sub" / "a.jsonl", src / "sub" / "hard.jsonl")
    every = ["latest/y.jsonl", "sub/a.jsonl", "x.jsonl", "x.jsonl.gz"]
    assert [s.name for s in list_shards(str(src))] == every
    assert [s.name for s in list_shards(str(src / "**" / "*.jsonl*"))] == every
    # A link the pattern alone reaches is still read: it is the file's only path there.
    assert [s.name for s in list_shards(str(src / "l*" / "*.jsonl"))] == ["latest/y.jsonl"]
    assert [s.name for s in list_shards(str(src / "a-*.jsonl"))] == ["a-link.jsonl"]


def test_a_directory_of_x_jsonl_and_x_jsonl_gz_grades_each_file_once(
    tmp_path: Path, ray_instance: RayInstance
) -> None:
    from rm_service.integrations._ray_cli import grade_with_ray

    rows = read_jsonl(EXAMPLES / "math_sample.jsonl")[:3]
    src = _tree(tmp_path, rows)
    out = tmp_path / "graded.jsonl"
    result = grade_with_ray(
        str(EXAMPLES / "rules.yaml"), str(src), str(out), progress=False, workers=1
    )
    got = [row for part in sorted(out.glob("*.jsonl")) for row in read_jsonl(part)]
    seen = Counter((r["source"], r["line"]) for r in got)
    want = {(name, line) for name in ("x.jsonl", "x.jsonl.gz") for line in (1, 2, 3)}
    assert seen == Counter(want | {("latest/y.jsonl", 1)})
    assert result.graded == result.summary.records == 7
    ids = Counter(r["id"] for r in got if r["source"] != "latest/y.jsonl")
    assert ids == Counter({r["id"]: 2 for r in rows})  # two files with these records: two rows


def test_links_that_fan_out_list_each_directory_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each level links twice to the next (``a0/l -> a1``, ``a0/r -> a1``, ...): a walk that
    only refused the directories it was inside listed level ``n`` 2**n times (exponential; 20
    levels never return). Each real directory is listed once now, its files under their own
    paths."""
    from rm_service.integrations import _ray_io

    rows = read_jsonl(EXAMPLES / "math_sample.jsonl")[:1]
    levels = 8
    src = tmp_path / "in"
    for i in range(levels + 1):
        (src / f"a{i}").mkdir(parents=True)
        write_jsonl(src / f"a{i}" / "x.jsonl", rows)
    for i in range(levels):
        for side in ("l", "r"):
            (src / f"a{i}" / side).symlink_to(src / f"a{i + 1}")
    listed: list[str] = []
    real_scandir = os.scandir

    def counting(path: str) -> object:
        listed.append(str(path))
        return real_scandir(path)

    monkeypatch.setattr(_ray_io.os, "scandir", counting)
    names = [s.name for s in _ray_io.list_shards(str(src))]
    assert names == [f"a{i}/x.jsonl" for i in range(levels + 1)]
    assert len(listed) == levels + 2, len(listed)  # old code: 2**9 - 1 + 1 listings
