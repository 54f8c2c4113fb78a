"""How a reward model's raw output becomes a reward in ``[0, 1]``: one small, documented map.

A Bradley-Terry reward model outputs an unbounded logit whose scale and zero point mean nothing
outside the model (two RMs trained on the same data can differ by a constant and a factor). Every
face here speaks rewards in ``[0, 1]``, so each RM grader takes a ``score_map:`` param, written in
YAML as::

    score_map: {map: sigmoid, temperature: 1.0, offset: 0.0}    # the default
    score_map: {map: logistic, a: 0.8, b: -1.2}                 # Platt scaling, fitted on labels
    score_map: {map: quantile, knots: [-2.1, -0.4, 0.3, 1.9]}   # the reference's empirical CDF
    score_map: {map: identity}                                  # the raw already is a probability

* ``sigmoid``: ``1 / (1 + exp(-(raw - offset) / temperature))``. With the defaults it is the
  Bradley-Terry probability that the response beats one whose logit is 0, which is what the logit
  means in the model's own training objective. It keeps the ranking and never saturates abruptly.
* ``logistic``: ``1 / (1 + exp(-(a * raw + b)))``, the same curve with Platt's parameters: fitted
  on a reference set with labels in ``[0, 1]`` (good = 1), it turns the logit into a calibrated
  probability that the response is good.
* ``quantile``: piecewise-linear through ``knots`` (raw values, non-decreasing) at ``levels``
  (default evenly spaced from 0 to 1): fitted over a set of honest, acceptable responses, the score
  is the share of that set the response beats. Below the first knot it is 0, above the last 1.
* ``identity``: for a server that already returns a probability (vLLM's ``/classify`` applies
  softmax or sigmoid itself); a value outside ``[0, 1]`` is an error, never clamped.

The raw output always goes into the result's metadata beside the score, so a caller can re-map.
A NaN or infinite raw is a :class:`ValueError` from the map (the grader reports the record
unscored), never a score: a model that produced a NaN has failed, and 0 or 1 would hide it.

``rm-service calibrate`` fits a map with :func:`fit_score_map` and saves :meth:`ScoreMap.describe`
into the config as the grader's ``score_map``.
"""

from __future__ import annotations

import bisect
import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from rm_service._exceptions import ConfigError

__all__ = ["MAP_KINDS", "ScoreMap", "fit_score_map", "score_map"]

MAP_KINDS = ("sigmoid", "logistic", "quantile", "identity")

_PARAMS: dict[str, tuple[str, ...]] = {
    "sigmoid": ("temperature", "offset"),
    "logistic": ("a", "b"),
    "quantile": ("knots", "levels"),
    "identity": (),
}

_QUANTILE_KNOTS = 21
"""Knots a fitted quantile map keeps (every 5th percentile): enough that the piecewise-linear CDF
is within a few hundredths of the empirical one for smooth logit distributions, few enough to
read in a config."""


@dataclass(frozen=True)
class ScoreMap:
    """A raw reward-model output to a reward in ``[0, 1]``; see the module docstring for the
    kinds. Frozen and picklable (a Ray worker receives it with its grader). Build one with
    :func:`score_map` (from a config) or :func:`fit_score_map` (from reference data), which check
    the parameters; the constructor does not."""

    kind: str = "sigmoid"
    temperature: float = 1.0
    offset: float = 0.0
    a: float = 1.0
    b: float = 0.0
    knots: tuple[float, ...] = ()
    levels: tuple[float, ...] = ()

    def __call__(self, raw: float) -> float:
        """The reward for ``raw``, always in ``[0, 1]``.

        Raises:
            ValueError: ``raw`` is NaN or infinite, or (identity) outside ``[0, 1]``.
        """
        x = float(raw)
        if not math.isfinite(x):
            raise ValueError(f"reward model output {raw!r} is not a finite number")
        if self.kind == "sigmoid":
            return _sigmoid((x - self.offset) / self.temperature)
        if self.kind == "logistic":
            return _sigmoid(self.a * x + self.b)
        if self.kind == "quantile":
            return _interpolate(x, self.knots, self.levels)
        if self.kind == "identity":
            if not 0.0 <= x <= 1.0:
                raise ValueError(
                    f"reward model output {x!r} is outside [0, 1], so it is not a probability "
                    "(score_map identity); choose a sigmoid or fitted map for raw logits"
                )
            return x
        raise ValueError(f"unknown score map {self.kind!r}")

    def describe(self) -> dict[str, Any]:
        """The map as a config writes it (``score_map(m.describe(), ...) == m``); also what a
        grader puts in each result's metadata."""
        out: dict[str, Any] = {"map": self.kind}
        for key in _PARAMS[self.kind]:
            value = getattr(self, key)
            out[key] = list(value) if isinstance(value, tuple) else value
        if self.kind == "quantile" and self.levels == _even(len(self.knots)):
            del out["levels"]  # the default: a config need not spell it out
        return out


