"""Reward configs, defects found by an adversarial review: a loaded config edited before it is
built, YAML merge keys, a user module that fails as it is imported, and aggregator names and
order reported without the keys that hold them."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from rm_service import ConfigError, GraderScore, build_runner, load_config

GRADERS = {"a": {"type": "tests.support:has_digit"}, "b": {"type": "tests.support:has_digit"}}


def test_a_config_edited_after_load_config_gets_the_runner_it_describes() -> None:
    """build_runner handed over the runner load_config had built to validate the config, even
    when the config was edited in between: ``cfg.reward = "quality"`` or a new formula was
    silently ignored, and the old reward trained the policy."""
    cfg = load_config(
        {
            "graders": GRADERS,
            "aggregators": [
                {"type": "formula", "name": "quality", "formula": "0.5 * a + 0.5 * b"},
                {"type": "min", "name": "reward"},
            ],
        }
    )
    cfg.reward = "quality"
    cfg.aggregators[0].formula = "a * b"  # type: ignore[attr-defined]  # an extra: a parameter
    runner = build_runner(cfg)
    assert runner.reward_name == "quality"
    assert runner.aggregators[0].formula == "a * b"  # type: ignore[union-attr]
    (got,) = runner.grade([{"response": "1"}])
    quality = got.components["quality"]
    assert got.reward == 1.0 and isinstance(quality, GraderScore) and quality.reason == "a * b = 1"

    unedited = load_config({"graders": GRADERS})
    first = build_runner(unedited)
    assert build_runner(unedited) is not first  # only the first call takes the built one


def test_yaml_merge_keys_are_read_as_yaml_means(tmp_path: Path) -> None:
    """The loader that refuses a repeated key refused every ``<<: *anchor`` as invalid YAML
    (no constructor for the merge tag), though ``yaml.safe_load`` reads it."""
    path = tmp_path / "merge.yaml"
    path.write_text(
        "graders:\n"
        "  a: &digit {type: 'tests.support:has_digit'}\n"
        "  b:\n"
        "    <<: *digit\n"
        "aggregators:\n"
        "  - &sum {type: weighted_sum, name: quality, on_error: skip}\n"
        "  - <<: *sum\n"
        "    name: reward\n"
        "    weights: {a: 1, quality: 1}\n"
    )
    cfg = load_config(path)
    assert [g.type for g in cfg.graders.values()] == ["tests.support:has_digit"] * 2
    assert [(s.name, s.params()) for s in cfg.aggregators] == [
        ("quality", {"on_error": "skip"}),
        ("reward", {"on_error": "skip", "weights": {"a": 1, "quality": 1}}),
    ]
    path.write_text(  # a key repeated beside a merge is still refused
        "graders:\n  a: &digit {type: 'tests.support:has_digit'}\n"
        "  b:\n    <<: *digit\n    type: format\n    type: length_penalty\n"
    )
    with pytest.raises(ConfigError, match="the key 'type' appears twice"):
        load_config(path)


@pytest.fixture
def broken_modules(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """User modules that fail as they are imported: a syntax error, a raise at the top."""
    (tmp_path / "review_syntax_error.py").write_text("def mean(results:\n    return 1\n")
    (tmp_path / "review_raises.py").write_text("x = 1\nraise RuntimeError('needs a GPU')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield str(tmp_path)
    for name in ("review_syntax_error", "review_raises"):
        sys.modules.pop(name, None)


@pytest.mark.parametrize(
    ("module", "match"),
    [
        ("review_syntax_error", r"SyntaxError: '\(' was never closed \(.*, line 1\)"),
        ("review_raises", r"RuntimeError: needs a GPU \(.*review_raises\.py, line 2\)"),
    ],
)
@pytest.mark.parametrize("where", ["aggregators", "graders"])
def test_a_user_module_that_fails_to_import_is_a_config_error_naming_the_key(
    broken_modules: str, module: str, match: str, where: str
) -> None:
    """Only ImportError and AttributeError were turned into a ConfigError: a typo in the user's
    module escaped as a bare traceback, naming neither the config nor the key."""
    config: dict[str, Any] = {"graders": dict(GRADERS)}
    if where == "aggregators":
        config["aggregators"] = [{"type": f"{module}:mean", "name": "reward"}]
        key = r"aggregators\[0\] \(reward\)"
    else:
        config["graders"]["c"] = {"type": f"{module}:mean"}
        key = r"graders\.c"
    with pytest.raises(ConfigError, match=rf"{key}: cannot import \w+ '{module}:mean': {match}"):
        load_config(config)


@pytest.mark.parametrize(
    ("aggregators", "match"),
    [
        (  # was: "aggregator name 'a' clashes with another result"
            [{"type": "min", "name": "a"}],
            r"aggregators\[0\] \(a\): the name 'a' is already taken by graders\.a$",
        ),
        (  # two unnamed aggregators: both 'reward', a name the config never wrote
            [{"type": "formula", "formula": "a * b"}, {"type": "min"}],
            r"aggregators\[1\] \(reward\): the name 'reward' is already taken by "
            r"aggregators\[0\] \(unnamed, it is 'reward': name it\)",
        ),
        (  # was: "reads unknown component(s) ['quality']; available: ['a', 'b']"
            [
                {"type": "gate", "gate": "a", "threshold": 1, "inner": "quality"},
                {"type": "formula", "name": "quality", "formula": "a * b"},
            ],
            r"aggregators\[0\] \(reward\): it reads 'quality', which aggregators\[1\] defines "
            "below it",
        ),
    ],
)
def test_aggregator_names_and_order_are_reported_with_their_keys(
    aggregators: list[dict[str, Any]], match: str
) -> None:
    with pytest.raises(ConfigError, match=match):
        load_config({"graders": GRADERS, "aggregators": aggregators})


def test_an_empty_grader_name_is_a_config_error() -> None:
    """An aggregator's name must be non-empty; a grader's key was not, and made a nameless
    result that no formula or weight can read."""
    with pytest.raises(ConfigError, match=r"graders\.\.\[key\]: String should have at least 1"):
        load_config({"graders": {"": {"type": "tests.support:has_digit"}}})
