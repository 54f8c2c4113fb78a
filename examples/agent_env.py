"""Example environments for agent training (``examples/agent_train.yaml``), following TRL's
``environment_factory`` contract: ``reset(**row)`` before each rollout, every public method a tool
the model may call (type hints and an ``Args:`` docstring give its JSON schema), and
``get_reward()`` for the environment's own verdict on the rollout, in ``[0, 1]``.

``Calculator`` scores a rollout 1.0 when its last ``calculate`` call produced the row's
``answer``: the environment saw the right number computed, whatever the final message says
(the ``final_answer`` grader checks that). ``Lookup`` answers capital-city questions from a
small table, for a dataset that mixes environments by its ``environment`` column.
"""

from __future__ import annotations

import ast
import operator
from typing import Any

_OPS: dict[type, Any] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.USub: operator.neg,
    ast.UAdd: operator.pos,
}


def _evaluate(node: ast.AST) -> float:
    """Arithmetic only: numbers, + - * / and parentheses (no names, calls or powers)."""
    if isinstance(node, ast.Expression):
        return _evaluate(node.body)
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        return node.value
    if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
        return _OPS[type(node.op)](_evaluate(node.left), _evaluate(node.right))
    if isinstance(node, ast.UnaryOp) and type(node.op) in _OPS:
        return _OPS[type(node.op)](_evaluate(node.operand))
    raise ValueError(f"not allowed in an expression: {ast.dump(node)[:40]}")


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:.6g}"


class Calculator:
    """Arithmetic word problems; the tool is ``calculate``."""

    def __init__(self) -> None:
        self.answer: str | None = None
        self.results: list[str] = []

    def reset(self, answer: Any = None, **row: Any) -> None:
        """Start a rollout: remember the gold answer, forget earlier results."""
        self.answer = None if answer is None else str(answer)
        self.results = []

    def calculate(self, expression: str) -> str:
        """Evaluate an arithmetic expression and return the result.

        Args:
            expression: numbers with + - * / and parentheses, e.g. "17 * (2 + 3)".
        """
        if len(expression) > 200:
            raise ValueError("expression too long")
        value = _number(_evaluate(ast.parse(expression, mode="eval")))
        self.results.append(value)
        return value

    def get_reward(self) -> float:
        """1.0 if the rollout's last calculation produced the gold answer, else 0.0.

        Only the last one counts: paying for any of them paid a policy that calculated every
        number it could think of. A row without an answer cannot be scored (an error, which the
        trainer reports and leaves unscored), rather than a plausible 0.0.
        """
        if self.answer is None:
            raise ValueError("the row has no answer column: this rollout cannot be scored")
        return 1.0 if self.results and self.results[-1] == self.answer else 0.0


CAPITALS = {
    "france": "Paris",
    "japan": "Tokyo",
    "kenya": "Nairobi",
    "peru": "Lima",
    "canada": "Ottawa",
    "norway": "Oslo",
    "egypt": "Cairo",
    "chile": "Santiago",
}


class Lookup:
    """Capital cities from a table; the tool is ``capital``. No ``get_reward``: graders score it."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    def reset(self, **row: Any) -> None:
        """Start a rollout."""
        self.asked = []

    def capital(self, country: str) -> str:
        """The capital city of a country.

        Args:
            country: the country's English name, e.g. "France".
        """
        self.asked.append(country)
        found = CAPITALS.get(country.strip().lower())
        if found is None:
            raise KeyError(f"no capital known for {country!r}")
        return found