def score_map(spec: Mapping[str, Any] | None, *, where: str) -> ScoreMap:
    """The :class:`ScoreMap` a config's ``score_map:`` block describes; ``None`` or ``{}`` is the
    default sigmoid (temperature 1, offset 0).

    Args:
        spec: ``{"map": kind, **params}`` (see the module docstring).
        where: what to name in an error, e.g. ``"reward.yaml: graders.rm.score_map"``.

    Raises:
        ConfigError: an unknown map or parameter, or a value that is not usable (a temperature
            that is not positive, knots that go down, levels outside ``[0, 1]``), naming ``where``.
    """
    if spec is None:
        return ScoreMap()
    if isinstance(spec, ScoreMap):
        return spec
    if not isinstance(spec, Mapping):
        raise ConfigError(
            f"{where}: expected a mapping like {{map: sigmoid, temperature: 1.0}}, got {spec!r}"
        )
    kind = spec.get("map", "sigmoid")
    if kind not in _PARAMS:
        raise ConfigError(f"{where}.map: {kind!r} is not one of {', '.join(MAP_KINDS)}")
    allowed = _PARAMS[kind]
    unknown = sorted(str(k) for k in spec if k != "map" and k not in allowed)
    if unknown:
        takes = ", ".join(allowed) or "no parameters"
        raise ConfigError(f"{where}: map {kind} takes {takes}; unknown: {', '.join(unknown)}")
    if kind == "sigmoid":
        temperature = _number(spec.get("temperature", 1.0), f"{where}.temperature")
        if temperature <= 0:
            raise ConfigError(f"{where}.temperature: must be > 0, got {temperature!r}")
        offset = _number(spec.get("offset", 0.0), f"{where}.offset")
        return ScoreMap(kind="sigmoid", temperature=temperature, offset=offset)
    if kind == "logistic":
        if "a" not in spec or "b" not in spec:
            raise ConfigError(f"{where}: map logistic needs both a and b")
        a = _number(spec["a"], f"{where}.a")
        if a <= 0:
            raise ConfigError(
                f"{where}.a: must be > 0 (a higher raw output must not lower the reward), got {a!r}"
            )
        return ScoreMap(kind="logistic", a=a, b=_number(spec["b"], f"{where}.b"))
    if kind == "quantile":
        return _quantile_map(spec, where)
    return ScoreMap(kind="identity")


