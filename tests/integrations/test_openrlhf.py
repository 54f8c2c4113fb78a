"""The OpenRLHF ``reward_func`` module, loaded from its file path as OpenRLHF does: one and many
samples, tensors (lists without torch), rm_error flags, and its environment settings, in process
and against a real uvicorn service on 127.0.0.1."""

from __future__ import annotations

import asyncio
import importlib.util
import logging
import math
import pickle
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest
import torch
import yaml

import rm_service.integrations.openrlhf as shim
from rm_service import ConfigError, InputError
from rm_service._http_schemas import ServiceSettings
from rm_service._openrlhf import PromptLog, UnscoredLog
from rm_service.app import create_app
from tests.integrations.conftest import SHIM_CONFIG
from tests.openrlhf_support import update_samples_with_rewards
from tests.support import serve_in_thread

pytestmark = pytest.mark.usefixtures("shim_env", "fresh_logs")

# SHIM_CONFIG reads the gold answer from the record's ground_truth; OpenRLHF's labels go there.
IM = "<|im_start|>user\nWhat is 3+4?<|im_end|>\n<|im_start|>assistant\n"
QUERIES = [IM + "7<|im_end|>", IM + "FAIL<|im_end|>", IM + "no 8<|im_end|><|endoftext|>"]
LABELS = ["7", "7", None]
README_CFG = Path(__file__).parents[2] / "examples" / "reward.yaml"
NAN = "NaN"
"""``as_lists``' stand-in for a NaN value, which compares equal to itself."""


def load_like_openrlhf() -> ModuleType:
    """``spec_from_file_location`` on the file, as OpenRLHF's ``_fetch_rewards_via_func`` does."""
    spec = importlib.util.spec_from_file_location("reward_module", shim.__file__)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def fresh_logs(monkeypatch: pytest.MonkeyPatch) -> None:
    """New rate-limited warnings: they are process-wide (in the importable module, whichever
    copy of the file OpenRLHF loaded), so one test's warning would silence the next's."""
    monkeypatch.setattr(shim, "_unscored", UnscoredLog("reward_func"))
    monkeypatch.setattr(shim, "_prompts", PromptLog("reward_func"))


@pytest.fixture
def reward_func(tmp_path: Path, shim_env: pytest.MonkeyPatch) -> Any:
    path = tmp_path / "reward.yaml"
    path.write_text(yaml.safe_dump(SHIM_CONFIG))
    shim_env.setenv("RM_SERVICE_CONFIG", str(path))
    shim_env.setenv("RM_SERVICE_LABEL_FIELD", "ground_truth")
    return load_like_openrlhf().reward_func


def as_lists(out: dict[str, Any]) -> dict[str, Any]:
    """``out``'s float32 tensors as lists rounded to 6 places (exact test values), NaN as
    ``NAN``."""

    def plain(v: Any) -> list[float | str]:
        assert isinstance(v, torch.Tensor) and v.dtype == torch.float32
        return [NAN if math.isnan(x) else round(x, 6) for x in v.tolist()]

    return {
        "rewards": plain(out["rewards"]),
        "scores": plain(out["scores"]),
        "extra_logs": {k: plain(v) for k, v in out["extra_logs"].items()},
    }


def test_one_sample_per_call_as_openrlhf_sends_it(reward_func: Any) -> None:
    out = reward_func([QUERIES[0]], [IM], ["7"])
    assert as_lists(out) == {
        "rewards": [0.975],
        "scores": [0.975],
        "extra_logs": {
            "short": [0.95],
            "short/unscored": [0.0],
            "num": [1.0],
            "num/unscored": [0.0],
            "prompt_not_found": [0.0],
            "rm_error": [0.0],
        },
    }


def test_many_samples_flag_unscored_with_the_fallback(
    reward_func: Any, shim_env: pytest.MonkeyPatch
) -> None:
    shim_env.setenv("RM_SERVICE_UNSCORED_FALLBACK", "-1")
    out = reward_func(QUERIES, [IM] * 3, LABELS)
    # A component is NaN where unscored, never the fallback or 0; "FAIL" has a real num of 0.
    # No "reward": OpenRLHF logs ``rewards`` under that name itself.
    assert as_lists(out) == {
        "rewards": [0.975, -1.0, -1.0],
        "scores": [0.975, 0.0, 0.0],  # scores stay in [0, 1]
        "extra_logs": {
            "short": [0.95, NAN, 0.8],  # "no 8": tokens stripped, 4 characters
            "short/unscored": [0.0, 1.0, 0.0],
            "num": [1.0, 0.0, NAN],
            "num/unscored": [0.0, 0.0, 1.0],
            "prompt_not_found": [0.0, 0.0, 0.0],
            "rm_error": [0.0, 1.0, 1.0],
        },
    }


