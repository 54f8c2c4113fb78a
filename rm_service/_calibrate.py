"""``rm-service calibrate``: fit a reward model's score map on reference data and save it in the
config.

Why: a reward model's logit has no fixed scale (see :mod:`graders._rm_score`), so the default
sigmoid may put every response of a task near 0.9, or near 0.1, and a weighted sum with rule
rewards then weighs the RM by accident. Calibration fixes the scale from data the user trusts:

* with no labels (the reference is honest, acceptable responses), a ``quantile`` map: a response
  scores the share of the reference it beats, so 0.5 is "a typical honest answer" (``--map
  sigmoid`` instead fits a smooth curve with the reference's median at 0.5 and quartiles at 0.25
  and 0.75);
* with ``--label-field`` (1 = good, 0 = bad, or a probability), ``logistic``: Platt scaling, so a
  score is the calibrated probability that the response is good.

It grades the reference with that one grader of the config (its mapper applies, the rest of the
config does not run), fits on the raw outputs in ``metadata["raw"]``, and writes the config with
the grader's ``score_map`` replaced. The YAML is rewritten by PyYAML, so comments are not kept:
the previous file is saved beside it as ``<config>.bak`` when written in place.
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import json
import math
import shutil
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rm_service._exceptions import ConfigError, InputError

# The engine is imported inside the functions that run it, not here: the CLI builds its parser
# from add_arguments on every invocation, and `rm-service --help` must not load the graders.
if TYPE_CHECKING:
    from graders._rm_score import ScoreMap
    from rm_service._runner import GradingRunner

__all__ = ["Calibration", "add_arguments", "calibrate", "calibrate_args"]


@dataclass(frozen=True)
class Calibration:
    """What :func:`calibrate` fitted, on how many records, and what it left out."""

    score_map: ScoreMap
    raws: list[float]
    skipped: dict[int, str]
    """Reference lines (1-based) the grader could not score, with why."""
    written: Path


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The ``calibrate`` options."""
    p.add_argument("reference", type=Path, help="reference JSONL (records the grader can read)")
    p.add_argument("-c", "--config", type=Path, required=True, help="reward config YAML")
    p.add_argument(
        "-g",
        "--grader",
        help="the reward-model grader to calibrate (default: the config's only grader that "
        "reports a raw output, e.g. type reward_model)",
    )
    p.add_argument(
        "--map",
        choices=("quantile", "sigmoid", "logistic"),
        help="the map to fit (default: logistic with --label-field, else quantile)",
    )
    p.add_argument(
        "--label-field",
        help="a record field holding the label: 1 = good, 0 = bad, or a probability",
    )
    p.add_argument(
        "-o", "--output", type=Path, help="where to write the config (default: in place)"
    )


def calibrate_args(args: argparse.Namespace) -> int:
    """Run ``rm-service calibrate`` from parsed arguments; prints a summary; exit code."""
    result = calibrate(
        args.reference,
        args.config,
        grader=args.grader,
        kind=args.map,
        label_field=args.label_field,
        output=args.output,
    )
    raws = result.raws
    print(
        f"fitted on {len(raws)} records: raw min {min(raws):.4g}, median "
        f"{statistics.median(raws):.4g}, max {max(raws):.4g}"
    )
    if result.skipped:
        first = next(iter(result.skipped.items()))
        print(f"skipped {len(result.skipped)} unscored records (line {first[0]}: {first[1]})")
    fitted = result.score_map
    mapped = [fitted(r) for r in raws]
    shown = (
        f"quantile, {len(fitted.knots)} knots from {fitted.knots[0]:.4g} to {fitted.knots[-1]:.4g}"
        if fitted.kind == "quantile"
        else json.dumps(fitted.describe())
    )
    print(f"score_map: {shown}; mean score on the reference {statistics.fmean(mapped):.3f}")
    print(f"wrote {result.written}")
    return 0


