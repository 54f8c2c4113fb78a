"""Our verl functions driven through verl's own code, as far as it runs without GPUs.

Each test skips, saying what is missing, when its part of verl is not installed:

* **verl's files** (``pip install --no-deps verl==X``) and hydra-core: the README's verl
  commands composed by Hydra with verl's real ``ppo_trainer.yaml``, the function they name
  loaded by verl's own loader (``verl/utils/import_utils.py``, which imports only the standard
  library, run from its file), and verl's source scanned for the keys it writes itself.
* **verl importable** (it also needs ray and tensordict): the README's config through verl's
  ``RewardLoopWorker`` and its managers; the legacy managers (naive, dapo, batch, prime).
* **verl's trainer importable** (also peft, torchdata, cachetools, codetiming): the real
  ``RayPPOTrainer._validate`` on what the reward loop returned.

Two steps are reproduced rather than run, because they need a rollout engine: the agent loop
turning each sample's ``reward_extra_info`` into batch columns (``_postprocess`` in
``verl/experimental/agent_loop/agent_loop.py``, 0.7.0-0.9.1, see :func:`rollout_output`), and the
responses themselves (fixed strings, encoded with a byte tokenizer).
"""

from __future__ import annotations

import ast
import asyncio
import importlib.metadata
import importlib.util
import json
import re
import shlex
import types
import warnings
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

import rm_service.integrations.verl as shim
from tests.integrations.conftest import SHIM_CONFIG

pytestmark = pytest.mark.usefixtures("shim_env")

README = Path(__file__).resolve().parents[2] / "README.md"

RESPONSES = ["7", "no 8", "8", "FAIL"]
GOLDS = ["7", "7", None, "7"]
"""As test_verl.CASES: scored, scored, unscored (no gold), unscored (a judge error)."""
SCORES = [0.975, 0.4, 0.0, 0.0]
UNSCORED = {"short": [0.0, 0.0, 0.0, 1.0], "num": [0.0, 0.0, 1.0, 0.0], "reward": [0, 0, 1.0, 1.0]}
"""Each component's ``rm/<name>/unscored`` for those samples."""
KEYS = [
    "score",
    *(f"rm/{name}{flag}" for name in ("short", "num", "reward") for flag in ("", "/unscored")),
    "rm_error",
]
"""What every sample of ``SHIM_CONFIG`` returns, in order."""


# --- where verl is, and which version --------------------------------------------------------


def verl_root() -> Path:
    """The installed verl package's folder, found without importing it (its ``__init__``
    needs ray)."""
    spec = importlib.util.find_spec("verl")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("verl is not installed (pip install --no-deps verl==0.9.1)")
    return Path(next(iter(spec.submodule_search_locations)))


def verl_version() -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", importlib.metadata.version("verl"))[:3])


def new_layout() -> bool:
    """verl >= 0.7.1 keeps the reward settings under ``reward.``; 0.7.0 at the top level."""
    return verl_version() >= (0, 7, 1)


# --- the README's commands -------------------------------------------------------------------

_SUBSTITUTION = re.compile(r"\$\(python -c '[^']*rm_service\.integrations\.verl[^']*'\)")
_OVERRIDE = re.compile(r"^[+~]{0,2}[A-Za-z_]\w*(?:\.\w+)+=\S+$")
_VERSIONS = re.compile(r"^#\s*verl\s*(>=|<=|==)?\s*(\d+(?:\.\d+)*)", re.IGNORECASE)


def _applies(label: str, version: tuple[int, ...]) -> bool:
    m = _VERSIONS.match(label)
    if m is None:
        return True  # no version named: meant for every version
    op, want = m.group(1) or "==", tuple(int(p) for p in m.group(2).split("."))
    have = version[: len(want)] if op == "==" else version
    return {">=": have >= want, "<=": have <= want, "==": have == want}[op]


