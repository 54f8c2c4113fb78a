"""What a run leaves behind: ``log_history.jsonl``, ``reward_curve.png`` and a short summary.

TRL logs a step whose every sample was unscored as a NaN reward. NaN is neither valid JSON nor a
number to average, so here it becomes ``null`` in the log, a gap in the plot, and is left out of
the block means (a block with nothing scored shows ``n/a``, never a made-up 0). Those means are
over the scored samples, so the summary also shows the share of samples that were unscored.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["RunSummary", "component_names", "plot_rewards", "summarize", "write_history"]

_PREFIX, _SUFFIX = "rewards/", "/mean"
_AGENT = {"turns": "agent/turns", "tool calls": "agent/tool_calls"}
"""Per-rollout counts an agent run logs, shown under the rewards with these labels."""
_UNSCORED = ("rm_service/failure_rate", "agent/unscored_rate")
"""The share of samples whose reward was unscored (``None``), as the reward functions log it:
the means above are over the scored samples only, so the summary shows this share beside them."""


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return None if math.isnan(value) or math.isinf(value) else float(value)


def write_history(history: Sequence[Mapping[str, Any]], path: Path) -> None:
    """One JSON object per log entry (NaN/inf written as ``null``)."""
    with path.open("w") as f:
        for entry in history:
            clean = {k: (_number(v) if isinstance(v, float) else v) for k, v in entry.items()}
            f.write(json.dumps(clean) + "\n")


def component_names(history: Sequence[Mapping[str, Any]]) -> list[str]:
    """Reward function names logged as ``rewards/<name>/mean``, in first-seen order."""
    names: dict[str, None] = {}
    for entry in history:
        for key in entry:
            if key.startswith(_PREFIX) and key.endswith(_SUFFIX):
                names[key[len(_PREFIX) : -len(_SUFFIX)]] = None
    return list(names)


def _series(history: Sequence[Mapping[str, Any]], key: str) -> list[float | None]:
    """``key`` per training step (entries that have a ``reward``), ``None`` where not a number."""
    return [_number(e.get(key)) for e in history if "reward" in e]


def _mean(values: Sequence[float | None]) -> float | None:
    got = [v for v in values if v is not None]
    return math.fsum(got) / len(got) if got else None


@dataclass(frozen=True)
class RunSummary:
    """Mean reward over the first and the last ``block`` steps, overall and per component."""

    steps: int
    block: int
    seconds: float
    first: float | None
    last: float | None
    components: dict[str, tuple[float | None, float | None]] = field(default_factory=dict)
    agent: dict[str, tuple[float | None, float | None]] = field(default_factory=dict)
    points: int = 0  # logged entries with a reward; fewer than steps with logging_steps > 1
    unscored: tuple[float | None, float | None] | None = None  # share of samples, when logged
    resumed_from: int = 0  # the checkpoint's step; ``seconds`` are the steps trained after it

    def text(self, output_dir: Path, device: str) -> str:
        """The lines the CLI prints after training."""

        def fmt(v: float | None) -> str:
            return "n/a" if v is None else f"{v:.3f}"

        # A resumed run's history holds the checkpoint's steps too, but its time only this run's.
        trained = max(0, self.steps - self.resumed_from)
        per_step = self.seconds / trained if trained else 0.0
        what = f"{self.steps} steps"
        if self.resumed_from:
            what = (
                f"steps {self.resumed_from + 1}-{self.steps}" if trained else "no steps"
            ) + f" (resumed from step {self.resumed_from})"
        unit = "steps" if self.points in (0, self.steps) else "logged points"
        rows = [
            ("reward", self.first, self.last),
            # a single function named "reward" is the overall row already
            *((n, a, b) for n, (a, b) in self.components.items() if n != "reward"),
            *((n, a, b) for n, (a, b) in self.agent.items()),
            *([("unscored share", *self.unscored)] if self.unscored is not None else []),
        ]
        width = max(len(r[0]) for r in rows)
        lines = [
            f"trained {what} in {self.seconds:.1f} s ({per_step:.2f} s/step) on {device}",
            f"mean reward, first {self.block} {unit} -> last {self.block} {unit}:",
        ]
        for name, a, b in rows:
            delta = f"  ({b - a:+.3f})" if a is not None and b is not None else ""
            lines.append(f"  {name:<{width}}  {fmt(a)} -> {fmt(b)}{delta}")
        lines += [
            f"log:  {output_dir / 'log_history.jsonl'}",
            f"plot: {output_dir / 'reward_curve.png'}",
        ]
        return "\n".join(lines)


def summarize(
    history: Sequence[Mapping[str, Any]], seconds: float, *, resumed_from: int = 0
) -> RunSummary:
    """First vs last block (10 logged points, or half of them when fewer) of each reward
    curve; ``steps`` is the last step logged. ``resumed_from``: the step a resumed run started
    at (its history holds the earlier steps, its ``seconds`` do not)."""
    rewards = _series(history, "reward")
    n = len(rewards)
    block = max(1, min(10, n // 2))
    # The last logged step, not the entries: with logging_steps: 5, ten steps log two.
    steps = max((int(e["step"]) for e in history if isinstance(e.get("step"), int)), default=n)

    def ends(values: list[float | None]) -> tuple[float | None, float | None]:
        return (_mean(values[:block]), _mean(values[-block:])) if values else (None, None)

    first, last = ends(rewards)
    components = {
        name: ends(_series(history, f"{_PREFIX}{name}{_SUFFIX}"))
        for name in component_names(history)
    }
    agent = {
        label: ends(_series(history, key))
        for label, key in _AGENT.items()
        if any(key in e for e in history)
    }
    # shown when any sample was unscored: a run that scored everything prints as before
    key = next((k for k in _UNSCORED if any(k in e for e in history)), None)
    shares = _series(history, key) if key is not None else []
    unscored = ends(shares) if any(v for v in shares) else None
    return RunSummary(
        steps,
        block,
        seconds,
        first,
        last,
        components,
        agent,
        points=n,
        unscored=unscored,
        resumed_from=resumed_from,
    )


def plot_rewards(history: Sequence[Mapping[str, Any]], path: Path, title: str = "") -> None:
    """The reward curve per step: the trained reward bold, each reward function thin."""
    import matplotlib

    matplotlib.use("Agg")  # files only: no display, and safe off the main thread
    import matplotlib.pyplot as plt

    steps = [e.get("step", i + 1) for i, e in enumerate(h for h in history if "reward" in h)]
    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    try:
        ax.plot(steps, _nan(_series(history, "reward")), lw=2.2, color="black", label="reward")
        for name in component_names(history):
            values = _nan(_series(history, f"{_PREFIX}{name}{_SUFFIX}"))
            ax.plot(steps, values, lw=1.2, alpha=0.8, label=f"{_PREFIX}{name}{_SUFFIX}")
        ax.set_xlabel("step")
        ax.set_ylabel("mean reward")
        ax.set_title(title or "GRPO reward per step")
        ax.grid(alpha=0.3)
        ax.legend(loc="best", fontsize=8)
        fig.tight_layout()
        fig.savefig(path)
    finally:
        plt.close(fig)


def _nan(values: Sequence[float | None]) -> list[float]:
    """``None`` → NaN, which matplotlib draws as a gap."""
    return [math.nan if v is None else v for v in values]
