"""Schemathesis against the service's own OpenAPI schema, in process (ASGI, no socket): zero 5xx.

    python bench/schemathesis_run.py                    # 100 examples per operation and mode
    python bench/schemathesis_run.py --max-examples 50 --seed 1
    python bench/schemathesis_run.py --strict           # also fail on schema-conformance findings

Two apps over the same small rule-grader reward (``format``, ``number`` reading the gold answer
from ``ground_truth``, ``length_penalty``, a ``weighted_sum``):

* ``auth-off``: no API key.
* ``auth-on``: ``RM_SERVICE_API_KEY`` set (settings from the environment, as ``rm-service serve``
  builds them); the schema is fetched and every case sent with ``Authorization: Bearer <key>``,
  then a shorter pass sends no header (everything but ``/healthz`` must be 401, never 5xx).

Every operation of ``/openapi.json`` is fuzzed with schema-valid data (``positive``) and with
data that breaks the schema (``negative``: wrong types, missing fields, bad bodies), plus a
``records`` pass on ``/grade`` and ``/get_reward`` whose records carry the fields the graders read
(``response``, ``ground_truth``, ...) with arbitrary JSON values, which the schema-driven
generator rarely hits. Hypothesis runs derandomized (``--seed`` picks the stream), no shrinking,
no example database, so a run is repeatable.

Checks: ``not_a_server_error`` decides the exit status (1 on any 5xx or transport exception).
``status_code_conformance``, ``content_type_conformance`` and ``response_schema_conformance``
run on the ``positive`` and ``records`` passes and are reported as findings; they fail the run
only with ``--strict`` (FastAPI's schema documents 200/422 only, so e.g. 413/429 would show up).
Each failure prints a curl reproduction (against http://testserver, the in-process host).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import sys
import time
import traceback
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

KEY = "schemathesis-bench-key"

REWARD: dict[str, Any] = yaml.safe_load(
    (Path(__file__).resolve().parents[1] / "examples" / "rules.yaml").read_text()
)
"""The reward under test: offline rule graders only, deterministic."""

RECORD_FIELDS = ("response", "ground_truth", "prompt", "label", "query")


@dataclass
class OpStats:
    """What one (app, operation, mode) pass came to; failures deduplicated, first example kept."""

    cases: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    server_errors: Counter[str] = field(default_factory=Counter)
    findings: Counter[str] = field(default_factory=Counter)
    examples: dict[str, str] = field(default_factory=dict)

    def add(self, kind: str, signature: str, example: str) -> None:
        counter = self.server_errors if kind == "5xx" else self.findings
        counter[signature] += 1
        self.examples.setdefault(signature, example)


def json_values_strategy() -> Any:
    """Arbitrary JSON, weighted toward what the graders parse (answers, numbers, odd strings)."""
    from hypothesis import strategies as st

    scalars = (
        st.none()
        | st.booleans()
        | st.integers()
        | st.floats(allow_nan=False, allow_infinity=False)
        | st.text(max_size=60)
        | st.sampled_from(
            [
                "<think>x</think> <answer>42</answer>",
                "<think></think><answer></answer>",
                "The answer is \\boxed{3/4}",
                "#### 1,000",
                "1e400",
                "-0",
                "nan",
                "x" * 900,
                "\x00",
            ]
        )
    )
    return st.recursive(
        scalars,
        lambda inner: (
            st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
        ),
        max_leaves=6,
    )


def records_strategy() -> Any:
    """Records with the fields the graders read, holding arbitrary JSON (or odd strings)."""
    from hypothesis import strategies as st

    json_values = json_values_strategy()
    # ``id`` is echoed back typed ``str | int | None``: mostly those, sometimes anything.
    ids = st.none() | st.integers() | st.text(max_size=10) | json_values
    record = st.fixed_dictionaries(
        {}, optional={"id": ids, **{name: json_values for name in RECORD_FIELDS}}
    )
    return st.lists(record, max_size=4)


def _clip(text: str, limit: int = 1500) -> str:
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} chars)"


def _reproduction(case: Any, headers: dict[str, str] | None) -> str:
    try:
        return _clip(case.as_curl_command(headers=headers))
    except Exception as exc:  # the curl generator can choke on what the fuzzer sends
        return _clip(f"<no curl: {exc!r}>; body={case.body!r}")


def _repo_frames(exc: BaseException) -> list[traceback.FrameSummary]:
    return [
        f
        for f in traceback.extract_tb(exc.__traceback__)
        if f.filename.startswith(str(ROOT))
        and "/.venv/" not in f.filename
        and not f.filename.endswith("schemathesis_run.py")
    ]


def _where(exc: BaseException) -> str:
    """The deepest frame in this repo: where the app let the exception out."""
    frames = _repo_frames(exc) or traceback.extract_tb(exc.__traceback__)[-1:]
    f = frames[-1]
    return f"{f.filename.removeprefix(str(ROOT) + '/')}:{f.lineno}"


def _app_frames(exc: BaseException) -> str:
    """The traceback's frames in this repo (not the venv), then the exception, notes left out."""
    frames = [
        f"  {f.filename.removeprefix(str(ROOT) + '/')}:{f.lineno} in {f.name}: {f.line}"
        for f in _repo_frames(exc)
    ]
    return "\n".join([*frames, f"{type(exc).__module__}.{type(exc).__name__}: {exc}"])


