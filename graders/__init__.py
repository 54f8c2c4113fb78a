"""Graders: each turns one record into a ``GraderScore`` in [0, 1] or an honest ``GraderError``."""

from graders._base import (
    BaseGrader,
    FunctionGrader,
    Grader,
    Unscored,
    get_grader,
    grader,
    list_graders,
    register_grader,
    reward,
)

__all__ = [
    "BaseGrader",
    "FunctionGrader",
    "Grader",
    "Unscored",
    "get_grader",
    "grader",
    "list_graders",
    "register_grader",
    "reward",
]