def fit_score_map(
    raws: Sequence[float], *, kind: str, labels: Sequence[float] | None = None
) -> ScoreMap:
    """Fit a map on reference raw outputs (and, for ``logistic``, their labels).

    * ``sigmoid`` (no labels): offset = the median raw, temperature such that the reference's
      quartiles map to 0.25 and 0.75 (``IQR / (2 ln 3)``, the logistic distribution's quartiles):
      a typical reference response scores 0.5 and the map's slope follows the RM's spread.
    * ``logistic`` (labels in ``[0, 1]``, 1 = good): Platt scaling, a one-feature logistic
      regression by Newton's method. Binary labels get Platt's targets ``(n+ + 1) / (n+ + 2)`` and
      ``1 / (n- + 2)``, so a reference set the RM separates perfectly still gives a finite slope.
    * ``quantile`` (no labels; the reference should be honest, acceptable responses): knots at
      every 5th percentile of ``raws``, so a score is the share of the reference it beats.

    Raises:
        ValueError: too few or non-finite raws, labels given to a map that takes none (or missing
            for ``logistic``), labels outside ``[0, 1]`` or all one class, a spread of zero, or a
            fitted slope that is not positive (the RM ranks the reference backwards).
    """
    xs = [float(r) for r in raws]
    if len(xs) < 2:
        raise ValueError(f"need at least 2 reference outputs to fit a map, got {len(xs)}")
    bad = [x for x in xs if not math.isfinite(x)]
    if bad:
        raise ValueError(f"{len(bad)} reference outputs are not finite numbers (e.g. {bad[0]!r})")
    if kind not in _PARAMS or kind == "identity":
        raise ValueError(f"cannot fit map {kind!r}; fit one of sigmoid, logistic, quantile")
    if kind != "logistic" and labels is not None:
        raise ValueError(f"map {kind} is fitted on raw outputs alone; labels are for logistic")
    if kind == "sigmoid":
        q25, median, q75 = (_quantile(sorted(xs), p) for p in (0.25, 0.5, 0.75))
        spread = q75 - q25
        if spread <= 0:
            raise ValueError("the reference outputs' interquartile range is 0; cannot set a scale")
        if not math.isfinite(spread):
            raise ValueError("the reference outputs' interquartile range is past the float range")
        return ScoreMap(kind="sigmoid", temperature=spread / (2 * math.log(3)), offset=median)
    if kind == "quantile":
        ordered = sorted(xs)
        if ordered[0] == ordered[-1]:
            raise ValueError("every reference output is the same; cannot fit quantiles")
        levels = _even(min(_QUANTILE_KNOTS, len(ordered)))
        knots = tuple(_quantile(ordered, p) for p in levels)
        if not all(math.isfinite(k) for k in knots):
            raise ValueError("the reference outputs span more than the float range; rescale them")
        return ScoreMap(kind="quantile", knots=knots, levels=levels)
    if labels is None:
        raise ValueError("map logistic is fitted on labels (1 = good, 0 = bad); none were given")
    if max(abs(x) for x in xs) > 1e150:
        # Standardising squares them: past the float range, an OverflowError, not a fit.
        raise ValueError("reference outputs beyond 1e150 in size cannot be fitted; rescale them")
    ys = [float(y) for y in labels]
    if len(ys) != len(xs):
        raise ValueError(f"{len(xs)} reference outputs but {len(ys)} labels")
    if any(not (0.0 <= y <= 1.0) for y in ys):
        raise ValueError("labels must be in [0, 1] (1 = good, 0 = bad)")
    a, b = _platt(xs, ys)
    if not (a > 0 and math.isfinite(a) and math.isfinite(b)):
        raise ValueError(
            f"the fitted slope is {a:.4g}: on this reference the reward model scores the bad "
            "responses higher than the good ones, so no increasing map can calibrate it"
        )
    return ScoreMap(kind="logistic", a=a, b=b)


# --- helpers ------------------------------------------------------------------------------------


def _sigmoid(z: float) -> float:
    """Overflow-free for any finite ``z``."""
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


def _interpolate(x: float, knots: Sequence[float], levels: Sequence[float]) -> float:
    if x < knots[0]:
        return 0.0
    if x >= knots[-1]:
        return 1.0
    i = bisect.bisect_right(knots, x)  # knots[i - 1] <= x < knots[i], past any equal knots
    lo, hi = knots[i - 1], knots[i]
    # hi > lo: bisect_right skipped any run of equal knots. Knots further apart than the float
    # range (-1e308, 1e308) are halved (exact at that size), a fraction, not inf / inf; only
    # then: halving a subnormal is not exact (0 and 5e-324 would be one point, 0 / 0).
    span = hi - lo
    frac = (x - lo) / span if math.isfinite(span) else (x / 2 - lo / 2) / (hi / 2 - lo / 2)
    return min(1.0, max(0.0, levels[i - 1] + frac * (levels[i] - levels[i - 1])))


def _quantile(ordered: Sequence[float], p: float) -> float:
    """Linear-interpolated quantile of sorted data (numpy's default method)."""
    pos = p * (len(ordered) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(ordered) - 1)
    if pos == lo:  # on a sample: itself, not 0 * (a gap past the float range) = NaN
        return ordered[lo]
    return ordered[lo] + (pos - lo) * (ordered[hi] - ordered[lo])


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"{where}: expected a number, got {value!r}")
    x = float(value)
    if not math.isfinite(x):
        raise ConfigError(f"{where}: expected a finite number, got {value!r}")
    return x


