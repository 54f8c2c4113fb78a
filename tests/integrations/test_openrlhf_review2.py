"""OpenRLHF copies each ``extra_logs`` key into the sample's ``info`` dict, where it keeps its own
metrics too: a component named like one of them (``response_length``, ``kl``) replaced
OpenRLHF's value, or was replaced by it, silently. In 0.9.x ``info["response_length"]`` is what
the overlong penalty reads, so a grader so named changed the rewards trained on."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import httpx
import pytest
import torch
import yaml

from rm_service import ConfigError
from rm_service._http_schemas import ServiceSettings
from rm_service.app import create_app
from tests.integrations.test_openrlhf import IM, QUERIES, load_like_openrlhf
from tests.support import serve_in_thread

pytestmark = pytest.mark.usefixtures("shim_env")

NAMED_LIKE_OPENRLHF: dict[str, Any] = {
    "graders": {
        "response_length": {"type": "format", "mode": "regex", "pattern": "[0-9]"},
        "kl": {"type": "format", "mode": "regex", "pattern": "x", "match": "search"},
    },
    "aggregators": [
        {"type": "weighted_sum", "name": "reward", "weights": {"response_length": 1, "kl": 1}}
    ],
}


def openrlhf_091_info(response: dict[str, Any], response_length: int) -> dict[str, Any]:
    """OpenRLHF 0.9.1 ``experience_maker.py``, ``_process_response_into_experience``: its own
    keys first, then every ``extra_logs`` key written over the same dict."""
    info: dict[str, Any] = {"response_length": torch.tensor([response_length])}
    for key, value in response.get("extra_logs", {}).items():
        if isinstance(value, torch.Tensor):
            value = value.flatten()[0].item()
        info[key] = torch.tensor([value])
    return info


def test_a_component_named_like_an_openrlhf_metric_is_refused(
    tmp_path: Path, shim_env: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "named.yaml"
    path.write_text(yaml.safe_dump(NAMED_LIKE_OPENRLHF))
    shim_env.setenv("RM_SERVICE_CONFIG", str(path))
    with pytest.raises(
        ConfigError, match=r"'kl' by OpenRLHF's own metric and component 'kl'.*'response_length'"
    ):
        load_like_openrlhf().reward_func([QUERIES[0]], [IM], ["7"])


def test_get_reward_never_sends_a_key_openrlhf_writes_itself(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """``/get_reward`` warns at start-up (the config may serve ``/grade`` only) and leaves the
    score out; the component's unscored flag, a key of its own, still goes."""
    caplog.set_level(logging.WARNING, logger="rm_service")
    app = create_app({"named": NAMED_LIKE_OPENRLHF}, ServiceSettings())
    assert any(
        "'response_length' by OpenRLHF's own metric" in r.getMessage() for r in caplog.records
    )
    with serve_in_thread(app) as url:
        got = httpx.post(f"{url}/get_reward", json={"query": [QUERIES[0]], "prompts": [IM]})
    logs = got.json()["extra_logs"]
    assert "response_length" not in logs and "kl" not in logs
    assert logs["response_length/unscored"] == [0.0] and logs["kl/unscored"] == [0.0]
    info = openrlhf_091_info(got.json(), response_length=57)
    assert info["response_length"].item() == 57  # the overlong penalty's input, untouched