def fuzz_operation(
    operation: Any,
    *,
    mode: str,
    max_examples: int,
    seed: int,
    headers: dict[str, str] | None,
    conformance: bool,
) -> OpStats:
    """Run ``max_examples`` cases of ``operation``; every response is checked, nothing raises."""
    import hypothesis
    from hypothesis import HealthCheck, Phase, given
    from hypothesis import strategies as st
    from schemathesis import GenerationMode
    from schemathesis.checks import not_a_server_error
    from schemathesis.core.failures import FailureGroup
    from schemathesis.specs.openapi.checks import (
        content_type_conformance,
        response_schema_conformance,
        status_code_conformance,
    )

    stats = OpStats()
    checks = [not_a_server_error]
    if conformance:
        checks += [status_code_conformance, content_type_conformance, response_schema_conformance]

    if mode == "records":
        field_name = "records" if operation.path == "/grade" else None
        if field_name is None:  # /get_reward: labels (-> ground_truth) as long as query
            pairs = st.lists(st.tuples(st.text(max_size=80), json_values_strategy()), max_size=4)
            body = pairs.map(lambda ps: {"query": [q for q, _ in ps], "labels": [g for _, g in ps]})
        else:
            body = st.fixed_dictionaries(
                {"records": records_strategy()},
                optional={"deadline": st.floats(min_value=0.001, max_value=5)},
            )
        strategy = body.map(lambda b: operation.Case(body=b, media_type="application/json"))
    else:
        gm = GenerationMode.POSITIVE if mode == "positive" else GenerationMode.NEGATIVE
        strategy = operation.as_strategy(generation_mode=gm)

    @hypothesis.settings(
        max_examples=max_examples,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
        verbosity=hypothesis.Verbosity.quiet,
    )
    @hypothesis.seed(seed)
    @given(case=strategy)
    def run(case: Any) -> None:
        stats.cases += 1
        try:
            response = case.call(headers=headers)
        except Exception as exc:  # the app raised: uvicorn would answer 500
            stats.statuses[500] += 1
            signature = f"app raised {type(exc).__name__} at {_where(exc)}"
            stats.add(
                "5xx",
                signature,
                f"{_app_frames(exc)}\n  reproduce: {_reproduction(case, headers)}",
            )
            return
        stats.statuses[response.status_code] += 1
        try:
            case.validate_response(response, checks=checks, headers=headers)
        except FailureGroup as group:
            for failure in group.exceptions:
                kind = "5xx" if response.status_code >= 500 else "finding"
                summary = failure.message.splitlines()[0] if failure.message else ""
                signature = f"{type(failure).__name__}: {failure.title}"
                if kind == "finding" and "detail" in summary:
                    signature += f" ({summary[:80]})"
                stats.add(
                    kind,
                    signature,
                    f"{_clip(failure.message, 600)}\n  -> {response.status_code} "
                    f"{_clip(response.text, 300)!r}\n  reproduce: {_reproduction(case, headers)}",
                )
        else:
            if response.status_code >= 500:  # belt and braces: the check passed a 5xx
                stats.add("5xx", f"HTTP {response.status_code}", _reproduction(case, headers))

    # A parameterless GET has no negative data: that pass runs 0 cases.
    with contextlib.suppress(hypothesis.errors.Unsatisfiable):
        run()
    return stats


