"""``train``: build the trainer, train, write the log and the plot, and print a short summary.

Transformers prints every log dict when its progress bar is off (``PrinterCallback``): 50 lines
of floats for the demo. That callback is swapped for one line every tenth of the run, so the
rising reward is readable as it happens and the summary at the end is what matters.
"""

from __future__ import annotations

import math
import shutil
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import TrainerCallback
from transformers.trainer_callback import PrinterCallback
from transformers.trainer_utils import get_last_checkpoint

from trainer._build import build_trainer
from trainer._config import TrainConfig
from trainer._report import RunSummary, plot_rewards, summarize, write_history

__all__ = ["TrainResult", "train"]

_TRL_OWN_DEPRECATION = "`is_gradient_checkpointing` is deprecated"


@dataclass(frozen=True)
class TrainResult:
    """What :func:`train` produced: the summary, TRL's log history, and where files went."""

    summary: RunSummary
    history: list[dict[str, Any]]
    output_dir: Path
    device: str


class _Progress(TrainerCallback):
    """One line (step, reward) every ``every`` steps."""

    def __init__(self, every: int, echo: Callable[[str], None]) -> None:
        self.every = every
        self.echo = echo

    def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kwargs: Any) -> None:
        reward = (logs or {}).get("reward")
        if reward is None or state.global_step % self.every:
            return
        shown = "n/a" if isinstance(reward, float) and math.isnan(reward) else f"{reward:.3f}"
        self.echo(f"step {state.global_step}/{state.max_steps}  reward {shown}")


class _Start(TrainerCallback):
    """The step training starts at: a resumed run's checkpoint step, else 0."""

    step = 0

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.step = state.global_step


@contextmanager
def _one_thread_if(condition: bool) -> Iterator[None]:
    """Run torch on one thread meanwhile (then restore the count).

    A tiny model gains nothing from intra-op threads, but on a busy machine with few cores their
    spin-waiting makes it several times slower (figures: ``docs/benchmarks.md``, Training).
    """
    before = torch.get_num_threads()
    if condition:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        if condition:
            torch.set_num_threads(before)


_OUTPUTS = ("log_history.jsonl", "reward_curve.png", "model", "checkpoint-*")
"""What a run leaves in its output directory (``checkpoint-*``: TRL's with ``save_strategy``)."""


def _check_output_dir(cfg: TrainConfig, out: Path, *, overwrite: bool) -> bool:
    """Refuse to write over an earlier run's log, plot, model or checkpoints: a second run with
    the same config replaced them silently. A resume continues the run, so it may. Returns
    whether the earlier run's outputs are being replaced (see :func:`_drop_checkpoints`)."""
    if cfg.grpo.get("resume_from_checkpoint"):
        return False
    if overwrite or cfg.overwrite:
        return True
    found = sorted(p.name for pattern in _OUTPUTS for p in out.glob(pattern))
    if found:
        raise cfg.error(
            "output_dir",
            f"{out} already holds a run's outputs ({', '.join(found)}); choose another "
            "output_dir (--output-dir), replace them (--overwrite, or overwrite: true), or "
            "resume with grpo.resume_from_checkpoint",
        )
    return False


def _check_resume(cfg: TrainConfig, out: Path) -> None:
    """A resume needs a checkpoint to resume from, found here rather than by the Trainer, which
    looks only once the model has loaded (and raised a bare ``ValueError`` there). With
    ``grpo.save_strategy`` left at ``"no"`` (the default) no run ever wrote one.

    Raises:
        ConfigError: naming ``grpo.resume_from_checkpoint`` and what is missing.
    """
    resume = cfg.grpo.get("resume_from_checkpoint")
    if not resume:
        return
    if resume is True:
        if out.is_dir() and get_last_checkpoint(str(out)) is not None:
            return
        saves = cfg.grpo.get("save_strategy", "no")
        raise cfg.error(
            "grpo.resume_from_checkpoint",
            f"true, but {out} holds no checkpoint-* folder to resume from"
            + (
                " (no run saves one with save_strategy 'no', the default: set "
                "grpo.save_strategy: steps and grpo.save_steps on the run to resume)"
                if saves == "no"
                else ""
            ),
        )
    path = Path(str(resume)).expanduser()
    if not (path / "trainer_state.json").is_file():
        raise cfg.error(
            "grpo.resume_from_checkpoint",
            f"{path} is not a checkpoint (no trainer_state.json there)",
        )


