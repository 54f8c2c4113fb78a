"""Schemathesis against the app's own ``/openapi.json``, in process: no operation answers 5xx.

The fast version of ``bench/schemathesis_run.py`` (which also runs with auth on and checks
schema conformance): auth off, a few dozen derandomized examples per operation, schema-valid
(``positive``) and schema-breaking (``negative``) data, plus records carrying the fields the
graders read with arbitrary JSON values, which the schema-driven generator rarely produces.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

schemathesis = pytest.importorskip(
    "schemathesis", reason="schemathesis is not installed (pip install -e '.[test]')"
)

import hypothesis  # noqa: E402  (installed with schemathesis)
from hypothesis import HealthCheck, Phase, given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from rm_service._http_schemas import ServiceSettings  # noqa: E402
from rm_service.app import create_app  # noqa: E402

MAX_EXAMPLES = 25

REWARD: dict[str, Any] = yaml.safe_load(
    (Path(__file__).resolve().parents[2] / "examples" / "rules.yaml").read_text()
)

FUZZ_SETTINGS = hypothesis.settings(
    max_examples=MAX_EXAMPLES,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    phases=[Phase.explicit, Phase.generate, Phase.shrink],
)

_APP = create_app({"main": REWARD}, ServiceSettings(api_key=None, label_field="ground_truth"))
_SCHEMA = schemathesis.openapi.from_asgi("/openapi.json", _APP)
_OPERATIONS = {result.ok().label: result.ok() for result in _SCHEMA.get_all_operations()}


def _json_values() -> Any:
    scalars = (
        st.none()
        | st.booleans()
        | st.integers()
        | st.floats(allow_nan=False, allow_infinity=False)
        | st.text(max_size=40)
        | st.sampled_from(["<think>x</think> <answer>42</answer>", "#### 1,000", "1e400", "nan"])
    )
    return st.recursive(
        scalars,
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
        max_leaves=5,
    )


def _records_body(path: str) -> Any:
    values = _json_values()
    if path == "/get_reward":
        pairs = st.lists(st.tuples(st.text(max_size=60), values), max_size=3)
        return pairs.map(lambda ps: {"query": [q for q, _ in ps], "labels": [g for _, g in ps]})
    ids = st.none() | st.integers() | st.text(max_size=8) | values
    fields = ("response", "ground_truth", "prompt", "label")
    record = st.fixed_dictionaries({}, optional={"id": ids, **dict.fromkeys(fields, values)})
    return st.fixed_dictionaries({"records": st.lists(record, max_size=3)})


def _assert_no_5xx(case: Any) -> None:
    __tracebackhide__ = True
    try:
        response = case.call()
    except Exception as exc:  # the app raised: uvicorn would answer 500
        raise AssertionError(
            f"{case.operation.label} raised {type(exc).__name__}: {exc}\n"
            f"reproduce: {case.as_curl_command()}"
        ) from exc
    case.validate_response(response, checks=[schemathesis.checks.not_a_server_error])


def _cases() -> list[Any]:
    out = []
    for label, op in _OPERATIONS.items():
        out.append(pytest.param(label, "positive", id=f"{label}-positive"))
        if op.method.upper() == "POST":  # a parameterless GET has no negative data
            out.append(pytest.param(label, "negative", id=f"{label}-negative"))
            out.append(pytest.param(label, "records", id=f"{label}-records"))
    return out


def test_every_operation_is_fuzzed() -> None:
    assert {"POST /grade", "POST /get_reward", "GET /healthz"} <= set(_OPERATIONS)


@pytest.mark.parametrize(("label", "mode"), _cases())
def test_no_server_errors(label: str, mode: str) -> None:
    op = _OPERATIONS[label]
    if mode == "records":
        strategy = _records_body(op.path).map(
            lambda body: op.Case(body=body, media_type="application/json")
        )
    else:
        generation = schemathesis.GenerationMode.POSITIVE
        if mode == "negative":
            generation = schemathesis.GenerationMode.NEGATIVE
        strategy = op.as_strategy(generation_mode=generation)

    @FUZZ_SETTINGS
    @hypothesis.seed(0)
    @given(case=strategy)
    def fuzz(case: Any) -> None:
        _assert_no_5xx(case)

    fuzz()


@pytest.mark.parametrize("record_id", [[1], {"a": 1}, 1.5], ids=["list", "object", "float"])
def test_an_odd_record_id_is_not_a_500(record_id: Any) -> None:
    """Found by the fuzzer: ``RecordOut.id`` is ``str | int | None``; any other JSON id crashed."""
    op = _OPERATIONS["POST /grade"]
    body = {"records": [{"id": record_id, "response": "<answer>1</answer>", "ground_truth": "1"}]}
    _assert_no_5xx(op.Case(body=body, media_type="application/json"))
