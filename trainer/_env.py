"""The ``environment:`` block of ``train.yaml``: what the agent acts in, checked before any model
loads.

::

    environment:
      factory: agent_env.py:Calculator        # a class (or callable): TRL's environment_factory
      # factory: {calc: agent_env.py:Calculator, lookup: agent_env.py:Lookup}
      #                                       # named: the dataset's `environment` column picks
      tools: [agent_env.py:today]               # standalone tool functions
      max_turns: 4                              # assistant turns per rollout, at most
      tool_timeout: 60                          # seconds a tool call may take (null: no limit)

TRL 1.16's ``GRPOTrainer`` runs the rollout itself: it instantiates the environment once per
rollout slot, calls ``reset(**row)`` before each rollout, exposes the public methods (all but
``reset``, ``get_reward`` and ``_private`` ones) as tools, and executes the tool calls it parses
from each assistant turn. What can go wrong with that is found here instead of mid-training:

* **Import paths** are ``package.module:Attr`` or ``file.py:Attr``; a file is relative to the
  YAML, so an example environment travels with its config.
* **The contract.** Each factory is called once (TRL does the same at start-up) and the instance
  must have ``reset``. Every tool, method or function, must give transformers a JSON schema (type
  hints and a docstring with an ``Args:`` entry per parameter): TRL builds the schema only when
  the trainer starts, and a tool it cannot describe would otherwise fail there, after the model
  loaded. Two tools with the same name are an error: TRL would silently call one of them.
* **``max_turns``** is the number of assistant turns a rollout may have. TRL counts tool rounds
  (``max_tool_calling_iterations``): ``max_turns: N`` is ``N - 1`` rounds. Setting both is an
  error, as they would disagree. A rollout whose last turn still calls tools when it is
  reached is cut short, and not graded as a finished one (``reward.on_cut``, see
  :mod:`trainer._agent`).
* **``tool_timeout``** bounds each tool call (60 s by default). TRL calls tools with no limit,
  so one tool that hung (a network call, a deadlock) hung the rollout and the run with it. A call
  past the limit raises ``TimeoutError``, which TRL gives the model as the call's
  ``{'error': ...}`` result and counts in ``tools/failure_frequency``, as any tool error. A sync
  tool runs in a worker thread for this (Python cannot stop a thread: one that timed out runs on
  in the background until it returns, and the instance is ``reset()`` before its next rollout);
  ``tool_timeout: null`` runs tools in the trainer's thread with no limit, for a tool that must
  run in the thread that called ``reset()``.
* **The environment's reward.** TRL would add ``get_reward()`` as a reward function of its own,
  outside our masking: it would score a rollout cut short. So TRL gets a subclass whose
  ``get_reward`` is hidden (``None``); the original (:meth:`LoadedEnvironment.env_reward_method`)
  is one component of the rollout reward (``reward.step`` / ``reward.rollout``), or, with a plain
  reward, a reward function of its own as TRL would add (see :mod:`trainer._agent`).

Every error names the config file and the field (``environment.factory.calc``,
``environment.tools[1]``).
"""

from __future__ import annotations

import asyncio
import functools
import importlib.util
import inspect
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator
from transformers.utils import get_json_schema

from rm_service._exceptions import ConfigError
from rm_service._importer import import_from_string

__all__ = ["EnvironmentSpec", "LoadedEnvironment", "load_environment"]

_SKIPPED = ("reset", "get_reward")
"""Public methods TRL does not expose as tools."""
_REWARD_ATTR = "_rm_service_get_reward"
"""Where the hidden subclass keeps the environment's own ``get_reward``."""


class EnvironmentSpec(BaseModel):
    """``environment:``: an environment factory (or a dict of named ones), tools, a turn limit."""

    model_config = ConfigDict(extra="forbid")

    factory: str | dict[str, str] | None = Field(
        default=None, description="'module:Attr' or 'file.py:Attr', or {name: import path}"
    )
    tools: list[str] = Field(default_factory=list, description="standalone tool functions")
    max_turns: int | None = Field(default=None, ge=1, description="assistant turns per rollout")
    tool_timeout: float | None = Field(
        default=60.0, gt=0, strict=True, description="seconds a tool call may take; null: no limit"
    )

    @model_validator(mode="after")
    def _something(self) -> EnvironmentSpec:
        if self.factory is None and not self.tools:
            raise ValueError("set factory (an environment), tools, or both")
        if isinstance(self.factory, dict) and not self.factory:
            raise ValueError("factory: an empty mapping names no environment")
        return self


