"""A reward written as a formula over component names, e.g. ``"0.7 * correct + 0.3 * format"``.

The language is OpenAI's ``multi`` grader's ``calculate_output``: numbers, component names,
``+ - * /``, ``^`` (power, right-associative: ``a ^ b ^ c`` is ``a ^ (b ^ c)``), unary minus,
parentheses and the functions ``min max abs floor ceil exp sqrt log`` (``log`` is natural).
Precedence, loosest first: ``+ -``, then ``* /``, then unary ``-``/``+``, then ``^``; so
``-a ^ 2`` is ``-(a ^ 2)`` and ``2 ^ -1`` is ``0.5``, as in mathematics.

A name that is not a Python identifier (``format-check``) is written in backticks:
``min(`format-check`, correct)``. A name followed by ``(`` is a function call, so a component may
even be called ``min`` or ``log``.

The formula is parsed once, at construction, by a small tokenizer and recursive-descent parser
into a tree of closures; no Python code is ever compiled or evaluated, so a config cannot run
anything (``__import__('os')`` is a syntax error). Evaluating a record costs one closure call per
node.

Failures stay failures:

* a syntax error, an unknown function or a wrong argument count: :class:`ConfigError` at
  construction, with the position (a 0-based character offset) and a caret under it; so is an
  all-constant sub-expression that cannot be evaluated (``1 / 0``), or nesting deeper than 100;
* an unknown component name: :class:`ConfigError` at ``bind``, listing the available names;
* division by zero, ``log`` of a non-positive value, ``sqrt`` of a negative one, a negative base to
  a non-integer power, an overflow: the record is unscored (kind ``internal``) with a message naming
  the sub-expression, never a number;
* a result outside ``[0, 1]``: unscored with a message saying so, unless ``clamp=True`` was asked
  for explicitly (NaN and infinity are never clamped).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from typing import NoReturn

from aggregators._base import BaseAggregator, OnError
from aggregators._registry import aggregator
from rm_service._exceptions import ConfigError

__all__ = ["FORMULA_FUNCTIONS", "FormulaAggregator"]

_Eval = Callable[[Mapping[str, float]], float]

_TOKEN = re.compile(
    r"(?P<num>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)"
    r"|(?P<name>[A-Za-z_][A-Za-z0-9_]*)"
    r"|`(?P<quoted>[^`]+)`"
    r"|(?P<op>[-+*/^(),])"
)
_SPACE = re.compile(r"\s*")


def _floor(x: float) -> float:
    return float(math.floor(x))


def _ceil(x: float) -> float:
    return float(math.ceil(x))


def _exp(x: float) -> float:
    try:
        return math.exp(x)
    except OverflowError:
        raise ValueError(f"exp({x:.6g}) overflows") from None


def _sqrt(x: float) -> float:
    if x < 0:
        raise ValueError(f"sqrt of negative value {x:.6g}")
    return math.sqrt(x)


def _log(x: float) -> float:
    if x <= 0:
        raise ValueError(f"log of non-positive value {x:.6g}")
    return math.log(x)


def _pow(x: float, y: float) -> float:
    if x == 0 and y < 0:
        raise ValueError(f"zero to a negative power ({y:.6g})")
    if x < 0 and not float(y).is_integer():
        raise ValueError(f"negative base {x:.6g} to a non-integer power {y:.6g}")
    try:
        return math.pow(x, y)
    except OverflowError:
        raise ValueError(f"{x:.6g} ^ {y:.6g} overflows") from None


def _min(*xs: float) -> float:
    _no_nan("min", xs)
    return min(xs)


def _max(*xs: float) -> float:
    _no_nan("max", xs)
    return max(xs)


def _no_nan(fname: str, xs: tuple[float, ...]) -> None:
    """Python's ``min``/``max`` drop a NaN or return it depending on argument order, so an
    overflow upstream (``inf - inf``) could come out as a plausible 1.0: it is an error."""
    if any(x != x for x in xs):
        raise ValueError(f"{fname}() of NaN (an overflow upstream)")


def _div(x: float, y: float) -> float:
    if y == 0:
        raise ValueError("division by zero")
    return x / y


# name -> (function, min args, max args or None for variadic)
_FUNCTIONS: dict[str, tuple[Callable[..., float], int, int | None]] = {
    "min": (_min, 1, None),
    "max": (_max, 1, None),
    "abs": (abs, 1, 1),
    "floor": (_floor, 1, 1),
    "ceil": (_ceil, 1, 1),
    "exp": (_exp, 1, 1),
    "sqrt": (_sqrt, 1, 1),
    "log": (_log, 1, 1),
}
FORMULA_FUNCTIONS: tuple[str, ...] = tuple(_FUNCTIONS)
"""The functions a formula may call."""


_MAX_DEPTH = 100
"""Deepest closure nesting allowed: evaluation recurses once per level, and a formula nested
deeper than this is a generated one that should be a FunctionAggregator instead."""


class _Node:
    """One parsed sub-expression: its evaluator, its constant value if it has one, its text."""

    __slots__ = ("const", "depth", "fn", "src")

    def __init__(
        self, fn: _Eval, src: str, const: float | None = None, children: Sequence[_Node] = ()
    ) -> None:
        self.fn = fn
        self.src = src
        self.const = const
        self.depth: int = 1 + max((c.depth for c in children), default=0)


def _guard(fn: _Eval, src: str) -> _Eval:
    """Evaluate ``fn``; prefix any domain error with the sub-expression that raised it."""

    def guarded(v: Mapping[str, float]) -> float:
        try:
            return fn(v)
        except (ValueError, OverflowError) as exc:  # e.g. floor() of an overflowed infinity
            if str(exc).startswith("in `"):
                raise
            raise ValueError(f"in `{src}`: {exc}") from None

    return guarded


class _Parser:
    """Recursive descent over the token list; builds closures bottom-up, folding constants."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens: list[tuple[str, str, int]] = []  # (kind, value, position)
        self.names: dict[str, None] = {}  # component names, in order of first use
        pos = _SPACE.match(text, 0).end()  # type: ignore[union-attr]  # \s* matches anywhere
        while pos < len(text):
            m = _TOKEN.match(text, pos)
            if m is None:
                ch = text[pos]
                hint = " (strings are not allowed)" if ch in "'\"" else ""
                if ch == "`":
                    hint = " (unterminated or empty `quoted name`)"
                self.fail(pos, f"unexpected character {ch!r}{hint}")
            kind = m.lastgroup or "op"
            if kind == "op" and m.group() == "*" and text.startswith("**", pos):
                self.fail(pos, "'**' is not an operator; use '^' for a power")
            value = m.group("quoted") if kind == "quoted" else m.group()
            self.tokens.append(("name" if kind == "quoted" else kind, value, pos))
            pos = _SPACE.match(text, m.end()).end()  # type: ignore[union-attr]  # \s* matches anywhere
        self.tokens.append(("end", "", len(text)))
        self.i = 0

    def fail(self, pos: int, msg: str, what: str = "syntax error") -> NoReturn:
        shown = re.sub(r"\s", " ", self.text)  # one line, same length: the caret lines up
        raise ConfigError(f"formula {what} at position {pos}: {msg}\n  {shown}\n  {' ' * pos}^")

    def peek(self) -> tuple[str, str, int]:
        return self.tokens[self.i]

    def take(self) -> tuple[str, str, int]:
        tok = self.tokens[self.i]
        self.i += 1
        return tok

    def expect(self, op: str) -> None:
        kind, value, pos = self.take()
        if kind != "op" or value != op:
            self.fail(pos, f"expected {op!r}, got {_describe(kind, value)}")

    def src(self, start: int) -> str:
        """The formula text from ``start`` to the end of the last consumed token."""
        end = self.tokens[self.i - 1]
        last = end[2] + len(end[1]) + (2 if self.text[end[2]] == "`" else 0)
        return self.text[start:last].strip()

    def parse(self) -> _Node:
        node = self.expr()
        kind, value, pos = self.peek()
        if kind != "end":
            self.fail(pos, f"expected an operator or the end, got {_describe(kind, value)}")
        return node

    def expr(self) -> _Node:
        start = self.peek()[2]
        node = self.term()
        terms: list[tuple[_Node, bool]] = [(node, False)]  # (term, subtracted)
        while self.peek()[:2] in (("op", "+"), ("op", "-")):
            op = self.take()[1]
            right = self.term()
            terms.append((right, op == "-"))
            if len(terms) <= 3:  # short chains: nested binary closures, constants folded
                op_fn = float.__sub__ if op == "-" else float.__add__
                node = self.binary(node, right, op_fn, start)
        if len(terms) <= 3:
            return node
        # A long sum (a weighted sum over many components) is one flat node evaluated left to
        # right, the same order and result as the nested form, so its depth does not grow.
        src = self.src(start)
        fns = [(t.fn, neg) for t, neg in terms]

        def total(v: Mapping[str, float]) -> float:
            x = 0.0
            for f, neg in fns:
                x = x - f(v) if neg else x + f(v)
            return x

        return self.node(total, src, [t for t, _ in terms])

    def term(self) -> _Node:
        start = self.peek()[2]
        node = self.unary()
        while self.peek()[:2] in (("op", "*"), ("op", "/")):
            op = self.take()[1]
            right = self.unary()
            node = self.binary(node, right, float.__mul__ if op == "*" else _div, start)
        return node

    def unary(self) -> _Node:
        kind, value, pos = self.peek()
        if kind == "op" and value in "+-":
            self.take()
            operand = self.unary()
            if value == "+":
                return operand
            return self.apply(lambda x: -x, [operand], pos, guard=False)
        return self.power()

    def power(self) -> _Node:
        start = self.peek()[2]
        base = self.atom()
        if self.peek()[:2] == ("op", "^"):
            self.take()
            exponent = self.unary()  # right-associative, and allows 2 ^ -1
            return self.binary(base, exponent, _pow, start)
        return base

    def atom(self) -> _Node:
        kind, value, pos = self.take()
        if kind == "num":
            x = float(value)
            if not math.isfinite(x):  # 1e400 reads as infinity, and inf * 0 is NaN
                self.fail(pos, f"the number {value} is not finite", "error")
            return _Node(lambda v: x, value, const=x)
        if kind == "name":
            if self.peek()[:2] == ("op", "(") and self.text[pos] != "`":
                return self.call(value, pos)
            self.names.setdefault(value, None)
            name = value
            return _Node(lambda v: v[name], self.src(pos))
        if kind == "op" and value == "(":
            node = self.expr()
            self.expect(")")
            return node
        got = _describe(kind, value)
        self.fail(pos, f"expected a number, a name, a function or '(', got {got}")

    def call(self, fname: str, pos: int) -> _Node:
        if fname not in _FUNCTIONS:
            self.fail(pos, f"unknown function {fname!r}; available: {', '.join(_FUNCTIONS)}")
        self.expect("(")
        args = [self.expr()]
        while self.peek()[:2] == ("op", ","):
            self.take()
            args.append(self.expr())
        self.expect(")")
        fn, lo, hi = _FUNCTIONS[fname]
        if len(args) < lo or (hi is not None and len(args) > hi):
            want = f"{lo}" if hi == lo else f"at least {lo}"
            self.fail(pos, f"{fname}() takes {want} argument(s), got {len(args)}")
        return self.apply(fn, args, pos, guard=fname not in ("min", "max", "abs"))

    def binary(self, a: _Node, b: _Node, op: Callable[[float, float], float], start: int) -> _Node:
        src = self.src(start)
        if a.const is not None and b.const is not None:
            return self.fold(op, (a.const, b.const), src, start)
        fa, fb = a.fn, b.fn
        if op is float.__add__:
            fn: _Eval = lambda v: fa(v) + fb(v)  # noqa: E731
        elif op is float.__sub__:
            fn = lambda v: fa(v) - fb(v)  # noqa: E731
        elif op is float.__mul__:
            fn = lambda v: fa(v) * fb(v)  # noqa: E731
        else:
            fn = _guard(lambda v: op(fa(v), fb(v)), src)
        return self.node(fn, src, (a, b))

    def apply(self, f: Callable[..., float], args: list[_Node], pos: int, *, guard: bool) -> _Node:
        src = self.src(pos)
        consts = tuple(a.const for a in args if a.const is not None)
        if len(consts) == len(args):
            return self.fold(f, consts, src, pos)
        fns = [a.fn for a in args]
        if len(fns) == 1:
            f0 = fns[0]
            fn: _Eval = lambda v: f(f0(v))  # noqa: E731
        else:
            fn = lambda v: f(*[g(v) for g in fns])  # noqa: E731
        return self.node(_guard(fn, src) if guard else fn, src, args)

    def node(self, fn: _Eval, src: str, children: Sequence[_Node]) -> _Node:
        out = _Node(fn, src, children=children)
        if out.depth > _MAX_DEPTH:
            pos = self.text.find(src) if src in self.text else 0
            self.fail(pos, f"nested more than {_MAX_DEPTH} levels deep", "error")
        return out

    def fold(self, f: Callable[..., float], args: tuple[float, ...], src: str, pos: int) -> _Node:
        """Evaluate an all-constant sub-expression once, so ``1/0`` fails at construction."""
        try:
            x = float(f(*args))
        except (ValueError, ArithmeticError) as exc:
            self.fail(pos, f"`{src}`: {exc}", "error")
        if not math.isfinite(x):
            self.fail(pos, f"`{src}` is not finite", "error")
        return _Node(lambda v: x, src, const=x)