def readme_verl_commands(version: tuple[int, ...]) -> list[tuple[list[str], list[str]]]:
    """``(overrides, alternatives)`` of each ``verl.trainer.main_ppo`` command in the README's
    verl section meant for ``version`` (a block's first line may say ``# verl >= 0.7.1``).

    ``overrides`` are the command's own; ``alternatives`` are override-shaped words of the
    block's comments (``# ... instead: +reward...url=http://host:8000``). The README's
    ``$(python -c '... rm_service.integrations.verl ... m.__file__')`` becomes that file's path.
    """
    text = README.read_text(encoding="utf-8")
    section = text.split("\n### verl\n", 1)[1].split("\n### ", 1)[0]
    found = []
    for block in re.findall(r"```(?:bash|sh)\n(.*?)```", section, re.DOTALL):
        if "verl.trainer.main_ppo" not in block or not _applies(block.lstrip(), version):
            continue
        command, alternatives, in_command = [], [], False
        for line in block.splitlines():
            stripped = line.strip()
            if stripped.startswith("#"):
                alternatives += [w for w in stripped.lstrip("#").split() if _OVERRIDE.match(w)]
                in_command = False
            elif "verl.trainer.main_ppo" in stripped or in_command:
                command.append(stripped.rstrip("\\"))
                in_command = stripped.endswith("\\")
        words = shlex.split(_SUBSTITUTION.sub(shim.__file__, " ".join(command)))
        words = words[words.index("verl.trainer.main_ppo") + 1 :]
        found.append(([w for w in words if w != "..."], alternatives))
    return found


def compose(overrides: list[str]) -> Any:
    """verl's ``ppo_trainer`` config as ``python -m verl.trainer.main_ppo <overrides>`` builds
    it (Hydra's compose API on verl's own config folder; no GPU, no import of verl)."""
    hydra = pytest.importorskip("hydra", reason="hydra-core is not installed")
    config_dir = verl_root() / "trainer" / "config"
    with hydra.initialize_config_dir(config_dir=str(config_dir), version_base=None):
        return hydra.compose(config_name="ppo_trainer", overrides=overrides)


def reward_section(cfg: Any) -> Any:
    """Where this verl version reads ``custom_reward_function`` and the manager settings."""
    return cfg.reward if new_layout() else cfg


def manager_name(cfg: Any) -> str:
    return cfg.reward.reward_manager.name if new_layout() else cfg.reward_model.reward_manager


@cache
def verl_import_utils() -> types.ModuleType:
    """verl's ``utils/import_utils.py`` run from its file: the loader verl resolves
    ``custom_reward_function.path`` with (``load_extern_object``), standard library only."""
    path = verl_root() / "utils" / "import_utils.py"
    spec = importlib.util.spec_from_file_location("verl_import_utils_under_test", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def registered_managers(folder: Path) -> set[str]:
    """The names a registry folder's modules register (``@register("name")`` and the
    ``register_manager(...)`` aliases), read from the source."""
    names = set()
    for path in folder.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id.startswith("register")
                and node.args
                and isinstance(node.args[0], ast.Constant)
                and isinstance(node.args[0].value, str)
            ):
                names.add(node.args[0].value)
    return names


def test_the_readme_verl_command_composes_with_verls_own_config() -> None:
    """Hydra accepts every override of the README's command for the installed verl, the
    function it names is ours (loaded the way verl loads it), the manager is one verl registers,
    and ``rate_limited`` gets a concurrency above one (verl's default is one at a time)."""
    commands = readme_verl_commands(verl_version())
    assert commands, f"the README's verl section has no command for verl {verl_version()}"
    for overrides, alternatives in commands:
        cfg = compose(overrides)
        section = reward_section(cfg)
        fn_cfg = section.custom_reward_function
        fn = verl_import_utils().load_extern_object(fn_cfg.path, fn_cfg.name)
        assert fn.__qualname__ == fn_cfg.name and fn.__name__ in shim.__all__
        kwargs = fn_cfg.reward_kwargs
        assert Path(kwargs.config).is_absolute() or kwargs.get("url")
        use_loop = new_layout() or cfg.reward_model.use_reward_loop  # 0.7.0 can opt out
        folder = "experimental/reward_loop/reward_manager" if use_loop else "workers/reward_manager"
        assert manager_name(cfg) in registered_managers(verl_root() / folder)
        if manager_name(cfg) == "rate_limited":
            limits = cfg.reward if new_layout() else cfg.reward_model
            assert limits.max_concurrent > 1
        for alternative in alternatives:
            compose([*overrides, alternative])


def test_which_managers_each_verl_version_offers() -> None:
    """The README's table: from 0.7.1 the trainer builds managers from the reward loop's
    registry only (``resolve_reward_manager_cls``); 0.7.0 also reaches the legacy ones, with
    ``reward_model.use_reward_loop=False``."""
    loop = registered_managers(verl_root() / "experimental/reward_loop/reward_manager")
    legacy = registered_managers(verl_root() / "workers/reward_manager")
    assert {"batch", "dapo", "naive", "prime"} <= legacy
    if new_layout():
        assert loop == {"dapo", "gdpo", "naive", "rate_limited", "remote"}
        reward = (verl_root() / "trainer/ppo/reward.py").read_text(encoding="utf-8")
        assert "from verl.workers.reward_manager" not in reward  # legacy ones unreachable
    else:
        assert loop == {"dapo", "naive", "rate_limited", "remote"}


