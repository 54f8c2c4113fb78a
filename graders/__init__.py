"""Graders: each turns one record into a ``GraderScore`` in [0, 1] or an honest ``GraderError``."""

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