def _numbers(value: Any, where: str) -> tuple[float, ...]:
    if isinstance(value, str | bytes) or not isinstance(value, Sequence):
        raise ConfigError(f"{where}: expected a list of numbers, got {value!r}")
    return tuple(_number(v, f"{where}[{i}]") for i, v in enumerate(value))


def _quantile_map(spec: Mapping[str, Any], where: str) -> ScoreMap:
    if "knots" not in spec:
        raise ConfigError(f"{where}: map quantile needs knots (raw outputs, non-decreasing)")
    knots = _numbers(spec["knots"], f"{where}.knots")
    if len(knots) < 2:
        raise ConfigError(f"{where}.knots: need at least 2, got {len(knots)}")
    if any(b < a for a, b in itertools.pairwise(knots)):
        raise ConfigError(f"{where}.knots: must be non-decreasing, got {list(knots)}")
    if knots[0] == knots[-1]:
        raise ConfigError(f"{where}.knots: all equal ({knots[0]}); they must span a range")
    if "levels" in spec:
        levels = _numbers(spec["levels"], f"{where}.levels")
        if len(levels) != len(knots):
            raise ConfigError(f"{where}.levels: {len(levels)} levels for {len(knots)} knots")
        if any(not 0.0 <= v <= 1.0 for v in levels) or any(
            b < a for a, b in itertools.pairwise(levels)
        ):
            raise ConfigError(f"{where}.levels: must be non-decreasing within [0, 1]")
    else:
        levels = _even(len(knots))
    return ScoreMap(kind="quantile", knots=knots, levels=levels)


def _even(n: int) -> tuple[float, ...]:
    """``n`` levels evenly spaced from 0 to 1: a quantile map's default."""
    return tuple(i / (n - 1) for i in range(n))


def _platt(xs: Sequence[float], ys: Sequence[float]) -> tuple[float, float]:
    """``(a, b)`` maximising the likelihood of ``ys`` under ``sigmoid(a * x + b)``.

    Newton's method on standardised ``x`` (so the Hessian is well scaled whatever the RM's logit
    range), with step halving so the log-likelihood never decreases.
    """
    binary = all(y in (0.0, 1.0) for y in ys)
    if binary:
        n_pos = sum(1 for y in ys if y == 1.0)
        n_neg = len(ys) - n_pos
        if n_pos == 0 or n_neg == 0:
            raise ValueError("the labels are all one class; logistic needs good and bad examples")
        hi, lo = (n_pos + 1) / (n_pos + 2), 1 / (n_neg + 2)
        ts = [hi if y == 1.0 else lo for y in ys]
    else:
        ts = list(ys)
    n = len(xs)
    mean = sum(xs) / n
    std = math.sqrt(sum((x - mean) ** 2 for x in xs) / n)
    if std == 0:
        raise ValueError("every reference output is the same; cannot fit a slope")
    zs = [(x - mean) / std for x in xs]

    def loss(w: float, c: float) -> float:
        total = 0.0
        for z, t in zip(zs, ts, strict=True):
            u = w * z + c  # -log-likelihood, written so neither exp can overflow
            total += max(u, 0.0) + math.log1p(math.exp(-abs(u))) - t * u
        return total

    w, c = 0.0, 0.0
    current = loss(w, c)
    for _ in range(100):
        gw = gc = hww = hwc = hcc = 0.0
        for z, t in zip(zs, ts, strict=True):
            p = _sigmoid(w * z + c)
            r = p - t
            s = max(p * (1 - p), 1e-12)
            gw += r * z
            gc += r
            hww += s * z * z
            hwc += s * z
            hcc += s
        det = hww * hcc - hwc * hwc
        if det <= 0:
            break
        dw = (hcc * gw - hwc * gc) / det
        dc = (hww * gc - hwc * gw) / det
        step = 1.0
        while step > 1e-8:
            trial = loss(w - step * dw, c - step * dc)
            if trial <= current:
                break
            step /= 2
        else:
            break
        w, c = w - step * dw, c - step * dc
        improvement = current - trial
        current = trial
        if (abs(step * dw) < 1e-10 and abs(step * dc) < 1e-10) or improvement < 1e-14:
            break
    # back to the raw scale: w * (x - mean) / std + c
    return w / std, c - w * mean / std
