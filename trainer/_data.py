"""The prompt dataset: a JSONL file or a Hugging Face dataset saved with ``save_to_disk``.

JSONL is read here rather than by ``datasets.load_dataset("json")``: a bad line then fails with
its line number, and nothing is written to the Hugging Face cache.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from datasets import Dataset, DatasetDict, load_from_disk

from trainer._config import TrainConfig

__all__ = ["load_prompts"]


def load_prompts(cfg: TrainConfig) -> Dataset:
    """The config's dataset; it has a ``prompt`` column (TRL's) and at least one row.

    Raises:
        ConfigError: unreadable data, a line that is not a JSON object, no ``prompt`` column, or
            a missing split; the message names the file, ``dataset.path`` and the line.
    """
    path = Path(cfg.dataset.path)
    if path.is_dir():
        try:
            data = load_from_disk(str(path))
        except (OSError, ValueError) as exc:
            raise cfg.error("dataset.path", f"{path} is not a saved dataset: {exc}") from None
        if isinstance(data, DatasetDict):
            if cfg.dataset.split not in data:
                raise cfg.error("dataset.split", f"{cfg.dataset.split!r} not in {list(data)}")
            data = data[cfg.dataset.split]
        elif "split" in cfg.dataset.model_fields_set:
            raise cfg.error("dataset.split", f"{path} is one dataset, not a DatasetDict of splits")
    else:
        if "split" in cfg.dataset.model_fields_set:
            raise cfg.error("dataset.split", f"{path} is a JSONL file, which has no splits")
        data = _from_rows(cfg, path, _read_jsonl(cfg, path))
    if "prompt" not in data.column_names:
        raise cfg.error("dataset.path", f"{path} has no 'prompt' column: {data.column_names}")
    if len(data) == 0:
        raise cfg.error("dataset.path", f"{path} has no rows")
    env = cfg.loaded_environment
    if env is None:
        return data
    if env.named:
        _check_environment_column(cfg, data, [n for n in env.factories if n is not None])
    if isinstance(data[0]["prompt"], str):
        # Tool calls need a chat template, which TRL applies only to conversational prompts.
        data = Dataset.from_list(
            [{**row, "prompt": [{"role": "user", "content": row["prompt"]}]} for row in data]
        )
    return data


def _check_environment_column(cfg: TrainConfig, data: Dataset, names: list[str]) -> None:
    """With named environments, every row must pick one of them in its ``environment`` column:
    TRL would find out mid-training, at the batch that holds the row."""
    if "environment" not in data.column_names:
        raise cfg.error(
            "dataset.path",
            f"{cfg.dataset.path} has no 'environment' column, which environment.factory's "
            f"named environments {names} need (one per row)",
        )
    for i, value in enumerate(data["environment"]):
        if value not in names:
            raise cfg.error(
                "dataset.path",
                f"{cfg.dataset.path} row {i + 1}: environment {value!r} is not one of "
                f"environment.factory's {names}",
            )


def _from_rows(cfg: TrainConfig, path: Path, lines: list[tuple[int, dict[str, Any]]]) -> Dataset:
    """The rows as a dataset whose columns are every key of every line (a key missing from a
    line is null there): ``Dataset.from_list`` takes its columns from the first row alone, so a
    column that line 1 lacks vanished from every row. A column whose lines disagree on its type
    (``8`` and ``"3/4"``) is an error naming the lines, not an Arrow traceback."""
    columns = list(dict.fromkeys(k for _, row in lines for k in row))
    rows = [{k: row.get(k) for k in columns} for _, row in lines]
    try:
        return Dataset.from_list(rows)
    except (ValueError, TypeError, ArithmeticError):  # pyarrow's ArrowInvalid/TypeError
        pass
    for col in columns:
        seen: dict[str, int] = {}
        for lineno, row in lines:
            value = row.get(col)
            if value is None:
                continue
            number = isinstance(value, int | float) and not isinstance(value, bool)
            kind = "number" if number else type(value).__name__  # Arrow widens int to float
            seen.setdefault(kind, lineno)
            if len(seen) > 1:
                (first, at), _ = seen.items()
                raise cfg.error(
                    "dataset.path",
                    f"{path} line {lineno}: column {col!r} is {kind} where line {at} has "
                    f"{first}; give each column one type (e.g. every answer as text)",
                )
    raise cfg.error("dataset.path", f"{path}: the rows do not form one table")


def _read_jsonl(cfg: TrainConfig, path: Path) -> list[tuple[int, dict[str, Any]]]:
    rows = []
    try:
        with path.open("rb") as f:
            for lineno, raw in enumerate(f, start=1):
                if not raw.strip():
                    continue
                try:
                    row = json.loads(raw)
                except ValueError as exc:
                    raise cfg.error(
                        "dataset.path", f"{path} line {lineno}: bad JSON: {exc}"
                    ) from None
                if not isinstance(row, dict) or "prompt" not in row:
                    raise cfg.error(
                        "dataset.path", f"{path} line {lineno}: expected an object with 'prompt'"
                    )
                rows.append((lineno, row))
    except OSError as exc:
        raise cfg.error("dataset.path", f"cannot read {path}: {exc.strerror or exc}") from None
    return rows