def _drop_checkpoints(out: Path) -> None:
    """Remove an earlier run's ``checkpoint-*`` folders when its outputs are replaced: the new
    run writes its own log and plot over the old ones, but left beside its checkpoints the old
    ones would be what a later ``resume_from_checkpoint: true`` picks up (the newest step wins),
    resuming the new run from the old one."""
    for path in out.glob("checkpoint-*"):
        if path.is_dir():
            shutil.rmtree(path)


def train(
    cfg: TrainConfig,
    *,
    max_steps: int | None = None,
    output_dir: Path | str | None = None,
    echo: Callable[[str], None] | None = print,
    overwrite: bool = False,
) -> TrainResult:
    """Train per ``cfg``; writes ``log_history.jsonl`` and ``reward_curve.png`` in the output
    directory (and ``model/`` with ``save_model: true``). ``echo=None`` prints nothing.
    An output directory that holds an earlier run's outputs is refused unless ``overwrite``
    (or the config's ``overwrite: true``), or the run resumes (``grpo.resume_from_checkpoint``).

    Raises:
        ConfigError: anything wrong with the config or the files it names (before training),
            or an output directory that would be overwritten.
    """
    out = Path(output_dir if output_dir is not None else cfg.output_dir)
    replacing = _check_output_dir(cfg, out, overwrite=overwrite)
    _check_resume(cfg, out)
    trainer = build_trainer(cfg, output_dir=out, max_steps=max_steps)
    if replacing:  # only once the config has built: a bad config destroys nothing
        _drop_checkpoints(out)
    trainer.remove_callback(PrinterCallback)
    start = _Start()
    trainer.add_callback(start)
    if echo is not None:
        trainer.add_callback(_Progress(max(1, trainer.args.max_steps // 10), echo))
    device = str(trainer.args.device)
    started = time.perf_counter()
    finished = False
    try:
        with (
            warnings.catch_warnings(),
            _one_thread_if(cfg.model.tiny is not None and device == "cpu"),
        ):
            # TRL 1.16 calls the deprecated name itself on every generation; nothing to act on.
            warnings.filterwarnings("ignore", _TRL_OWN_DEPRECATION, FutureWarning)
            # GRPOConfig takes resume_from_checkpoint, but the Trainer only reads it here.
            trainer.train(resume_from_checkpoint=trainer.args.resume_from_checkpoint)
        finished = True
    finally:
        # Interrupted (Ctrl-C, a crash, preemption) or not, the steps trained so far are logged:
        # the log and the plot were written only after a whole run, so nothing survived. A run
        # that failed before logging anything leaves an earlier run's log (a resume's) as it was.
        seconds = time.perf_counter() - started
        history = list(trainer.state.log_history)
        if history:
            out.mkdir(parents=True, exist_ok=True)
            write_history(history, out / "log_history.jsonl")
            plot_rewards(history, out / "reward_curve.png", title=f"GRPO on {cfg.source}")
        if not finished and history and echo is not None:
            echo(
                f"interrupted at step {trainer.state.global_step}: the log so far is in "
                f"{out / 'log_history.jsonl'}"
            )
    if cfg.save_model:
        trainer.save_model(str(out / "model"))
    summary = summarize(history, seconds, resumed_from=start.step)
    if echo is not None:
        echo(summary.text(out, device))
    return TrainResult(summary, history, out, device)
