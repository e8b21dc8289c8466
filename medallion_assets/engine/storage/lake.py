"""The data root on object storage (``s3://bucket/prefix``; ``gs://`` and ``az://`` through the same
libraries): a :class:`LakePath` stands where a local :class:`pathlib.Path` stands today.

Local roots stay plain ``Path`` objects and never go through this module's remote branches, so
the local behaviour is the one of a directory tree. A remote root becomes a :class:`LakePath`: a
key under a :class:`Lake` (the root URI, its ``pyarrow.fs`` file system and the ``storage_options``
delta-rs takes). It offers the part of the ``Path`` interface the engine uses (``/``, ``name``,
``parent``, ``exists``, ``is_dir``, ``iterdir``, ``glob``, ``stat``, ``unlink``); ``str()`` of it is
its URI, which ``DeltaTable`` and ``write_deltalake`` take along with :func:`storage_options`.

Credentials come from the standard variables (``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``,
``AWS_REGION``, ``AWS_ENDPOINT_URL``, ``AWS_ALLOW_HTTP``); they live only in the file system object
and in the ``storage_options`` dict, neither of which is ever printed (``repr`` shows the URI).

What a local disk gives and object storage does not, and what stands in for it:

- atomic rename: an object appears whole when its single PUT (or multipart upload) completes,
  so a file is written locally and uploaded to its final key (:func:`upload_file`);
- ``fcntl`` locks: they are host-local anyway; a remote root keeps its lock files in a local
  companion directory (:func:`local_dir`), and Delta commits use S3 conditional writes
  (delta-rs >= 1.0 puts each log entry only if absent), so two hosts never overwrite a commit;
- sources that are local files (the sample's ERP DuckDB database and drop folder) resolve in the
  same local companion directory, which ``MEDALLION_LOCAL_DIR`` names.
"""

from __future__ import annotations

import contextlib
import fnmatch
import hashlib
import os
import re
import shutil
import tempfile
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path, PurePosixPath
from types import SimpleNamespace
from typing import Any, Literal

import pyarrow as pa
import pyarrow.fs as pafs
from deltalake import CommitProperties, DeltaTable, write_deltalake

LOCAL_DIR_ENV = "MEDALLION_LOCAL_DIR"
REMOTE_SCHEMES = ("s3", "s3a", "gs", "gcs", "az", "abfs", "abfss")
# Passed to delta-rs when set; the names are the ones delta-rs (object_store) reads.
_AWS_VARIABLES = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_REGION", "AWS_ENDPOINT_URL", "AWS_ALLOW_HTTP")
_URI = re.compile(r"^(?P<scheme>[a-z][a-z0-9+.-]*)://(?P<rest>.+)$")


class LakeError(ValueError):
    """A data root URI that cannot be used (unknown scheme, credentials in the URI, no bucket)."""


@dataclass(frozen=True)
class Lake:
    """A remote data root: ``uri`` is ``scheme://bucket/prefix`` without a trailing slash."""

    uri: str
    filesystem: pafs.FileSystem = field(repr=False, compare=False)
    root: str  # the root inside ``filesystem`` (``bucket/prefix``)
    storage_options: dict[str, str] = field(repr=False, compare=False, default_factory=dict)


def is_uri(value: str | os.PathLike | None) -> bool:
    match = _URI.match(str(value or ""))
    return bool(match) and match["scheme"] != "file"


def open_lake(uri: str) -> LakePath:
    """The root :class:`LakePath` of a remote data root URI."""
    match = _URI.match(uri.strip())
    if not match or match["scheme"] not in REMOTE_SCHEMES:
        raise LakeError(f"data root {uri!r}: expected a local path or one of {', '.join(s + '://' for s in REMOTE_SCHEMES)}")
    scheme, rest = match["scheme"], match["rest"].strip("/")
    if "@" in rest.split("/")[0]:
        raise LakeError(f"data root {scheme}://…: put credentials in the AWS_* variables, not in the URI")
    if not rest:
        raise LakeError(f"data root {uri!r} names no bucket")
    return LakePath(_lake(f"{scheme}://{rest}", _credentials_fingerprint()), "")


def _credentials_fingerprint() -> str:
    """A digest of the AWS variables, so a changed endpoint or key builds a new file system."""
    joined = "\0".join(os.environ.get(name, "") for name in _AWS_VARIABLES)
    return hashlib.sha256(joined.encode()).hexdigest()


@lru_cache(maxsize=32)
def _lake(uri: str, fingerprint: str) -> Lake:
    try:
        filesystem, root = pafs.FileSystem.from_uri(uri)
    except (OSError, ValueError) as exc:
        raise LakeError(f"data root {uri}: cannot open its file system: {exc}") from None
    return Lake(uri=uri, filesystem=filesystem, root=root.rstrip("/"), storage_options=_delta_options(uri))


