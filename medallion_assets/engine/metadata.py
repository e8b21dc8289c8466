"""Loading version-controlled YAML metadata into pydantic models, with errors that name the
file, the entry and the field. Shared by the source, base and curated metadata."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

ModelT = TypeVar("ModelT", bound=BaseModel)
METADATA_DIR_ENV = "MEDALLION_METADATA_DIR"


class MetadataError(ValueError):
    """Invalid metadata; the message names the file, the entry and the field."""


class StrictModel(BaseModel):
    """Base for metadata models: unknown fields are typos, so they are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def shipped_metadata_root() -> Path:
    """The metadata shipped with the package: the sample's sources, base tables and curated model."""
    return Path(__file__).resolve().parents[1] / "metadata"


def metadata_root() -> Path:
    """The metadata folder in use: ``$MEDALLION_METADATA_DIR`` when set, else the shipped sample.

    Read at call time (when definitions are built), never at import time. The folder holds
    ``project.yaml``, ``sources/``, ``base/`` and ``curated/``.
    """
    value = os.environ.get(METADATA_DIR_ENV)
    if not value:
        return shipped_metadata_root()
    root = Path(value).expanduser().resolve()
    if not root.is_dir():
        raise MetadataError(f"{METADATA_DIR_ENV}={value}: the metadata folder {root} does not exist")
    return root


def read_yaml(path: Path) -> Any:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise MetadataError(f"{path}: cannot read metadata file: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise MetadataError(f"{path}: metadata file is not UTF-8 text: {exc}") from exc
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        where = ""
        mark = getattr(exc, "problem_mark", None)
        if mark is not None:
            where = f" (line {mark.line + 1}, column {mark.column + 1})"
        problem = getattr(exc, "problem", None) or str(exc)
        raise MetadataError(f"{path}{where}: malformed YAML: {problem}") from exc


def describe_validation_error(path: Path, exc: ValidationError, entry_label: str = "entry") -> str:
    """One line per problem: ``file: entry 'x': field 'y': message (got ...)``."""
    lines = []
    for error in exc.errors():
        location = [str(part) for part in error["loc"]]
        entry, field = _split_location(location, entry_label)
        got = error.get("input")
        got_text = "" if isinstance(got, (dict, list)) or got is None else f" (got {got!r})"
        message = error["msg"].removeprefix("Value error, ")
        where = f"field '{field}': " if field else ""
        lines.append(f"{path}: {entry}{where}{message}{got_text}")
    return "\n".join(lines)


def _split_location(location: list[str], entry_label: str) -> tuple[str, str]:
    # Collections are written as `objects: {name: {...}}` or `tables: [ {...} ]`; the first key
    # below the collection is the entry, the rest is the field path (empty for entry-wide rules).
    if len(location) >= 2 and location[0] in {"objects", "tables", "entities", "dimensions", "facts", "bridges"}:
        return f"{entry_label} '{location[1]}': ", ".".join(location[2:])
    return "", ".".join(location)


def load_model(path: Path, model: type[ModelT], *, context: dict[str, Any] | None = None, entry_label: str = "entry") -> ModelT:
    """Read ``path`` and validate it as ``model``; any problem is a :class:`MetadataError`."""
    raw = read_yaml(path)
    if raw is None:
        raise MetadataError(f"{path}: metadata file is empty")
    if not isinstance(raw, dict):
        raise MetadataError(f"{path}: expected a mapping at the top level, got {type(raw).__name__}")
    try:
        return model.model_validate(raw, context=context)
    except ValidationError as exc:
        raise MetadataError(describe_validation_error(path, exc, entry_label)) from None