def build_app(auth: bool) -> Any:
    from rm_service._http_schemas import ServiceSettings
    from rm_service.app import create_app

    # /get_reward's labels go to ground_truth, where the number grader reads the gold answer.
    if auth:
        os.environ["RM_SERVICE_API_KEY"] = KEY  # settings from the environment, as `serve` does
        return create_app({"main": REWARD}, ServiceSettings.from_env(label_field="ground_truth"))
    return create_app({"main": REWARD}, ServiceSettings(api_key=None, label_field="ground_truth"))


def fuzz_app(
    label: str,
    app: Any,
    headers: dict[str, str] | None,
    *,
    max_examples: int,
    seed: int,
    modes: tuple[str, ...],
    fetch_headers: dict[str, str] | None = None,
) -> list[tuple[str, str, str, OpStats]]:
    import schemathesis

    fetch_headers = fetch_headers if fetch_headers is not None else (headers or {})
    # The no-header pass fetches the schema with the key: it tests the calls, not the fetch.
    schema = schemathesis.openapi.from_asgi("/openapi.json", app, headers=dict(fetch_headers))
    rows = []
    for result in schema.get_all_operations():
        operation = result.ok()
        for mode in modes:
            if mode == "records" and operation.path not in ("/grade", "/get_reward"):
                continue
            start = time.perf_counter()
            stats = fuzz_operation(
                operation,
                mode=mode,
                max_examples=max_examples,
                seed=seed,
                headers=headers,
                conformance=mode != "negative" and label != "auth-on/no-header",
            )
            if not stats.cases:
                continue
            rows.append((label, operation.label, mode, stats))
            codes = " ".join(f"{c}x{n}" for c, n in sorted(stats.statuses.items()))
            n_findings = sum(stats.findings.values())
            print(
                f"{label:18} {operation.label:18} {mode:9} cases={stats.cases:<4} "
                f"5xx={sum(stats.server_errors.values()):<3} findings={n_findings:<3} "
                f"codes=[{codes}] {time.perf_counter() - start:.1f}s",
                flush=True,
            )
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--max-examples", type=int, default=100, help="per operation and mode")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--strict", action="store_true", help="conformance findings fail the run too")
    args = p.parse_args(argv)

    import hypothesis
    import schemathesis

    print(f"$ {' '.join([Path(sys.executable).name, *sys.argv])}")
    print(
        f"schemathesis {schemathesis.__version__}, hypothesis {hypothesis.__version__}, "
        f"python {platform.python_version()}, {os.cpu_count()} cpus; "
        f"max_examples={args.max_examples} seed={args.seed}"
    )
    saved_key = os.environ.pop("RM_SERVICE_API_KEY", None)
    start = time.perf_counter()
    rows = []
    try:
        modes = ("positive", "negative", "records")
        common = {"max_examples": args.max_examples, "seed": args.seed}
        rows += fuzz_app("auth-off", build_app(auth=False), None, modes=modes, **common)
        auth_app = build_app(auth=True)
        bearer = {"Authorization": f"Bearer {KEY}"}
        rows += fuzz_app("auth-on", auth_app, bearer, modes=modes, **common)
        rows += fuzz_app(
            "auth-on/no-header",
            auth_app,
            None,
            fetch_headers=bearer,
            modes=("positive",),
            max_examples=max(10, args.max_examples // 5),
            seed=args.seed,
        )
    finally:
        os.environ.pop("RM_SERVICE_API_KEY", None)
        if saved_key is not None:
            os.environ["RM_SERVICE_API_KEY"] = saved_key

    cases = sum(s.cases for *_, s in rows)
    n_5xx = sum(sum(s.server_errors.values()) for *_, s in rows)
    n_findings = sum(sum(s.findings.values()) for *_, s in rows)
    for kind in ("finding", "5xx"):
        seen: dict[str, list[str]] = {}
        for lbl, op, mode, s in rows:
            counter = s.findings if kind == "finding" else s.server_errors
            for signature, n in counter.items():
                key = f"{op}: {signature}"
                if key not in seen:
                    seen[key] = [s.examples[signature]]
                seen[key].append(f"{lbl}/{mode} x{n}")
        for key, (example, *where) in seen.items():
            print(f"\n[{kind}] {key}  [{', '.join(where)}]\n{example}")
    print(
        f"\n{len(rows)} passes, {cases} cases in {time.perf_counter() - start:.1f}s; "
        f"conformance findings: {n_findings}"
    )
    print(f"5xx: {n_5xx}")
    if n_5xx:
        return 1
    return 1 if args.strict and n_findings else 0


if __name__ == "__main__":
    sys.exit(main())
