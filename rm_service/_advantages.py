"""GRPO group-relative advantages that never turn a missing reward into a number.

GRPO samples ``num_generations`` completions per prompt and scores each against its own group:
``A_i = (r_i - mean(group)) / (std(group) + eps)``. The layout is TRL's and ModelScope twinkle's
(``twinkle/advantage/grpo.py``, ``GRPOAdvantage``): groups are consecutive blocks, so rewards
``[p0g0, p0g1, ..., p1g0, ...]`` for ``num_generations`` generations per prompt.

Choices, and why:

* **Unscored members drop out.** ``None`` (and NaN, TRL's marker for a skipped reward) is left out
  of its group's mean and std and gets advantage ``None``: a member we could not score must not
  pull its siblings' baseline, and must not be trained on. TRL 1.16 does the same with
  ``nanmean``/``nanstd``; twinkle's ``GRPOAdvantage`` has no notion of a missing reward.
* **Sample std (Bessel's ``n - 1``).** Both references use it: twinkle calls ``Tensor.std``
  (unbiased by default) and TRL its ``nanstd`` (Bessel-corrected), so the same rewards give the
  same advantages here as in the trainer.
* **Degenerate groups give 0.0, never NaN.** A group whose scored members all agree, or with a
  single scored member, carries no relative signal: its scored members get exactly ``0.0``.
  (Sample std of one value is NaN in TRL, and twinkle with ``num_generations == 1`` returns the
  raw rewards uncentred; neither is a useful advantage.) A group with no scored member gets
  ``None`` throughout.
* **``eps = 1e-4``**, TRL 1.16's constant (twinkle uses 1e-8), so a near-constant group is not
  blown up into huge advantages and the numbers match what TRL's trainer computes.

Pure Python: a few hundred floats per step do not justify importing numpy or torch here.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

__all__ = ["DEFAULT_EPS", "grpo_advantages"]

DEFAULT_EPS = 1e-4
"""Added to the group std before dividing; TRL 1.16's ``GRPOTrainer`` constant."""


def grpo_advantages(
    rewards: Sequence[float | None],
    num_generations: int,
    *,
    scale: bool = True,
    eps: float = DEFAULT_EPS,
) -> list[float | None]:
    """Group-relative advantages for rewards laid out in consecutive groups.

    Args:
        rewards: one reward per completion, ``num_generations`` consecutive completions per
            prompt; ``None`` or NaN where the completion is unscored.
        num_generations: the group size (TRL's ``num_generations``).
        scale: divide by the group's sample std plus ``eps`` (TRL's ``scale_rewards="group"``);
            ``False`` only centres (``scale_rewards="none"``).
        eps: added to the std before dividing; must be ``> 0``.

    Returns:
        One advantage per reward, in input order: ``None`` for unscored members, ``0.0`` for the
        scored members of a group with zero variance or a single scored member.

    Raises:
        ValueError: ``num_generations`` is not a positive int, ``len(rewards)`` is not a multiple
            of it, ``eps`` is not a positive finite number, or a reward is infinite.
        TypeError: a reward is neither a number nor ``None`` (the message names its index).

    Example::

        grpo_advantages([1.0, 0.0, None, 0.5], num_generations=2, scale=False)
        # [0.5, -0.5, None, 0.0]
    """
    if isinstance(num_generations, bool) or not isinstance(num_generations, int):
        raise ValueError(f"num_generations must be an int >= 1, got {num_generations!r}")
    if num_generations < 1:
        raise ValueError(f"num_generations must be an int >= 1, got {num_generations!r}")
    if len(rewards) % num_generations:
        raise ValueError(
            f"len(rewards) = {len(rewards)} is not a multiple of num_generations = "
            f"{num_generations}; rewards must hold whole groups of consecutive generations"
        )
    if isinstance(eps, bool) or not isinstance(eps, int | float) or not (0 < eps < math.inf):
        raise ValueError(f"eps must be a finite number > 0, got {eps!r}")
    values = [_reward_at(rewards, i) for i in range(len(rewards))]
    out: list[float | None] = []
    for start in range(0, len(values), num_generations):
        out.extend(_group(values[start : start + num_generations], scale, eps))
    return out


def _reward_at(rewards: Sequence[float | None], i: int) -> float | None:
    r = rewards[i]
    if r is None:
        return None
    if isinstance(r, bool) or not isinstance(r, int | float):
        raise TypeError(f"rewards[{i}] is {r!r}; expected a number or None (unscored)")
    if math.isnan(r):
        return None
    if math.isinf(r):
        raise ValueError(f"rewards[{i}] is {r!r}; a reward must be finite (None marks unscored)")
    return float(r)


def _group(group: list[float | None], scale: bool, eps: float) -> list[float | None]:
    scored = [r for r in group if r is not None]
    if len(scored) < 2 or all(r == scored[0] for r in scored):
        return [None if r is None else 0.0 for r in group]
    mean = math.fsum(scored) / len(scored)
    if scale:
        std = math.sqrt(math.fsum((r - mean) ** 2 for r in scored) / (len(scored) - 1))
        denom = std + eps
    else:
        denom = 1.0
    return [None if r is None else (r - mean) / denom for r in group]
