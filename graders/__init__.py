"""Graders: each turns one record into a ``GraderScore`` in [0, 1] or an honest ``GraderError``.

The names below are imported on first use (module ``__getattr__``), each from its own module,
and the registry imports a built-in type's module when a config first names it
(:mod:`graders._builtins`). Why: importing every grader cost each process that needed one of
them the judges' pre-gates, hundreds of regexes compiled, which a math worker or a rules-only
run never uses. The ``TYPE_CHECKING`` block lets type checkers and IDEs see the same names.
"""

from __future__ import annotations

import typing as _typing

from rm_service._lazy import lazy_attributes as _lazy_attributes

if _typing.TYPE_CHECKING:
    from graders._agent import (
        CalledToolGrader,
        FinalAnswerGrader,
        MaxTurnsGrader,
        ValidToolCallsGrader,
    )
    from graders._base import (
        BaseGrader,
        FunctionGrader,
        Grader,
        Unscored,
        get_grader,
        grader,
        grader_factory,
        list_graders,
        register_grader,
        reward,
    )
    from graders._committee import CommitteeGrader
    from graders._format import FormatGrader
    from graders._harm import OfflineHarmGrader
    from graders._judge import LLMGrader
    from graders._judges import (
        CorrectnessGrader,
        HarmfulnessGrader,
        InstructionFollowingGrader,
        RelevanceGrader,
    )
    from graders._length import LengthPenalty
    from graders._math import MathGrader, shutdown_math_pool
    from graders._number import NumberGrader
    from graders._pregate import (
        DEFAULT_PREGATES,
        AddressesGraderGate,
        EmptyGate,
        MasterKeyGate,
        PreGate,
        RestateGate,
    )
    from graders._remote_rm import RemoteRewardModelGrader
    from graders._reward_model import RewardModelGrader
    from graders._similarity import EmbeddingRelevanceGrader, SimilarityGrader
    from graders._string import StringMatchGrader

# name -> the module that defines it; imported on first access by ``__getattr__``.
_LAZY: dict[str, str] = {
    "CalledToolGrader": "graders._agent",
    "FinalAnswerGrader": "graders._agent",
    "MaxTurnsGrader": "graders._agent",
    "ValidToolCallsGrader": "graders._agent",
    "BaseGrader": "graders._base",
    "FunctionGrader": "graders._base",
    "Grader": "graders._base",
    "Unscored": "graders._base",
    "get_grader": "graders._base",
    "grader": "graders._base",
    "grader_factory": "graders._base",
    "list_graders": "graders._base",
    "register_grader": "graders._base",
    "reward": "graders._base",
    "CommitteeGrader": "graders._committee",
    "FormatGrader": "graders._format",
    "OfflineHarmGrader": "graders._harm",
    "LLMGrader": "graders._judge",
    "CorrectnessGrader": "graders._judges",
    "HarmfulnessGrader": "graders._judges",
    "InstructionFollowingGrader": "graders._judges",
    "RelevanceGrader": "graders._judges",
    "LengthPenalty": "graders._length",
    "MathGrader": "graders._math",
    "shutdown_math_pool": "graders._math",
    "NumberGrader": "graders._number",
    "DEFAULT_PREGATES": "graders._pregate",
    "AddressesGraderGate": "graders._pregate",
    "EmptyGate": "graders._pregate",
    "MasterKeyGate": "graders._pregate",
    "PreGate": "graders._pregate",
    "RestateGate": "graders._pregate",
    "RemoteRewardModelGrader": "graders._remote_rm",
    "RewardModelGrader": "graders._reward_model",
    "EmbeddingRelevanceGrader": "graders._similarity",
    "SimilarityGrader": "graders._similarity",
    "StringMatchGrader": "graders._string",
}

__getattr__, __dir__ = _lazy_attributes(__name__, globals(), _LAZY)

__all__ = [
    "DEFAULT_PREGATES",
    "AddressesGraderGate",
    "BaseGrader",
    "CalledToolGrader",
    "CommitteeGrader",
    "CorrectnessGrader",
    "EmbeddingRelevanceGrader",
    "EmptyGate",
    "FinalAnswerGrader",
    "FormatGrader",
    "FunctionGrader",
    "Grader",
    "HarmfulnessGrader",
    "InstructionFollowingGrader",
    "LLMGrader",
    "LengthPenalty",
    "MasterKeyGate",
    "MathGrader",
    "MaxTurnsGrader",
    "NumberGrader",
    "OfflineHarmGrader",
    "PreGate",
    "RelevanceGrader",
    "RemoteRewardModelGrader",
    "RestateGate",
    "RewardModelGrader",
    "SimilarityGrader",
    "StringMatchGrader",
    "Unscored",
    "ValidToolCallsGrader",
    "get_grader",
    "grader",
    "grader_factory",
    "list_graders",
    "register_grader",
    "reward",
    "shutdown_math_pool",
]