def calibrate(
    reference: Path,
    config: Path,
    *,
    grader: str | None = None,
    kind: str | None = None,
    label_field: str | None = None,
    output: Path | None = None,
) -> Calibration:
    """Fit ``grader``'s score map on ``reference`` and write ``config`` with it to ``output``.

    Raises:
        ConfigError: the config, the grader name, or a grader that reports no raw output.
        InputError: an unreadable reference line, a bad label, or too few scored records to fit.
    """
    import yaml

    from graders._rm_score import ScoreMap, fit_score_map
    from rm_service._config import load_runner
    from rm_service._mapper import GraderConfig
    from rm_service._result import GraderScore
    from rm_service._run_files import refuse_collisions
    from rm_service._runner import GradingRunner

    target = output or config
    # Before anything is graded: -o naming the reference replaced the data with the config.
    refuse_collisions({"reference": reference, "config": config})
    refuse_collisions({"reference": reference, "output": target})
    if not target.parent.is_dir():
        raise InputError(f"{target}: no such folder {target.parent} (nothing was graded)")
    raw_cfg = _read_yaml(config)
    runner = load_runner(config)
    name = _pick(runner, grader, config)
    lines, records, labels = _read_reference(reference, label_field)
    chosen_cfg = runner.grader_configs[name]
    if isinstance(getattr(chosen_cfg.grader, "score_map", None), ScoreMap):
        # The fit reads the raw outputs, whatever the config's map makes of them; under a map
        # that refuses some raws (identity: outside [0, 1]) those records would be unscored and
        # the fit made on the rest, a biased subset. The default sigmoid takes any finite raw.
        # On a copy: a ready-made grader named by import string is the module's own object.
        unmapped = copy.copy(chosen_cfg.grader)
        setattr(unmapped, "score_map", ScoreMap())  # noqa: B010  # Grader declares none
        chosen_cfg = GraderConfig(
            grader=unmapped, mapper=chosen_cfg.mapper, call_timeout=chosen_cfg.call_timeout
        )
    one = GradingRunner(
        {name: chosen_cfg},
        aggregators=[],
        max_concurrency=runner.max_concurrency,
        call_timeout=runner.call_timeout,
        reward=name,
    )
    results = asyncio.run(_grade(one, records))
    raws: list[float] = []
    kept_labels: list[float] = []
    skipped: dict[int, str] = {}
    for i, res in enumerate(results):
        comp = res.components[name]
        raw = comp.metadata.get("raw") if isinstance(comp, GraderScore) else None
        if not isinstance(comp, GraderScore):
            skipped[lines[i]] = f"{comp.kind}: {comp.error}"
        elif "pregate" in comp.metadata:  # scored 0 by a gate, the model never saw it
            skipped[lines[i]] = f"gated: {comp.reason}"
        elif not isinstance(raw, int | float) or isinstance(raw, bool):
            raise ConfigError(
                f"{config}: graders.{name} reports no raw output (metadata 'raw'); only a reward "
                "model grader can be calibrated"
            )
        elif math.isfinite(raw):
            raws.append(float(raw))
            if labels is not None:
                kept_labels.append(labels[i])
    chosen = kind or ("logistic" if label_field else "quantile")
    try:
        fitted = fit_score_map(
            raws, kind=chosen, labels=kept_labels if label_field is not None else None
        )
    except ValueError as exc:
        raise InputError(f"{reference}: cannot fit a {chosen} map: {exc}") from None
    raw_cfg["graders"][name]["score_map"] = fitted.describe()
    try:
        if target.resolve() == config.resolve():
            shutil.copyfile(config, config.with_name(config.name + ".bak"))
        target.write_text(yaml.safe_dump(raw_cfg, sort_keys=False, allow_unicode=True))
    except OSError as exc:
        raise InputError(
            f"cannot write {target}: {exc.strerror or exc}; the fitted map was "
            f"{json.dumps(fitted.describe())}"
        ) from None
    load_runner(target)  # the written config must load; a failure here is a bug worth seeing
    return Calibration(score_map=fitted, raws=raws, skipped=skipped, written=target)


async def _grade(runner: GradingRunner, records: list[dict[str, Any]]) -> list[Any]:
    from graders._base import contract

    failed = await runner.aload()
    if failed:
        name, error = next(iter(failed.items()))
        raise ConfigError(f"grader {name!r} could not start: {error}")
    try:
        return await runner.agrade(records)
    finally:
        for cfg in runner.grader_configs.values():
            await contract(cfg.grader).aclose()


def _read_yaml(config: Path) -> dict[str, Any]:
    import yaml

    from rm_service._config import load_yaml

    try:
        data = load_yaml(config.read_text())
    except OSError as exc:
        raise ConfigError(f"{config}: cannot read: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{config}: invalid YAML: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("graders"), dict):
        raise ConfigError(f"{config}: not a reward config (no graders mapping)")
    return data


def _pick(runner: GradingRunner, grader: str | None, config: Path) -> str:
    names = list(runner.grader_configs)
    if grader is not None:
        if grader not in runner.grader_configs:
            raise ConfigError(f"{config}: no grader {grader!r}; graders: {', '.join(names)}")
        return grader
    mapped = [n for n in names if hasattr(runner.grader_configs[n].grader, "score_map")]
    if len(mapped) != 1:
        found = ", ".join(mapped) or "none"
        raise ConfigError(
            f"{config}: name the grader to calibrate with --grader (reward model graders: {found})"
        )
    return mapped[0]


def _read_reference(
    path: Path, label_field: str | None
) -> tuple[list[int], list[dict[str, Any]], list[float] | None]:
    """``(line numbers, records, labels)`` of the reference JSONL."""
    from rm_service._audit import read_records

    numbers: list[int] = []
    records: list[dict[str, Any]] = []
    labels: list[float] | None = [] if label_field else None
    # One reader for every JSONL input: lines split on b"\n" alone (a raw U+2028 inside a JSON
    # string is valid and was split by str.splitlines), a BOM and blank lines allowed.
    for n, rec in read_records(path, what="calibrate on"):
        if labels is not None and label_field is not None:
            value = rec.get(label_field)
            if isinstance(value, bool):
                value = float(value)
            if not isinstance(value, int | float) or not 0.0 <= value <= 1.0:
                raise InputError(
                    f"{path} line {n}: {label_field!r} must be a label in [0, 1] (1 = good), "
                    f"got {value!r}"
                )
            labels.append(float(value))
        numbers.append(n)
        records.append(rec)
    return numbers, records, labels