@dataclass
class LoadedEnvironment:
    """The checked environment block, ready for ``GRPOTrainer``.

    Attributes:
        factories: environment name to factory (``None`` is the one unnamed environment); empty
            without ``factory``.
        named: whether the dataset's ``environment`` column picks the environment.
        tools: the standalone tool functions.
        tool_schemas: per environment name, the JSON schemas of every tool a rollout in it may
            call (standalone tools first), as transformers renders them into the prompt.
        rewarded: names of the environments whose class defines ``get_reward``.
        max_turns: assistant turns per rollout, or ``None`` for TRL's default (no limit).
        tool_timeout: seconds a tool call may take, or ``None`` for no limit.
        reward_classes: per environment name in ``rewarded``, its class's name (what TRL names
            the environment's reward function).
    """

    factories: dict[str | None, Callable[[], Any]]
    named: bool
    tools: list[Callable[..., Any]]
    tool_schemas: dict[str | None, list[dict[str, Any]]]
    rewarded: set[str | None] = field(default_factory=set)
    max_turns: int | None = None
    tool_timeout: float | None = 60.0
    reward_classes: dict[str | None, str] = field(default_factory=dict)

    def trl_factory(self, *, hide_reward: bool = True) -> Any:
        """What ``GRPOTrainer(environment_factory=...)`` gets: one factory or the dict, or
        ``None``. Instances come from a subclass whose tools are bounded by ``tool_timeout``
        and, with ``hide_reward``, whose ``get_reward`` TRL cannot see (see the module
        docstring)."""
        if not self.factories:
            return None
        wrapped = {
            name: _for_trl(f, self.tool_timeout, hide_reward=hide_reward)
            for name, f in self.factories.items()
        }
        return wrapped if self.named else wrapped[None]

    def trl_tools(self) -> list[Callable[..., Any]]:
        """The standalone tools for ``GRPOTrainer(tools=...)``, bounded by ``tool_timeout``."""
        timeout = self.tool_timeout
        return [t if timeout is None else _bounded(t, timeout) for t in self.tools]

    @staticmethod
    def env_reward_method(env: Any) -> Callable[[], Any] | None:
        """The environment's own ``get_reward`` bound to ``env``, hidden from TRL or not;
        ``None`` when it has none."""
        original = getattr(type(env), _REWARD_ATTR, None)
        if original is not None:
            return (lambda: original(env)) if callable(original) else None
        method = getattr(env, "get_reward", None)
        return method if callable(method) else None


def load_environment(
    spec: EnvironmentSpec, base: Path, error: Callable[[str, str], ConfigError]
) -> LoadedEnvironment:
    """Import and check everything ``spec`` names (``base``: the YAML's folder).

    Raises:
        ConfigError: via ``error(field, message)``: an import that fails, a factory that raises
            or returns something without ``reset``, a tool that is not callable or has no JSON
            schema, two tools with one name.
    """
    tools: list[Callable[..., Any]] = []
    schemas: list[dict[str, Any]] = []
    for i, path in enumerate(spec.tools):
        where = f"environment.tools[{i}]"
        tool = _resolve(path, base, where, error, "tool")
        if not callable(tool) or inspect.isclass(tool):
            raise error(where, f"{path} is not a function")
        tools.append(tool)
        schemas.append(_schema(tool, where, error))
    _unique([s["function"]["name"] for s in schemas], "environment.tools", error)

    factories: dict[str | None, Callable[[], Any]] = {}
    tool_schemas: dict[str | None, list[dict[str, Any]]] = {None: schemas}
    rewarded: set[str | None] = set()
    reward_classes: dict[str | None, str] = {}
    named = isinstance(spec.factory, dict)
    if spec.factory is not None:
        entries = spec.factory.items() if isinstance(spec.factory, dict) else [(None, spec.factory)]
        tool_schemas = {}
        for name, path in entries:
            where = "environment.factory" + (f".{name}" if name is not None else "")
            factory = _resolve(path, base, where, error, "environment factory")
            if not callable(factory):
                raise error(where, f"{path} is not callable")
            instance = _probe(factory, path, where, error)
            cls = type(instance)
            methods = _tool_methods(cls)
            env_schemas = [
                _schema(getattr(instance, m), f"{where} ({cls.__name__}.{m})", error)
                for m in methods
            ]
            all_schemas = schemas + env_schemas
            _unique([s["function"]["name"] for s in all_schemas], where, error)
            factories[name] = factory
            tool_schemas[name] = all_schemas
            if callable(getattr(cls, "get_reward", None)):
                rewarded.add(name)
                reward_classes[name] = cls.__name__
    return LoadedEnvironment(
        factories,
        named,
        tools,
        tool_schemas,
        rewarded,
        spec.max_turns,
        spec.tool_timeout,
        reward_classes,
    )


def _resolve(
    path: str, base: Path, where: str, error: Callable[[str, str], ConfigError], what: str
) -> Any:
    """``module:Attr`` through the project's importer, or ``file.py:Attr`` relative to ``base``."""
    module, sep, attr = path.partition(":")
    if not sep or not module or not attr:
        raise error(
            where, f"{path!r} is not an import path ('package.module:Attr' or 'file.py:Attr')"
        )
    if not module.endswith(".py"):
        try:
            return import_from_string(path, what)
        except ConfigError as exc:
            raise error(where, str(exc)) from None
    file = (base / Path(module).expanduser()).resolve()
    if not file.is_file():
        raise error(where, f"{module} does not exist (looked for {file})")
    obj: Any = _load_file(file, where, error)
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise error(where, f"{file.name} has no {attr!r}")
        obj = getattr(obj, part)
    return obj


