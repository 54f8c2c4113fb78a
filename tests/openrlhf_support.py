"""OpenRLHF's reward client and result handling, reproduced from its tagged sources: its
modules do not import without Ray, vLLM and DeepSpeed.

* 0.9.0 ``openrlhf/utils/remote_rm_utils.py``, ``request_api_wrapper``: one ``requests.post``
  per reward URL with the whole rollout batch, ``timeout=180``, five tries one second apart,
  then ``raise Exception``; ``RemoteRewardModel`` hands a ``.py`` reward's ``reward_func`` to
  ``ray.remote`` (0.7.0-0.9.0) and calls it per ``micro_rollout_batch_size`` chunk.
* ``trainer/ppo_utils/experience_maker.py``, ``update_samples_with_rewards``: 0.9.0 applies
  ``torch.as_tensor`` to every list; 0.8.10-0.8.11 not to ``extra_logs``; 0.8.3-0.8.9 to
  nothing, so JSON lists fail there, whoever serves them (OpenRLHF's own ``serve_rm`` too).
* 0.11.0 ``openrlhf/utils/agent.py``, ``_fetch_rewards_via_http``: aiohttp,
  ``ClientTimeout(total=180)``, one sample per request (written out where it is used).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

__all__ = ["request_api_wrapper", "update_samples_with_rewards"]


def request_api_wrapper(url: str, data: dict[str, Any], try_max_times: int = 5) -> Any:
    """OpenRLHF 0.9.0's client (``utils/remote_rm_utils.py``), as written but for the log call
    and the one-second sleep between tries."""
    import requests

    headers = {"Content-Type": "application/json"}
    for _ in range(try_max_times):
        try:
            response = requests.post(url=url, json=data, headers=headers, timeout=180)
            response.raise_for_status()
            return response.json()
        except requests.RequestException:
            pass
    raise Exception(
        f"Request error for {try_max_times} times, returning None. Please check the API server."
    )


def update_samples_with_rewards(
    rewards_info: Sequence[dict[str, Any]], samples_len: list[int], version: str = "0.9.0"
) -> dict[str, tuple[torch.Tensor, ...]]:
    """OpenRLHF's ``update_samples_with_rewards`` (``trainer/ppo_utils/experience_maker.py``):
    the per-sample tensors it stores. ``as_tensor`` is where the versions differ."""

    def as_tensor(value: Any, used_from: str) -> Any:
        return torch.as_tensor(value) if _at_least(version, used_from) else value

    rewards = torch.cat([as_tensor(i["rewards"], "0.8.10") for i in rewards_info], dim=0)
    out = {"rewards": rewards.split(samples_len)}
    scores = torch.cat([as_tensor(i["scores"], "0.8.10") for i in rewards_info], dim=0)
    out["scores"] = scores.split(samples_len)
    for key in rewards_info[0]["extra_logs"]:
        logs = [as_tensor(i["extra_logs"][key], "0.9.0") for i in rewards_info]
        out[key] = torch.cat(logs, dim=0).split(samples_len)
    return out


def _at_least(version: str, minimum: str) -> bool:
    return tuple(map(int, version.split("."))) >= tuple(map(int, minimum.split(".")))
