"""Shared fixtures: the scripted OpenAI-compatible judge server on 127.0.0.1."""

from tests.judge_server import judge_server  # noqa: F401  (a fixture, used by name)