def test_the_old_readme_command_fails_as_reported() -> None:
    """The README's former override, without ``+``: what Hydra said on HEAD and 0.9.0."""
    if not new_layout():
        pytest.skip("0.7.0 has no reward. section at all")
    with pytest.raises(Exception, match="max_concurrent"):
        compose(["reward.max_concurrent=64"])
    assert compose(["+reward.max_concurrent=64"]).reward.max_concurrent == 64


async def test_the_readmes_dapo_metric_is_the_reward_not_a_component() -> None:
    """The README advised ``filter_groups.metric=rm/correct``: a column that holds the fallback
    where ``correct`` is unscored, so DAPO read a failed grader as a wrong answer. It now names
    the reward (a key we return, which verl's config takes) and documents the flag."""
    section = README.read_text(encoding="utf-8").split("\n### verl\n", 1)[1].split("\n### ", 1)[0]
    found = re.search(r"algorithm\.filter_groups\.metric=([\w/]+)", section)
    assert found is not None, "the README's verl section names no DAPO metric"
    metric = found.group(1)
    returned = await shim.compute_score("d", "7", "7", config=SHIM_CONFIG)
    assert metric in returned and not metric.startswith(shim.KEY_PREFIX)
    assert "rm/<name>/unscored" in section
    assert compose([f"algorithm.filter_groups.metric={metric}"]).algorithm.filter_groups.metric


# --- the keys verl writes itself ------------------------------------------------------------

_COLUMN_HOLDERS = frozenset(
    {"reward_extra_info", "reward_extra_infos_dict", "non_tensor_batch", "row_dict", "base_data"}
)
_KEY_SETS = frozenset({"base_data", "default_extra_keys", "reward_keys"})


def verl_written_keys(root: Path) -> set[str]:
    """String keys verl's trainer, reward managers, agent loop and dataset put in (or read from)
    the dicts our keys land in: ``X["key"]`` on a holder named in ``_COLUMN_HOLDERS``, and the
    literal dicts and sets assigned to the names in ``_KEY_SETS``."""
    keys: set[str] = set()
    folders = [
        "trainer",
        "experimental/reward_loop",
        "experimental/agent_loop",
        "workers/reward_manager",
        "utils/dataset",
    ]
    for folder in folders:
        for path in (root / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Subscript):
                    holder = node.value
                    name = getattr(holder, "id", None) or getattr(holder, "attr", None)
                    key = node.slice
                    if name in _COLUMN_HOLDERS and isinstance(key, ast.Constant):
                        keys.add(str(key.value))
                elif isinstance(node, ast.Assign | ast.AnnAssign):
                    targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                    if any(getattr(t, "id", None) in _KEY_SETS for t in targets):
                        literal = node.value
                        elements = (
                            literal.keys
                            if isinstance(literal, ast.Dict)
                            else getattr(literal, "elts", [])
                        )
                        keys |= {e.value for e in elements if isinstance(e, ast.Constant)}
    return keys


async def test_no_returned_key_is_one_verl_writes_itself() -> None:
    """Scan the installed verl for the keys it writes next to ours; only ``score`` (which verl
    requires, and writes as the same number) may be shared."""
    written = verl_written_keys(verl_root())
    assert {"reward", "acc", "uid", "data_source"} <= written  # the scan sees verl's own columns
    names = ["reward", "acc", "pred", "uid", "score_", "overlong"]
    cfg = {
        "graders": {n: {"type": "format"} for n in names[1:]},
        "aggregators": [{"type": "weighted_sum", "name": "reward"}],
    }
    for config in (SHIM_CONFIG, cfg):
        keys = set(await shim.compute_score("d", "7", "7", config=config))
        assert keys & written <= {"score"}
    assert not {k for k in written if k.startswith(shim.KEY_PREFIX) or k == "rm_error"}


# --- verl importable: its reward loop and managers -------------------------------------------