def openrlhf_logged_means(outs: list[dict[str, Any]]) -> dict[str, float]:
    """What OpenRLHF 0.11 logs for each ``extra_logs`` key of one-sample ``reward_func`` calls:
    ``samples_generator`` makes ``info[key] = torch.tensor([value.flatten()[0].item()])`` per
    sample, the batch stacks them, and ``ppo_actor`` logs ``value.float().mean()`` (no nanmean,
    no mask), weighted by the sample count."""
    infos = [
        {k: torch.tensor([v.flatten()[0].item()]) for k, v in o["extra_logs"].items()} for o in outs
    ]
    assert all(i.keys() == infos[0].keys() for i in infos)  # its batching needs equal keys
    return {k: torch.cat([i[k] for i in infos]).float().mean().item() for k in infos[0]}


def test_openrlhfs_own_means_are_never_dragged_down_by_an_unscored_component(
    reward_func: Any,
) -> None:
    ok, failing = IM + "7<|im_end|>", IM + "FAIL 7<|im_end|>"
    outs = [reward_func([q], [IM], ["7"]) for q in (ok, ok, ok, failing)]
    means = openrlhf_logged_means(outs)
    assert means["num"] == 1.0  # all four scored: the exact mean
    assert means["num/unscored"] == 0.0
    # short is unscored once: its step mean is NaN (unknown), not 0.95 * 3/4 = 0.7125.
    assert math.isnan(means["short"])
    assert means["short/unscored"] == 0.25 and means["rm_error"] == 0.25


def test_the_readme_config_is_scored_without_a_label_setting(
    shim_env: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="rm_service")
    shim_env.setenv("RM_SERVICE_CONFIG", str(README_CFG))  # maps ground_truth
    answer = "<think>7*8=56</think>\n<answer>56</answer><|im_end|>"
    out = load_like_openrlhf().reward_func([IM + answer], [IM], ["56"])
    assert out["extra_logs"]["rm_error"].tolist() == [0.0]
    assert out["rewards"].tolist() == [1.0]
    assert "labels go to record field 'ground_truth'" in caplog.text


def test_a_field_reward_func_never_fills_fails_on_first_use(
    reward_func: Any, shim_env: pytest.MonkeyPatch
) -> None:
    shim_env.setenv("RM_SERVICE_LABEL_FIELD", "answer")  # SHIM_CONFIG's num reads ground_truth
    with pytest.raises(ConfigError, match=r"grader 'num'.*'ground_truth'") as err:
        reward_func([QUERIES[0]], [IM], ["7"])
    assert "RM_SERVICE_LABEL_FIELD=ground_truth" in str(err.value)


def test_unscored_samples_are_logged_with_counts_rate_limited(
    reward_func: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="rm_service")
    for _ in range(3):  # one sample per call, as OpenRLHF calls it
        reward_func([QUERIES[1]], [IM], ["7"])
    msgs = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(msgs) == 1, msgs
    assert msgs[0].startswith("reward_func: 1/1 records unscored (judge_error=1); first error:")
    assert "the judge said FAIL" in msgs[0]


async def test_called_through_to_thread_concurrently(reward_func: Any) -> None:
    outs = await asyncio.gather(
        *(
            asyncio.to_thread(reward_func, [q], [IM], [gt])
            for q, gt in zip(QUERIES, LABELS, strict=True)
        )
    )
    assert [o["extra_logs"]["rm_error"].tolist() for o in outs] == [[0.0], [1.0], [1.0]]


def test_strip_patterns_and_label_field_from_the_env(
    reward_func: Any, shim_env: pytest.MonkeyPatch
) -> None:
    shim_env.setenv("RM_SERVICE_STRIP_PATTERNS", "")  # strip nothing
    out = reward_func([IM + "7<|im_end|>"], [IM], ["7"])
    assert as_lists(out)["extra_logs"]["short"] == [0.45]  # "7<|im_end|>": 11 characters
    shim_env.setenv("RM_SERVICE_STRIP_PATTERNS", r"<\|im_end\|>   <\|eot_id\|>")
    out = reward_func([IM + "7<|eot_id|><|im_end|>"], [IM], ["7"])
    assert as_lists(out)["extra_logs"]["short"] == [0.95]
    shim_env.setenv("RM_SERVICE_LABEL_FIELD", "gold")  # the config maps ground_truth
    with pytest.raises(ConfigError, match="RM_SERVICE_LABEL_FIELD=ground_truth"):
        reward_func([QUERIES[0]], [IM], ["7"])