class LakePath:
    """A key under a remote :class:`Lake`, with the part of ``pathlib.Path`` the engine uses."""

    __slots__ = ("lake", "key", "_info")

    def __init__(self, lake: Lake, key: str, info: pafs.FileInfo | None = None) -> None:
        self.lake = lake
        self.key = key.strip("/")
        self._info = info

    # --- pure path operations -------------------------------------------------------------
    def __truediv__(self, other: str | os.PathLike) -> LakePath:
        relative = PurePosixPath(str(other))
        if relative.is_absolute() or ".." in relative.parts:
            raise ValueError(f"{other!r} is not a path inside {self}")
        parts = [p for p in relative.parts if p not in ("", ".")]
        return LakePath(self.lake, "/".join([self.key, *parts]) if self.key else "/".join(parts))

    def __str__(self) -> str:
        return f"{self.lake.uri}/{self.key}" if self.key else self.lake.uri

    def __repr__(self) -> str:
        return f"LakePath({str(self)!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, LakePath) and (self.lake.uri, self.key) == (other.lake.uri, other.key)

    def __hash__(self) -> int:
        return hash((self.lake.uri, self.key))

    def __lt__(self, other: LakePath) -> bool:
        return (self.lake.uri, self.key) < (other.lake.uri, other.key)

    @property
    def name(self) -> str:
        return self.key.rsplit("/", 1)[-1] if self.key else ""

    @property
    def suffix(self) -> str:
        return PurePosixPath(self.name).suffix

    @property
    def stem(self) -> str:
        return PurePosixPath(self.name).stem

    @property
    def parent(self) -> LakePath:
        return LakePath(self.lake, self.key.rsplit("/", 1)[0] if "/" in self.key else "")

    @property
    def parents(self) -> list[LakePath]:
        found, current = [], self
        while current.key:
            current = current.parent
            found.append(current)
        return found

    @property
    def parts(self) -> tuple[str, ...]:
        return (self.lake.uri, *[p for p in self.key.split("/") if p])

    @property
    def path(self) -> LakePath:
        """Itself: listings yield ``LakePath`` entries where ``os.scandir`` yields ``DirEntry``."""
        return self

    def with_name(self, name: str) -> LakePath:
        return self.parent / name

    def resolve(self) -> LakePath:
        return self

    def expanduser(self) -> LakePath:
        return self

    def relative_to(self, other: LakePath) -> PurePosixPath:
        if not isinstance(other, LakePath) or other.lake.uri != self.lake.uri:
            raise ValueError(f"{self} is not inside {other}")
        if other.key and not (self.key == other.key or self.key.startswith(other.key + "/")):
            raise ValueError(f"{self} is not inside {other}")
        return PurePosixPath(self.key[len(other.key) :].lstrip("/") or ".")

    def is_relative_to(self, other: object) -> bool:
        try:
            self.relative_to(other)  # type: ignore[arg-type]
        except ValueError:
            return False
        return True

    def as_posix(self) -> str:
        return str(self)

    @property
    def fs_path(self) -> str:
        """The path inside the lake's file system (``bucket/prefix/key``)."""
        return f"{self.lake.root}/{self.key}" if self.key else self.lake.root

    # --- what the store holds ---------------------------------------------------------------
    def info(self) -> pafs.FileInfo:
        return self._info if self._info is not None else self.lake.filesystem.get_file_info(self.fs_path)

    def exists(self) -> bool:
        return self.info().type != pafs.FileType.NotFound

    def is_dir(self) -> bool:
        return self.info().type == pafs.FileType.Directory

    def is_file(self) -> bool:
        return self.info().type == pafs.FileType.File

    def stat(self) -> SimpleNamespace:
        info = self.info()
        if info.type == pafs.FileType.NotFound:
            raise FileNotFoundError(f"{self} does not exist")
        mtime_ns = info.mtime_ns or 0
        return SimpleNamespace(st_size=info.size or 0, st_mtime=mtime_ns / 1e9, st_mtime_ns=mtime_ns)

    def iterdir(self) -> Iterator[LakePath]:
        selector = pafs.FileSelector(self.fs_path, allow_not_found=True, recursive=False)
        yield from self._children(self.lake.filesystem.get_file_info(selector))

    def walk_files(self) -> Iterator[LakePath]:
        """Every object below this key (one recursive listing)."""
        selector = pafs.FileSelector(self.fs_path, allow_not_found=True, recursive=True)
        yield from (p for p in self._children(self.lake.filesystem.get_file_info(selector)) if p.is_file())

    def _children(self, infos: list[pafs.FileInfo]) -> Iterator[LakePath]:
        prefix = len(self.lake.root) + 1
        for info in infos:
            yield LakePath(self.lake, info.path[prefix:], info)

    def glob(self, pattern: str) -> Iterator[LakePath]:
        """Segment-wise glob (``*``, ``?``, ``[]`` within one segment; no ``**``)."""
        level = [self]
        for segment in pattern.split("/"):
            level = [child for entry in level if entry.is_dir() for child in entry.iterdir() if fnmatch.fnmatchcase(child.name, segment)]
        yield from level

    def rglob(self, pattern: str) -> Iterator[LakePath]:
        yield from (p for p in self.walk_files() if fnmatch.fnmatchcase(p.name, pattern))

    # --- changes ------------------------------------------------------------------------------
    def mkdir(self, parents: bool = False, exist_ok: bool = False) -> None:
        """Nothing to do: object stores have no folders, a key's prefix exists once a key is under it."""

    def unlink(self, missing_ok: bool = False) -> None:
        try:
            self.lake.filesystem.delete_file(self.fs_path)
        except FileNotFoundError:
            if not missing_ok:
                raise

    def remove_tree(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.lake.filesystem.delete_dir(self.fs_path)


# --- helpers the engine calls with a Path or a LakePath ---------------------------------------


LakeRoot = Path | LakePath  # where the lake (or a table, a file) lives: a local folder or an object-store key


def as_path(value: str | os.PathLike | LakePath) -> Path | LakePath:
    """``Path(value)`` for local values, the value itself for a :class:`LakePath`, and a URI
    string becomes a :class:`LakePath` again."""
    if isinstance(value, LakePath):
        return value
    if isinstance(value, str) and is_uri(value):
        return _from_uri(value)
    return Path(value)


def _from_uri(uri: str) -> LakePath:
    """A URI below a lake root opened before (tables and files hand their URI around as strings)."""
    return open_lake(uri)


def is_remote(path: object) -> bool:
    return isinstance(path, LakePath)


def relative_name(path: Path | LakePath, root: Path | LakePath) -> str:
    """``path`` relative to ``root`` as text; the whole path when it is elsewhere (a local drop
    folder beside a remote lake)."""
    try:
        return str(path.relative_to(root))
    except (ValueError, TypeError):
        return str(path)


def storage_options(path: Path | LakePath | str) -> dict[str, str] | None:
    """delta-rs ``storage_options`` for a table path or URI: ``None`` on local disk."""
    if isinstance(path, LakePath):
        return dict(path.lake.storage_options)
    if isinstance(path, str) and is_uri(path):
        return _delta_options(path)
    return None


def _delta_options(uri: str) -> dict[str, str]:
    options = {name: os.environ[name] for name in _AWS_VARIABLES if os.environ.get(name)}
    if uri.startswith(("s3://", "s3a://")):
        options["aws_conditional_put"] = "etag"  # safe concurrent commits; never an unsafe rename
    return options


def scandir(folder: Path | LakePath | str) -> Iterator[Any]:
    """``os.scandir`` on local disk; :class:`LakePath` entries (same ``name``/``path``/``is_file``/
    ``is_dir``/``stat``) on a remote lake."""
    if isinstance(folder, LakePath):
        return folder.iterdir()
    return os.scandir(folder)


def local_dir(data_dir: LakeRoot | LakePath) -> Path:
    """Where the files of a data root that must be local live: the data root itself on local disk;
    for a remote lake ``$MEDALLION_LOCAL_DIR``, else a folder of the temp dir named after its URI."""
    if not isinstance(data_dir, LakePath):
        return Path(data_dir)
    explicit = os.environ.get(LOCAL_DIR_ENV)
    if explicit:
        return Path(explicit).expanduser().resolve()
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", data_dir.lake.uri)
    # Scoped by the lake's own id: a new bucket at the same URI never meets an old lake's files.
    return Path(tempfile.gettempdir()) / "medallion-local" / f"{slug}-{lake_id(data_dir)[:12]}"


LAKE_ID_KEY = "_medallion/lake_id"


def lake_id(data_dir: LakePath) -> str:
    """The remote lake's identity: a random id kept at ``_medallion/lake_id`` in the lake, written
    by the first process that asks (the one that reads it back after writing wins a race)."""
    return _lake_id(data_dir.lake.uri, _credentials_fingerprint())


@lru_cache(maxsize=32)
def _lake_id(uri: str, fingerprint: str) -> str:
    marker = _from_uri(uri) / LAKE_ID_KEY
    filesystem = marker.lake.filesystem
    for attempt in range(2):
        try:
            with filesystem.open_input_stream(marker.fs_path) as stream:
                value = stream.read().decode().strip()
            if value:
                return value
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise LakeError(f"data root {uri}: cannot read {LAKE_ID_KEY}: {exc}") from None
        if attempt == 0:
            try:
                with filesystem.open_output_stream(marker.fs_path) as stream:
                    stream.write(uuid.uuid4().hex.encode())
            except OSError as exc:
                raise LakeError(f"data root {uri}: cannot write {LAKE_ID_KEY} (or set {LOCAL_DIR_ENV}): {exc}") from None
    raise LakeError(f"data root {uri}: {LAKE_ID_KEY} is empty")


def local_lock_file(lock_file: Path | LakePath) -> Path:
    """Lock files stay on the host: a remote lock path maps into ``local_dir()/_locks``."""
    if not isinstance(lock_file, LakePath):
        return Path(lock_file)
    root = LakePath(lock_file.lake, "")
    return local_dir(root) / "_locks" / lock_file.key


def upload_file(local: Path, final: LakePath) -> None:
    """Copy a finished local file to ``final`` with one upload: the object appears whole or not at all."""
    filesystem = final.lake.filesystem
    with open(local, "rb") as source, filesystem.open_output_stream(final.fs_path) as target:
        shutil.copyfileobj(source, target, 8 << 20)


def upload_tree(local: Path, final: LakePath) -> None:
    """Upload every file below ``local`` to the same relative key below ``final`` (dot-files, which
    are temporary files, excepted); each object appears whole."""
    for file in sorted(p for p in Path(local).rglob("*") if p.is_file()):
        relative = file.relative_to(local)
        if not any(part.startswith(".") for part in relative.parts):
            upload_file(file, final / relative.as_posix())


@contextlib.contextmanager
def local_copy(path: Path | LakePath) -> Iterator[Path]:
    """A local file with the content of ``path``: the path itself on local disk, a temporary
    download (same file name, removed afterwards) for a remote object."""
    if not isinstance(path, LakePath):
        yield Path(path)
        return
    with tempfile.TemporaryDirectory(prefix="medallion-read-") as folder:
        local = Path(folder) / path.name
        with path.lake.filesystem.open_input_stream(path.fs_path) as source, open(local, "wb") as target:
            shutil.copyfileobj(source, target, 8 << 20)
        yield local


def remove_tree(path: Path | LakePath) -> None:
    if isinstance(path, LakePath):
        path.remove_tree()
    else:
        shutil.rmtree(path, ignore_errors=True)


# --- Delta tables: a path (local or remote) plus the storage options of its lake --------------


def open_delta(path: Path | LakePath | str, **kwargs: Any) -> DeltaTable:
    return DeltaTable(str(path), storage_options=storage_options(path), **kwargs)


def is_delta(path: Path | LakePath | str) -> bool:
    return DeltaTable.is_deltatable(str(path), storage_options=storage_options(path))


WriteMode = Literal["error", "append", "overwrite", "ignore"]
SchemaMode = Literal["merge", "overwrite"]


def write_delta(
    target: Path | LakePath | str | DeltaTable,
    data: pa.Table | pa.RecordBatchReader,
    *,
    mode: WriteMode,
    schema_mode: SchemaMode | None = None,
    partition_by: Sequence[str] | None = None,
    predicate: str | None = None,
    configuration: Mapping[str, str | None] | None = None,
    commit_properties: CommitProperties | None = None,
    target_file_size: int | None = None,
) -> None:
    """``write_deltalake`` of a table or a batch reader on a path of the lake (an open
    ``DeltaTable`` carries its own storage); ``predicate`` with ``mode="overwrite"`` replaces only
    the rows it matches."""
    options: dict[str, Any] = {
        "mode": mode,
        "schema_mode": schema_mode,
        "partition_by": list(partition_by) if partition_by else None,
        "predicate": predicate,
        "configuration": configuration,
        "commit_properties": commit_properties,
        "target_file_size": target_file_size,
    }
    options = {name: value for name, value in options.items() if value is not None}
    if isinstance(target, DeltaTable):
        write_deltalake(target, data, **options)
    else:
        write_deltalake(str(target), data, storage_options=storage_options(target), **options)


def compact(table: DeltaTable, *, target_size: int | None = None) -> dict[str, Any]:
    """Bin-pack the table's small files into larger ones (same rows, one commit); its metrics."""
    return table.optimize.compact(target_size=target_size)


def delete_rows(table: DeltaTable, *, predicate: str | None = None) -> dict[str, Any]:
    """Delete the rows ``predicate`` matches (every row without one) in one commit; its metrics."""
    return table.delete(predicate)
