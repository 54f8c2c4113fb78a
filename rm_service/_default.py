"""The embedded default reward: what ``grade`` and ``serve`` use when given no config.

A first run should work with nothing but the package: ``rm-service serve`` with no ``--config``
used to exit with an error. The default ships inside the package (not in ``examples/``, which a
``pip install`` does not carry) and is always announced, so nobody trains on a reward they did
not know they chose.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["DEFAULT_CONFIG", "DEFAULT_NOTICE", "DEFAULT_REWARD_NAME"]

DEFAULT_CONFIG = Path(__file__).with_name("defaults") / "reward.yaml"
"""The packaged YAML: math correctness against ``ground_truth`` (0.7), the R1 think/answer
format (0.2) and a length penalty (0.1); rule graders only, so no key and no model."""

DEFAULT_REWARD_NAME = "default"
"""The name the service gives the default reward (``GET /rewards``, ``"reward": "default"``)."""

DEFAULT_NOTICE = (
    f"no reward config given (--config or RM_SERVICE_CONFIG): using the embedded default reward "
    f"{DEFAULT_CONFIG} (math correctness against `ground_truth` 0.7, R1 think/answer format 0.2, "
    f"length 0.1)"
)