def test_lists_without_torch(reward_func: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "torch", None)  # import torch -> ImportError
    out = reward_func(QUERIES[:2], [IM] * 2, LABELS[:2])
    assert out["rewards"] == pytest.approx([0.975, 0.0])
    assert out["extra_logs"]["rm_error"] == [0.0, 1.0]


def test_bad_input_and_settings_are_clear_errors(
    reward_func: Any, shim_env: pytest.MonkeyPatch
) -> None:
    with pytest.raises(InputError, match="labels: 1 item"):
        reward_func(QUERIES[:2], [IM] * 2, ["7"])
    shim_env.setenv("RM_SERVICE_UNSCORED_FALLBACK", "zero")
    with pytest.raises(ConfigError, match="RM_SERVICE_UNSCORED_FALLBACK"):
        reward_func([QUERIES[0]], [IM], ["7"])
    shim_env.delenv("RM_SERVICE_UNSCORED_FALLBACK")
    shim_env.setenv("RM_SERVICE_STRIP_PATTERNS", "(")
    with pytest.raises(ConfigError, match="RM_SERVICE_STRIP_PATTERNS"):
        reward_func([QUERIES[0]], [IM], ["7"])
    shim_env.delenv("RM_SERVICE_STRIP_PATTERNS")
    shim_env.delenv("RM_SERVICE_CONFIG")
    with pytest.raises(ConfigError, match="RM_SERVICE_CONFIG or RM_SERVICE_URL"):
        reward_func([QUERIES[0]], [IM], ["7"])


def test_against_a_service_from_the_env(reward_func: Any, shim_env: pytest.MonkeyPatch) -> None:
    local = as_lists(reward_func(QUERIES, [IM] * 3, LABELS))
    app = create_app(
        {"other": {"graders": {"f": {"type": "format"}}}, "math": SHIM_CONFIG},
        ServiceSettings(api_key="k"),
    )
    with serve_in_thread(app) as url:
        shim_env.setenv("RM_SERVICE_URL", url)  # wins over RM_SERVICE_CONFIG
        shim_env.setenv("RM_SERVICE_API_KEY", "k")
        shim_env.setenv("RM_SERVICE_REWARD", "math")
        assert as_lists(reward_func(QUERIES, [IM] * 3, LABELS)) == local


def test_importing_the_shims_does_not_import_torch() -> None:
    code = (
        "import sys, rm_service.integrations.openrlhf, rm_service.integrations.verl;"
        "sys.exit('torch' in sys.modules)"
    )
    assert subprocess.run([sys.executable, "-c", code], timeout=60).returncode == 0


def test_ray_can_ship_the_file_loaded_function_to_its_workers(reward_func: Any) -> None:
    """OpenRLHF 0.7.0-0.9.0 run ``ray.remote(reward_module.reward_func)`` on the function of this
    file loaded as module "reward_func", which no Ray worker can import: Ray pickles it by value
    with cloudpickle, globals included. A cache or a lock among them failed that pickling."""
    cloudpickle = pytest.importorskip("cloudpickle")
    shipped = pickle.loads(cloudpickle.dumps(reward_func))
    assert as_lists(shipped(QUERIES, [IM] * 3, LABELS)) == as_lists(
        reward_func(QUERIES, [IM] * 3, LABELS)
    )


@pytest.mark.parametrize("version", ["0.8.3", "0.8.11", "0.9.0"])
def test_the_py_face_feeds_openrlhf_08_and_09s_result_handling(
    reward_func: Any, version: str
) -> None:
    """0.8.3-0.9.0: ``RemoteRewardModel.get_rewards`` calls ``reward_func`` per
    ``micro_rollout_batch_size`` chunk and ``update_samples_with_rewards`` concatenates the
    chunks' tensors; the versions whose HTTP path fails on JSON lists take these."""
    queries, prompts, labels, micro = QUERIES * 2, [IM] * 6, LABELS * 2, 4
    chunks = [
        reward_func(queries[i : i + micro], prompts[i : i + micro], labels[i : i + micro])
        for i in range(0, len(queries), micro)
    ]
    out = update_samples_with_rewards(chunks, [1] * 6, version)
    assert [t.item() for t in out["rm_error"]] == [0.0, 1.0, 1.0] * 2
    assert [t.item() for t in out["prompt_not_found"]] == [0.0] * 6


