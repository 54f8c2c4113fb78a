"""The four named LLM judges: harmfulness, relevance, correctness, instruction following.

Each is a thin preset of :class:`~graders._judge.LLMGrader`: a bundled template with its 1-5
rubric (``graders/prompts/<name>.md``), its record fields, and the default pre-gates (empty,
master-key and question-restating responses score 0.0 without a judge call). Everything else
(output mode, expected scoring, cache, sampling) is passed through.

Harmfulness is rated as *harm* (1 = harmless, 5 = severely harmful) and flipped, so its score,
like every score here, is higher-is-better: 1.0 means harmless. Its pre-gates are on too, which
is a deliberate policy: an empty or content-free response is worthless, so it must not farm the
harmlessness reward (a policy that learns to say nothing is perfectly "harmless"). Pass
``pregates=()`` to rate such responses on harm alone.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any, ClassVar

from graders._base import grader
from graders._judge import LLMGrader, ModelSpec
from graders._pregate import DEFAULT_PREGATES, PreGate
from rm_service._exceptions import ConfigError

__all__ = [
    "CorrectnessGrader",
    "HarmfulnessGrader",
    "InstructionFollowingGrader",
    "RelevanceGrader",
]

_BUNDLED_SCALE = (1, 5)


class _NamedJudge(LLMGrader):
    """Shared preset logic: the bundled template fixes the scale and the direction.

    A bundled rubric is written for 1-5 in one direction; a different ``scale`` or
    ``higher_is_better`` with it would make the judge and the grader disagree about what a number
    means, so either needs your own ``template``.
    """

    default_higher_is_better: ClassVar[bool] = True

    def __init__(
        self,
        model: ModelSpec,
        *,
        template: str | Path | None = None,
        scale: tuple[int, int] = _BUNDLED_SCALE,
        higher_is_better: bool | None = None,
        pregates: Iterable[PreGate] = DEFAULT_PREGATES,
        **kwargs: Any,
    ) -> None:
        if template is None:
            if tuple(scale) != _BUNDLED_SCALE:
                raise ConfigError(
                    f"{type(self).__name__}: the bundled rubric is on a 1-5 scale; pass your own "
                    f"template= to use scale={tuple(scale)}"
                )
            if higher_is_better not in (None, self.default_higher_is_better):
                raise ConfigError(
                    f"{type(self).__name__}: the bundled rubric fixes higher_is_better="
                    f"{self.default_higher_is_better}; pass your own template= to change it"
                )
        super().__init__(
            model,
            template=template,
            scale=scale,
            higher_is_better=(
                self.default_higher_is_better if higher_is_better is None else higher_is_better
            ),
            pregates=pregates,
            **kwargs,
        )


@grader
class HarmfulnessGrader(_NamedJudge):
    """How harmless the response is: 1.0 = harmless, 0.0 = severely harmful.

    Fields: ``response``; optional ``query`` (a refused harmful request is harmless, so the query
    helps the judge, but the response is what is rated). Other arguments as
    :class:`~graders._judge.LLMGrader`.
    """

    default_name: ClassVar[str] = "harmfulness"
    default_template: ClassVar[str] = "harmfulness"
    default_optional_fields: ClassVar[tuple[str, ...]] = ("query",)
    default_higher_is_better: ClassVar[bool] = False


@grader
class RelevanceGrader(_NamedJudge):
    """How relevant the response is to the query (on topic, addresses what was asked).

    Fields: ``query``, ``response``. Other arguments as :class:`~graders._judge.LLMGrader`.
    """

    default_name: ClassVar[str] = "relevance"
    default_template: ClassVar[str] = "relevance"


@grader
class CorrectnessGrader(_NamedJudge):
    """How correct the response is against a reference answer.

    Fields: ``response``, ``reference_response``; optional ``query``. Other arguments as
    :class:`~graders._judge.LLMGrader`. For verifiable answers (math, exact strings) prefer the
    deterministic graders and use this as a fallback.
    """

    default_name: ClassVar[str] = "correctness"
    default_template: ClassVar[str] = "correctness"
    default_optional_fields: ClassVar[tuple[str, ...]] = ("query",)


@grader
class InstructionFollowingGrader(_NamedJudge):
    """How well the response follows an explicit instruction and its constraints.

    Fields: ``instruction``, ``response``; optional ``query``. Other arguments as
    :class:`~graders._judge.LLMGrader`.
    """

    default_name: ClassVar[str] = "instruction_following"
    default_template: ClassVar[str] = "instruction_following"
    default_optional_fields: ClassVar[tuple[str, ...]] = ("query",)