def _describe(kind: str, value: str) -> str:
    if kind == "end":
        return "the end of the formula"
    return {"num": "number ", "name": "name "}.get(kind, "") + repr(value)


@aggregator(name="formula")
class FormulaAggregator(BaseAggregator):
    """A reward computed from a formula over component names, parsed once, never ``eval``-ed.

    The components are exactly the names the formula reads, so ``on_error`` applies to them.
    ``on_error="skip"`` is rejected: a formula cannot drop a term and keep its meaning
    (``a / b`` without ``b`` is not a number). Use ``"unscored"`` (default) or a float substitute
    (``on_error=0.0``: a failed component reads as 0 in the formula, and is listed in
    ``metadata["substituted"]``).

    See the module docstring for the language and for what happens on each kind of failure.

    Args:
        name: the result name.
        formula: e.g. ``"0.5 * correct + 0.5 * min(format, length)"``.
        on_error: ``"unscored"`` (default) or a float in ``[0, 1]``.
        clamp: clip a finite result into ``[0, 1]`` instead of leaving the record unscored. Off by
            default: a formula that leaves the unit interval is usually a config mistake, and
            clamping would hide it behind plausible 0s and 1s.

    Raises:
        ConfigError: a syntax error (with position), an unknown function, a wrong argument count,
            a formula that reads no component, or ``on_error="skip"``.
    """

    def __init__(
        self,
        name: str,
        formula: str,
        *,
        on_error: OnError = "unscored",
        clamp: bool = False,
    ) -> None:
        owner = f"FormulaAggregator {name!r}"
        if not isinstance(formula, str) or not formula.strip():
            raise ConfigError(f"{owner}: formula must be a non-empty string, got {formula!r}")
        if on_error == "skip":
            raise ConfigError(
                f"{owner}: on_error='skip' cannot apply to a formula (dropping a term changes "
                "what it computes); use 'unscored' or a float substitute"
            )
        if not isinstance(clamp, bool):
            raise ConfigError(f"{owner}: clamp must be true or false, got {clamp!r}")
        try:
            parser = _Parser(formula)
            root = parser.parse()
        except ConfigError as exc:
            raise ConfigError(f"{owner}: {exc}") from None
        except RecursionError:  # thousands of nested parentheses
            raise ConfigError(f"{owner}: formula is nested too deeply") from None
        if not parser.names:
            raise ConfigError(f"{owner}: formula {formula!r} reads no component")
        self.formula = formula
        self.clamp = clamp
        self._fn = root.fn
        super().__init__(name, components=tuple(parser.names), on_error=on_error)

    def __repr__(self) -> str:
        return (
            f"FormulaAggregator(name={self.name!r}, formula={self.formula!r}, "
            f"on_error={self.on_error!r}, clamp={self.clamp!r})"
        )

    def bind(self, available: Sequence[str]) -> None:
        """Check every name the formula reads exists; the error lists the available ones, and
        says to quote a name such as ``format-check`` written bare (read as ``format - check``,
        it was reported as two unknown components, the real name listed as available)."""
        try:
            super().bind(available)
        except ConfigError as exc:
            unquoted = re.sub(r"`[^`]*`", " ", self.formula)
            bare = [n for n in available if not n.isidentifier() and n in unquoted]
            hint = f"; write {', '.join(f'`{n}`' for n in bare)} in backticks" if bare else ""
            raise ConfigError(f"formula {self.formula!r}: {exc}{hint}") from None

    def combine(self, values: Mapping[str, float]) -> tuple[float, str]:
        x = self._fn(values)
        if not math.isfinite(x):
            raise ValueError(f"formula {self.formula!r} gave {x}, not a finite number")
        if 0.0 <= x <= 1.0:
            return x, f"{self.formula} = {x:.4g}"
        if not self.clamp:
            raise ValueError(
                f"formula {self.formula!r} gave {x:.6g}, outside [0, 1]; rescale it, wrap it in "
                "min(1, max(0, ...)), or pass clamp=True"
            )
        c = 0.0 if x < 0.0 else 1.0
        return c, f"{self.formula} = {x:.4g}, clamped to {c:g}"