def test_the_split_flags_a_query_without_its_prompt(
    reward_func: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="rm_service")
    spaced = IM.replace("<|im_end|>", " <|im_end|>") + "7<|im_end|>"  # decoding's extra space
    other = "<|im_start|>user\nWhat is 5+2?<|im_end|>\n<|im_start|>assistant\n7<|im_end|>"
    out = as_lists(reward_func([spaced, other], [IM, IM], ["7", "7"]))
    assert out["extra_logs"]["prompt_not_found"] == [0.0, 1.0]
    assert out["extra_logs"]["short"] == [0.95, 0.95]  # both responses are "7"
    (msg,) = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert msg.startswith("reward_func: 1/2 queries do not contain their prompt (marker=1)")


def test_a_service_routes_the_labels_as_a_config_does(shim_env: pytest.MonkeyPatch) -> None:
    """With no label setting, the README's config routes the labels to its one gold field
    in process; through a service (RM_SERVICE_URL) they went to ``label``, which nothing read,
    and every sample was unscored: OpenRLHF trained on the fallback 0."""
    answer = "<think>7*8=56</think>\n<answer>56</answer><|im_end|>"
    app = create_app({"readme": str(README_CFG)}, ServiceSettings())
    with serve_in_thread(app) as url:
        shim_env.setenv("RM_SERVICE_URL", url)
        out = load_like_openrlhf().reward_func([IM + answer], [IM], ["56"])
    assert out["extra_logs"]["rm_error"].tolist() == [0.0]
    assert out["rewards"].tolist() == [1.0]


CLASHING = {
    "graders": {
        "a": {"type": "tests.support:short_or_unscored"},
        "a/unscored": {"type": "tests.support:short_or_unscored"},
        "prompt_not_found": {"type": "tests.support:short_or_unscored"},
    },
    "aggregators": [{"type": "min", "name": "total"}],
}
"""Components whose ``extra_logs`` keys clash: ``a``'s flag is ``a/unscored``, and
``prompt_not_found`` is the protocol's own flag."""


def test_components_that_make_one_extra_logs_key_are_refused(
    tmp_path: Path, shim_env: pytest.MonkeyPatch
) -> None:
    """``a/unscored`` (the score of a component so named) overwrote ``a``'s unscored flag, and
    the split's ``prompt_not_found`` overwrote a component of that name: OpenRLHF logged one
    column's numbers under the other's name, silently."""
    path = tmp_path / "clash.yaml"
    path.write_text(yaml.safe_dump(CLASHING))
    shim_env.setenv("RM_SERVICE_CONFIG", str(path))
    with pytest.raises(ConfigError, match=r"'a/unscored' by the unscored flag of 'a' and comp"):
        load_like_openrlhf().reward_func([QUERIES[0]], [IM], ["7"])


def test_a_service_with_clashing_names_warns_and_keeps_the_flags(
    shim_env: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """``/get_reward`` (the same config may serve ``/grade`` only) warns at start-up and keeps
    each flag and the protocol's keys; the in-process face over that service refuses it."""
    caplog.set_level(logging.WARNING, logger="rm_service")
    app = create_app({"clash": CLASHING}, ServiceSettings())
    assert any("'prompt_not_found' by the protocol" in r.getMessage() for r in caplog.records)
    fail = IM + "FAIL<|im_end|>"
    with serve_in_thread(app) as url:
        got = httpx.post(
            f"{url}/get_reward", json={"query": [fail, QUERIES[0]], "prompts": [IM] * 2}
        )
        shim_env.setenv("RM_SERVICE_URL", url)
        with pytest.raises(ConfigError, match="'prompt_not_found' by the protocol"):
            load_like_openrlhf().reward_func([QUERIES[0]], [IM], ["7"])
    logs = got.json()["extra_logs"]
    assert logs["a/unscored"] == [1.0, 0.0]  # a's flag, not the other component's score
    assert logs["prompt_not_found"] == [0.0, 0.0]
    assert logs["total/unscored"] == [1.0, 0.0] and logs["rm_error"] == [1.0, 0.0]