def _load_file(file: Path, where: str, error: Callable[[str, str], ConfigError]) -> Any:
    """Import a Python file once per path, under a name derived from it (so classes defined in
    it are the same objects however many fields name the file)."""
    name = f"_rm_service_env_{abs(hash(str(file))):x}_{file.stem}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, file)
    if spec is None or spec.loader is None:
        raise error(where, f"cannot import {file}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[name]
        raise error(where, f"importing {file} failed: {type(exc).__name__}: {exc}") from None
    return module


def _probe(
    factory: Callable[[], Any], path: str, where: str, error: Callable[[str, str], ConfigError]
) -> Any:
    """One instance, as TRL makes at start-up, to read its tools; it must have ``reset``."""
    try:
        instance = factory()
    except Exception as exc:
        raise error(where, f"{path}() raised {type(exc).__name__}: {exc}") from None
    if not callable(getattr(type(instance), "reset", None)):
        raise error(
            where, f"{type(instance).__name__} has no reset() method (TRL's environment contract)"
        )
    return instance


def _tool_methods(cls: type) -> list[str]:
    """The methods TRL exposes as tools: public functions of the class but reset/get_reward."""
    return [
        name
        for name, _ in inspect.getmembers(cls, predicate=inspect.isfunction)
        if name not in _SKIPPED and not name.startswith("_")
    ]


def _schema(
    tool: Callable[..., Any], where: str, error: Callable[[str, str], ConfigError]
) -> dict[str, Any]:
    try:
        return get_json_schema(tool)
    except Exception as exc:  # transformers' DocstringParsingException / TypeHintParsingException
        raise error(
            where,
            f"tool {getattr(tool, '__name__', tool)!r} has no JSON schema: {exc} (a tool needs "
            "type hints and a docstring with an Args: line per parameter)",
        ) from None


def _unique(names: list[str], where: str, error: Callable[[str, str], ConfigError]) -> None:
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise error(where, f"two tools are named {name!r}; TRL would call only one of them")
        seen.add(name)


def _hidden_reward(factory: Callable[[], Any]) -> Callable[[], Any]:
    """``factory`` whose instances hide ``get_reward`` from TRL and keep it for us."""
    return _for_trl(factory, None, hide_reward=True)


def _for_trl(
    factory: Callable[[], Any], timeout: float | None, *, hide_reward: bool
) -> Callable[[], Any]:
    """``factory`` whose instances hide ``get_reward`` from TRL (keeping it for us) with
    ``hide_reward``, and bound each tool method by ``timeout`` (``None``: no bound)."""
    if not hide_reward and timeout is None:
        return factory
    made: dict[type, type] = {}

    def adapt(cls: type) -> type:
        if cls not in made:
            attrs: dict[str, Any] = {"__module__": cls.__module__}
            if hide_reward and callable(getattr(cls, "get_reward", None)):
                attrs.update(get_reward=None, **{_REWARD_ATTR: getattr(cls, "get_reward")})  # noqa: B009
            if timeout is not None:
                for name in _tool_methods(cls):
                    method = inspect.getattr_static(cls, name)
                    if isinstance(method, staticmethod):
                        attrs[name] = staticmethod(_bounded(method.__func__, timeout))
                    else:
                        attrs[name] = _bounded(getattr(cls, name), timeout)
            made[cls] = type(cls.__name__, (cls,), attrs)
        return made[cls]

    if inspect.isclass(factory):
        return adapt(factory)

    def build() -> Any:
        instance = factory()
        instance.__class__ = adapt(type(instance))
        return instance

    return build


def _bounded(tool: Callable[..., Any], seconds: float) -> Callable[..., Any]:
    """``tool`` that raises ``TimeoutError`` after ``seconds``, keeping its name, signature and
    docstring (TRL builds the tool's JSON schema from them). TRL turns the error into the call's
    ``{'error': ...}`` result. A coroutine is cancelled; a sync tool runs in a daemon thread,
    since Python can interrupt no call in its own thread, and is left to finish on its own."""
    name = getattr(tool, "__name__", "tool")
    message = (
        f"tool {name!r} did not return within {seconds:g} s (environment.tool_timeout); "
        "the call was abandoned"
    )
    if inspect.iscoroutinefunction(tool):

        @functools.wraps(tool)
        async def bounded_async(*args: Any, **kwargs: Any) -> Any:
            try:
                return await asyncio.wait_for(tool(*args, **kwargs), seconds)
            except TimeoutError:
                raise TimeoutError(message) from None

        return bounded_async

    @functools.wraps(tool)
    def bounded(*args: Any, **kwargs: Any) -> Any:
        box: dict[str, Any] = {}

        def run() -> None:
            try:
                box["value"] = tool(*args, **kwargs)
            except BaseException as exc:  # re-raised in the caller's thread, as TRL expects
                box["error"] = exc

        worker = threading.Thread(target=run, name=f"rm-service-tool-{name}", daemon=True)
        worker.start()
        worker.join(seconds)
        if worker.is_alive():
            raise TimeoutError(message)
        if "error" in box:
            raise box["error"]
        return box.get("value")

    return bounded