def verl_module(name: str) -> Any:
    """``import name`` from verl, or skip saying why it does not import here (0.7.0's reward
    loop, for one, wants transformers < 5); ray's and verl's import-time deprecations hushed."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return importlib.import_module(name)
        except ImportError as exc:
            pytest.skip(f"{name} does not import here: {exc}")


@pytest.fixture
def verl_runtime(tmp_path: Path) -> Iterator[types.SimpleNamespace]:
    """verl imported (skip if it cannot be), a byte tokenizer saved where verl's loader
    (``hf_tokenizer``) finds it, and a fresh current event loop (verl's managers take it)."""
    verl_root()
    for module in ("ray", "tensordict"):
        pytest.importorskip(module, reason=f"verl needs {module} to import")
    DataProto = verl_module("verl.protocol").DataProto
    from transformers import ByT5Tokenizer

    tokenizer_dir = tmp_path / "tokenizer"
    ByT5Tokenizer().save_pretrained(tokenizer_dir)
    config_path = tmp_path / "reward.yaml"
    config_path.write_text(yaml.safe_dump(SHIM_CONFIG, sort_keys=False))
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        yield types.SimpleNamespace(
            DataProto=DataProto,
            tokenizer=ByT5Tokenizer(),
            tokenizer_dir=tokenizer_dir,
            config_path=config_path,
            loop=loop,
        )
    finally:
        asyncio.set_event_loop(None)
        loop.close()


def sample_rows(golds: list[Any] = GOLDS) -> list[dict[str, Any]]:
    """Rows as verl's ``RLHFDataset.__getitem__`` (0.9.1) gives them to its collate_fn."""
    import torch

    return [
        {
            "dummy_tensor": torch.tensor([0], dtype=torch.uint8),
            "data_source": "gsm8k",
            "reward_model": {"ground_truth": gold, "style": "rule"},
            "extra_info": {"question": f"q{i}", "index": i},
            "raw_prompt": [{"role": "user", "content": f"q{i}"}],
            "index": i,
            "tools_kwargs": {},
            "interaction_kwargs": {},
        }
        for i, gold in enumerate(golds)
    ]


def columns(rows: list[dict[str, Any]]) -> dict[str, np.ndarray]:
    """The rows' reward fields as a batch's non-tensor columns."""
    keys = ("data_source", "reward_model", "extra_info")
    return {key: np.array([row[key] for row in rows], dtype=object) for key in keys}


def generated(
    rt: types.SimpleNamespace, non_tensors: dict[str, np.ndarray], responses: list[str]
) -> Any:
    """A batch after generation: prompts, responses (encoded ``responses``), masks, and the
    given non-tensor columns."""
    import torch

    n, prompt_len, response_len = len(responses), 4, 32
    prompts = torch.full((n, prompt_len), rt.tokenizer.pad_token_id, dtype=torch.long)
    prompts[:, -1] = rt.tokenizer.convert_tokens_to_ids("Q")
    out = torch.full((n, response_len), rt.tokenizer.pad_token_id, dtype=torch.long)
    mask = torch.zeros(n, prompt_len + response_len, dtype=torch.long)
    mask[:, prompt_len - 1] = 1
    for i, text in enumerate(responses):
        ids = rt.tokenizer.encode(text, add_special_tokens=False)
        out[i, : len(ids)] = torch.tensor(ids)
        mask[i, prompt_len : prompt_len + len(ids)] = 1
    return rt.DataProto.from_dict(
        tensors={
            "prompts": prompts,
            "responses": out,
            "attention_mask": mask,
            "input_ids": torch.cat([prompts, out], dim=1),
            "response_mask": mask[:, prompt_len:],
        },
        non_tensors=non_tensors,
    )


def rollout_output(rt: types.SimpleNamespace, data: Any, outputs: list[dict[str, Any]]) -> Any:
    """What the agent loop hands the trainer after scoring ``data``: the reward at each
    response's last token (``rm_scores``) and every sample's ``reward_extra_info`` as columns
    named by the *first* sample's keys. Reproduces ``AgentLoopWorker._postprocess``
    (verl/experimental/agent_loop/agent_loop.py, 0.9.1; the same lines in 0.7.0), which needs a
    rollout engine to run."""
    import torch

    prompt_length = data.batch["prompts"].size(1)
    response_length = data.batch["attention_mask"][:, prompt_length:].sum(dim=1) - 1
    rm_scores = torch.zeros_like(data.batch["response_mask"], dtype=torch.float32)
    scores = [o["reward_score"] for o in outputs]
    rm_scores[torch.arange(len(data)), response_length] = torch.tensor(scores)
    non_tensor_batch = {"__num_turns__": np.array([2] * len(data), dtype=np.int32)}
    infos = [o["reward_extra_info"] for o in outputs]
    keys = list(infos[0].keys())
    for key in keys:
        non_tensor_batch[key] = np.array([info[key] for info in infos])
    tensors = {k: data.batch[k] for k in ("prompts", "responses", "attention_mask", "input_ids")}
    return rt.DataProto.from_dict(
        tensors={**tensors, "rm_scores": rm_scores},
        non_tensors=non_tensor_batch,
        meta_info={"metrics": [], "reward_extra_keys": keys},
    )


def readme_config(rt: types.SimpleNamespace, *extra: str) -> Any:
    """The README's command for this verl, our test reward in place of its config path, the
    byte tokenizer as the model."""
    commands = readme_verl_commands(verl_version())
    assert commands, f"the README's verl section has no command for verl {verl_version()}"
    overrides = [
        re.sub(r"(reward_kwargs\.config)=.*", rf"\1={rt.config_path}", o) for o in commands[0][0]
    ]
    return compose([*overrides, f"actor_rollout_ref.model.path={rt.tokenizer_dir}", *extra])


def reward_loop_worker(cfg: Any) -> Any:
    """verl's own ``RewardLoopWorker`` (a Ray actor in training; a plain object here)."""
    return verl_module("verl.experimental.reward_loop.reward_loop").RewardLoopWorker(cfg, None)


def test_the_readme_config_through_verls_reward_loop_worker(
    verl_runtime: types.SimpleNamespace, monkeypatch: pytest.MonkeyPatch
) -> None:
    """README command -> Hydra -> verl's RewardLoopWorker (its manager, our function, our
    reward YAML) -> every sample's score and extras, ``max_concurrent`` where verl reads it."""
    limited = verl_module("verl.experimental.reward_loop.reward_manager.limited")
    RateLimitedRewardManager = limited.RateLimitedRewardManager
    rt = verl_runtime
    monkeypatch.setattr(RateLimitedRewardManager, "_class_initialized", False)
    worker = reward_loop_worker(readme_config(rt))
    data = generated(rt, columns(sample_rows()), RESPONSES)
    outputs = rt.loop.run_until_complete(worker.compute_score_batch(data))
    assert [o["reward_score"] for o in outputs] == pytest.approx(SCORES)
    assert all(list(o["reward_extra_info"]) == KEYS for o in outputs)
    assert [o["reward_extra_info"]["rm_error"] for o in outputs] == [0.0, 0.0, 1.0, 1.0]
    for name, flags in UNSCORED.items():
        assert [o["reward_extra_info"][f"rm/{name}/unscored"] for o in outputs] == flags
    assert RateLimitedRewardManager._max_concurrent == 64


def _reward_manager(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Undo the one-time class setup of verl's reward-loop manager ``name`` for this test
    (skipped where this verl has no such manager)."""
    registry = verl_module("verl.experimental.reward_loop.reward_manager")
    try:
        cls = registry.get_reward_manager_cls(name)
    except ValueError:
        pytest.skip(f"verl {verl_version()} has no {name!r} manager")
    monkeypatch.setattr(cls, "_class_initialized", False)


@pytest.mark.parametrize("name", ["naive", "dapo", "gdpo", "rate_limited", "remote"])
def test_every_reward_loop_manager_gives_the_same_numbers(
    verl_runtime: types.SimpleNamespace, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    """Each manager of verl's reward loop calls our function its own way (``remote`` in Ray
    workers, which reject coroutine functions: it gets ``compute_score_sync``)."""
    rt = verl_runtime
    _reward_manager(name, monkeypatch)
    fn_name = "compute_score_sync" if name == "remote" else "compute_score"
    prefix = "reward." if new_layout() else ""
    manager_key = "reward.reward_manager.name" if new_layout() else "reward_model.reward_manager"
    cfg = readme_config(
        rt, f"{manager_key}={name}", f"{prefix}custom_reward_function.name={fn_name}"
    )
    started_ray = False
    if name == "remote":
        ray = pytest.importorskip("ray")
        if not ray.is_initialized():  # else tests/ray's session instance, left running
            # address="local": a new instance, never another test process's cluster (Ray joins
            # the one its machine-wide address file names otherwise).
            ray.init(address="local", num_cpus=1, include_dashboard=False, log_to_driver=False)
            started_ray = True
        monkeypatch.setattr(cfg.reward if new_layout() else cfg.reward_model, "num_workers", 1)
    try:
        worker = reward_loop_worker(cfg)
        data = generated(rt, columns(sample_rows()), RESPONSES)
        outputs = rt.loop.run_until_complete(worker.compute_score_batch(data))
    finally:
        if started_ray:
            ray.shutdown()
    assert [o["reward_score"] for o in outputs] == pytest.approx(SCORES)
    assert all(o["reward_extra_info"]["rm/reward"] == o["reward_score"] for o in outputs)
    assert [o["reward_extra_info"]["rm/num/unscored"] for o in outputs] == UNSCORED["num"]


SKIP_CONFIG: dict[str, Any] = {
    "graders": SHIM_CONFIG["graders"],
    "aggregators": [
        {
            "type": "weighted_sum",
            "name": "reward",
            "weights": {"short": 1, "num": 1},
            "on_error": "skip",
        }
    ],
}
"""``SHIM_CONFIG`` whose reward still scores (from ``short``) when ``num`` fails."""


@pytest.mark.parametrize("name", ["naive", "dapo", "gdpo", "rate_limited"])
def test_a_failed_component_reaches_verls_columns_flagged(
    verl_runtime: types.SimpleNamespace, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    """A gold ``num`` cannot read, under a reward that skips it: through verl's manager and the
    agent loop's columns, ``rm/num`` was 0.0 with ``rm_error`` 0.0 just as for a wrong answer
    (what ``filter_groups.metric=rm/num`` and the val-aux means then read). The flag column
    tells them apart; ``rm/num`` stays a number, as GDPO's advantage needs (no NaN in it)."""
    core_algos = verl_module("verl.trainer.ppo.core_algos")
    from omegaconf import OmegaConf

    rt = verl_runtime
    _reward_manager(name, monkeypatch)
    rt.config_path.write_text(yaml.safe_dump(SKIP_CONFIG, sort_keys=False))
    manager_key = "reward.reward_manager.name" if new_layout() else "reward_model.reward_manager"
    worker = reward_loop_worker(readme_config(rt, f"{manager_key}={name}"))
    golds = ["see solution manual", "7", "7"]  # unreadable, then a wrong and a right answer
    data = generated(rt, columns(sample_rows(golds)), ["8", "8", "7"])
    outputs = rt.loop.run_until_complete(worker.compute_score_batch(data))
    batch = rollout_output(rt, data, outputs).non_tensor_batch
    assert batch["rm_error"].tolist() == [0.0, 0.0, 0.0]  # the reward scored every time
    assert batch["rm/num"].tolist() == [0.0, 0.0, 1.0]  # the fallback, a wrong, a right
    assert batch["rm/num/unscored"].tolist() == [1.0, 0.0, 0.0]
    assert batch["rm/short/unscored"].tolist() == batch["rm/reward/unscored"].tolist() == [0.0] * 3
    gdpo = OmegaConf.create({"gdpo_reward_keys": ["rm/num", "rm/short"]})
    advantages, _ = core_algos.compute_gdpo_outcome_advantage(
        token_level_rewards=data.batch["response_mask"].float(),
        response_mask=data.batch["response_mask"],
        index=np.array(["p"] * 3, dtype=object),
        config=gdpo,
        non_tensor_batch=batch,
        batch=data.batch,
    )
    assert bool(advantages.isfinite().all())


@pytest.mark.parametrize("prefix", ["rm/", ""])
def test_verls_validation_takes_our_keys(
    verl_runtime: types.SimpleNamespace,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    prefix: str,
) -> None:
    """verl's own ``RayPPOTrainer._validate`` (0.9.1), on what its reward loop worker made of
    the README's config: metrics per component, every dumped row with our keys. With bare
    component names (the old keys) the same code fails as reported: the aggregator ``reward``
    doubles verl's own ``reward`` column."""
    from concurrent.futures import ThreadPoolExecutor

    RayPPOTrainer = verl_module("verl.trainer.ppo.ray_trainer").RayPPOTrainer
    collate_fn = verl_module("verl.utils.dataset.rl_dataset").collate_fn
    limited = verl_module("verl.experimental.reward_loop.reward_manager.limited")
    rt = verl_runtime
    monkeypatch.setattr(limited.RateLimitedRewardManager, "_class_initialized", False)
    monkeypatch.setattr(shim, "KEY_PREFIX", prefix)
    cfg = readme_config(
        rt,
        "actor_rollout_ref.rollout.val_kwargs.n=2",
        "actor_rollout_ref.rollout.agent.num_workers=1",
        f"+trainer.validation_data_dir={tmp_path / 'val'}",
    )
    worker = reward_loop_worker(cfg)

    class Rollout:
        """Answers each prompt with RESPONSES[its index], scored by verl's reward loop."""

        def generate_sequences(self, gen_batch: Any) -> Any:
            index = [info["index"] for info in gen_batch.non_tensor_batch["extra_info"]]
            data = generated(rt, dict(gen_batch.non_tensor_batch), [RESPONSES[i] for i in index])
            outputs = rt.loop.run_until_complete(worker.compute_score_batch(data))
            return rollout_output(rt, data, outputs)

    trainer = object.__new__(RayPPOTrainer)  # its methods; the state _validate reads
    trainer.__dict__.update(
        config=cfg,
        tokenizer=rt.tokenizer,
        val_dataloader=[collate_fn(sample_rows())],
        async_rollout_manager=Rollout(),
        use_rm=False,
        global_steps=1,
        _dump_executor=ThreadPoolExecutor(1),
        _dump_futures=[],
    )
    if prefix == "":
        with pytest.raises(AssertionError, match=r"reward: len\(lst\)=16, len\(sample_scores\)=8"):
            trainer._validate()
        return
    metrics = trainer._validate()
    for future in trainer._dump_futures:
        future.result()
    assert metrics["val-core/gsm8k/reward/mean@2"] == pytest.approx(np.mean(SCORES))
    assert metrics["val-aux/gsm8k/rm/reward/mean@2"] == pytest.approx(np.mean(SCORES))
    assert metrics["val-aux/gsm8k/rm/num/mean@2"] == pytest.approx(np.mean([1, 0, 0, 0]))
    assert metrics["val-aux/gsm8k/rm_error/mean@2"] == pytest.approx(0.5)
    for name, flags in UNSCORED.items():  # each component's unscored rate, beside its mean
        assert metrics[f"val-aux/gsm8k/rm/{name}/unscored/mean@2"] == pytest.approx(np.mean(flags))
    rows = [json.loads(line) for line in (tmp_path / "val" / "1.jsonl").read_text().splitlines()]
    assert len(rows) == 8 and [r["rm/reward"] for r in rows[::2]] == pytest.approx(SCORES)
    assert all(r["score"] == r["rm/reward"] for r in rows)


# --- the legacy managers (workers/reward_manager, reachable up to 0.7.0) ---------------------


def legacy_manager(rt: types.SimpleNamespace, name: str, fn_name: str) -> Any:
    """A legacy manager as verl 0.7.0's ``load_reward_manager`` builds it, with the README's
    function settings (``name`` swapped) loaded by verl's ``get_custom_reward_fn``."""
    from omegaconf import OmegaConf

    reward = verl_module("verl.trainer.ppo.reward")
    registry = verl_module("verl.workers.reward_manager")
    prefix = "reward." if new_layout() else ""
    cfg = readme_config(rt, f"{prefix}custom_reward_function.name={fn_name}")
    kwargs: dict[str, Any] = {}
    if name == "dapo":  # the DAPO recipe's reward_kwargs: this manager needs them
        overlong = {"enable": False, "len": 4, "penalty_factor": 1.0, "log": False}
        kwargs = {"overlong_buffer_cfg": OmegaConf.create(overlong), "max_resp_len": 32}
    cls = registry.get_reward_manager_cls(name)
    fn = reward.get_custom_reward_fn(cfg)
    return cls(tokenizer=rt.tokenizer, num_examine=0, compute_score=fn, **kwargs)


@pytest.mark.parametrize(
    ("name", "fn_name"),
    [
        ("naive", "compute_score_sync"),
        ("dapo", "compute_score_sync"),
        ("batch", "compute_score_batch"),
        ("prime", "compute_score_float"),
    ],
)
def test_every_legacy_manager_gives_the_same_numbers(
    verl_runtime: types.SimpleNamespace, name: str, fn_name: str
) -> None:
    rt = verl_runtime
    manager = legacy_manager(rt, name, fn_name)
    out = manager(generated(rt, columns(sample_rows()), RESPONSES), return_dict=True)
    assert out["reward_tensor"].sum(-1).tolist() == pytest.approx(SCORES)
    if name != "prime":  # prime records no extras
        extras = out["reward_extra_info"]
        assert list(extras) == KEYS
        assert extras["rm_error"] == [0.0, 0.0, 1.0, 1.0]
        assert extras["rm/num/unscored"] == UNSCORED["num"]


def test_prime_cannot_take_a_dict(
    verl_runtime: types.SimpleNamespace, capsys: pytest.CaptureFixture[str]
) -> None:
    """Why prime needs compute_score_float: given the dict, verl zeroes the whole batch."""
    rt = verl_runtime
    manager = legacy_manager(rt, "prime", "compute_score_sync")
    out = manager(generated(rt, columns(sample_rows()), RESPONSES), return_dict=True)
    assert out["reward_tensor"].sum(-1).tolist() == [0.0] * len(RESPONSES)
    assert "Setting all as 0." in capsys.readouterr().out


# --- rate_limited's per-sample timeout -------------------------------------------------------


def test_a_sample_past_rate_limiteds_timeout_keeps_our_keys(
    verl_runtime: types.SimpleNamespace, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``rate_limited`` gives each sample ``reward.timeout`` seconds, then scores it 0.0 with
    keys of its own (``timeout``, ``acc``); verl builds every column from the first sample's
    keys (``_postprocess``), so that one sample fails the step with a KeyError, or, when it comes
    first, drops every other sample's extras. ``deadline`` (a reward kwarg, below verl's
    timeout) answers first: the slow sample is unscored (``rm_error`` 1) with our key set."""
    from tests.judge_server import JudgeServer, Reply

    limited = verl_module("verl.experimental.reward_loop.reward_manager.limited")
    monkeypatch.setattr(limited.RateLimitedRewardManager, "_class_initialized", False)
    rt = verl_runtime

    def latency(body: dict[str, Any]) -> float:
        return 5.0 if "slowly" in json.dumps(body) else 0.0

    verdict = json.dumps({"reason": "on topic", "score": 5})
    with JudgeServer(lambda body: Reply(verdict), latency=latency) as judge:
        judge_cfg = {"backend": "openai", "base_url": judge.base_url, "model": "m"}
        reward = {
            "judge": {**judge_cfg, "max_retries": 0},
            "graders": {"rel": {"type": "relevance"}},
        }
        rt.config_path.write_text(yaml.safe_dump(reward))
        prefix = "reward." if new_layout() else ""
        timeout_key = "reward.timeout" if new_layout() else "reward_model.timeout"
        cfg = readme_config(
            rt,
            f"+{timeout_key}=2",
            f"+{prefix}custom_reward_function.reward_kwargs.deadline=0.5",
        )
        worker = reward_loop_worker(cfg)
        responses = ["Seven, found quickly.", "Seven, found slowly.", "Seven, quick too."]
        data = generated(rt, columns(sample_rows(GOLDS[:3])), responses)
        outputs = rt.loop.run_until_complete(worker.compute_score_batch(data))
    keys = ["score", "rm/rel", "rm/rel/unscored", "rm_error"]
    assert [list(o["reward_extra_info"]) for o in outputs] == [keys] * 3
    assert [o["reward_extra_info"]["rm_error"] for o in outputs] == [0.0, 1.0, 0.0]
    assert [o["reward_score"] for o in outputs] == [1.0, 0.0, 1.0]
    rollout_output(rt, data, outputs)  # verl's columns from the first sample's keys


def test_rate_limited_turns_a_bad_reward_into_zeros(
    verl_runtime: types.SimpleNamespace, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Why the README says to check a reward before training with ``rate_limited``: our first
    call raises ``ConfigError`` (here: the config file is missing), and that manager, unlike the
    others, catches every exception and scores the sample 0.0 with keys of its own. A run with
    a wrong path or URL would train on zeros, with only error logs to tell."""
    limited = verl_module("verl.experimental.reward_loop.reward_manager.limited")
    monkeypatch.setattr(limited.RateLimitedRewardManager, "_class_initialized", False)
    rt = verl_runtime
    rt.config_path.unlink()
    worker = reward_loop_worker(readme_config(rt))
    data = generated(rt, columns(sample_rows()), RESPONSES)
    outputs = rt.loop.run_until_complete(worker.compute_score_batch(data))
    assert [o["reward_score"] for o in outputs] == [0.0] * len(RESPONSES)
    assert all(list(o["reward_extra_info"]) == ["error", "acc"] for o in outputs)
    assert "reward.yaml" in outputs[0]["reward_extra_info"]["error"]
