"""The data root on S3 (moto's server): paths, landing files, Delta tables, locks, secrets."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.fs as pafs
import pytest

from medallion_assets.engine.base.reader import read_landing_file
from medallion_assets.engine.base.schema import BaseLoadError
from medallion_assets.engine.storage.files import exclusive_lock, write_table_file
from medallion_assets.engine.storage.lake import LakeError, LakePath, is_delta, open_delta, storage_options, write_delta
from medallion_assets.engine.storage.paths import (
    PathOutsideDataRoot,
    inside,
    landing_file_path,
    list_delta_tables,
    list_landing_files,
    resolve_data_dir,
)
from medallion_assets_tests.s3_server import SECRET_KEY


def _keys(lake) -> list[str]:
    root = resolve_data_dir(lake.uri)
    infos = root.lake.filesystem.get_file_info(pafs.FileSelector(lake.bucket, recursive=True))
    return sorted(i.path for i in infos if i.type == pafs.FileType.File)


def test_a_uri_root_is_a_lake_path_and_a_local_root_stays_a_path(s3_lake, tmp_path):
    root = resolve_data_dir(s3_lake.uri)
    assert isinstance(root, LakePath) and str(root) == s3_lake.uri
    assert str(root / "base" / "orders") == f"{s3_lake.uri}/base/orders"
    assert (root / "base" / "orders").parent.name == "base"
    assert isinstance(resolve_data_dir(str(tmp_path)), Path)
    assert SECRET_KEY not in repr(root) and SECRET_KEY not in repr(root.lake)


def test_unusable_data_root_uris_are_refused_with_the_reason():
    with pytest.raises(LakeError, match="not in the URI") as caught:
        resolve_data_dir("s3://AKIAXX:very-secret@bucket/lake")
    assert "very-secret" not in str(caught.value)
    with pytest.raises(LakeError, match="expected a local path or one of s3://"):
        resolve_data_dir("ftp://host/lake")
    with pytest.raises(LakeError, match="names no bucket"):
        resolve_data_dir("s3:///")


def test_inside_refuses_keys_that_leave_the_root(s3_lake):
    root = resolve_data_dir(s3_lake.uri)
    assert str(inside(root, "base/x")) == f"{s3_lake.uri}/base/x"
    for bad in ("../other", "/etc/x", "base/../../x", "s3://elsewhere/x"):
        with pytest.raises(PathOutsideDataRoot):
            inside(root, bad)


def test_landing_files_are_written_whole_listed_and_read_back(s3_lake):
    root = resolve_data_dir(s3_lake.uri)
    table = pa.table({"id": [1, 2, 3], "name": ["a", "b", "c"]})
    day = date(2026, 1, 2)
    for fmt in ("csv", "parquet", "json"):
        final = landing_file_path(root, "shop", "customer", "full", day, extracted_at=datetime(2026, 1, 2, 22, 0, 0), fmt=fmt)
        write_table_file(table, final, fmt)
    files = list_landing_files(root, "shop", "customer")
    assert [f.format for f in files] == ["csv", "json", "parquet"]  # same time and load type: by name
    assert all(isinstance(f.path, LakePath) for f in files)
    for f in files:
        assert read_landing_file(f.path, f.format, {}).sort_by("id").column("id").to_pylist() == [1, 2, 3]
    # one object per file, no temporary object left anywhere
    keys = _keys(s3_lake)
    assert len(keys) == 3 and not any("/." in k for k in keys)


def test_a_broken_csv_names_its_uri_and_line(s3_lake):
    root = resolve_data_dir(s3_lake.uri)
    final = landing_file_path(root, "shop", "customer", "full", date(2026, 1, 2), extracted_at=datetime(2026, 1, 2, 22), fmt="csv")
    stream = root.lake.filesystem.open_output_stream(final.fs_path)
    stream.write(b'id,name\n1,a\n"2,b\n3,c\n')
    stream.close()
    with pytest.raises(BaseLoadError) as caught:
        read_landing_file(final, "csv", {})
    message = str(caught.value)
    assert str(final) in message and "medallion-read-" not in message
    assert "line" in message.lower()


def test_a_landing_file_gone_since_listing_is_a_clear_error(s3_lake):
    root = resolve_data_dir(s3_lake.uri)
    gone = landing_file_path(root, "shop", "customer", "full", date(2026, 1, 2), extracted_at=datetime(2026, 1, 2, 22), fmt="parquet")
    with pytest.raises(BaseLoadError, match=f"{gone}: cannot read parquet landing file"):
        read_landing_file(gone, "parquet", {})
    with pytest.raises(BaseLoadError, match="cannot read csv landing file"):
        read_landing_file(gone.with_name(gone.stem + ".csv"), "csv", {})


def test_delta_tables_round_trip_with_conditional_commits(s3_lake):
    root = resolve_data_dir(s3_lake.uri)
    options = storage_options(root)
    assert options["aws_conditional_put"] == "etag"
    assert not any("UNSAFE_RENAME" in k.upper() for k in options)
    path = root / "base" / "orders"
    assert not is_delta(path)
    write_delta(path, pa.table({"id": [1, 2]}), mode="append")
    write_delta(path, pa.table({"id": [3]}), mode="append")
    write_delta(root / "base" / "_state" / "orders", pa.table({"k": [1]}), mode="append")
    assert open_delta(path).to_pyarrow_table().num_rows == 3
    assert [(layer, name) for layer, name, _ in list_delta_tables(root)] == [("base", "orders")]


def test_two_writers_at_the_same_version_do_not_lose_a_commit(s3_lake):
    """Both open version 0 and append: conditional puts make one of them retry at version 2."""
    root = resolve_data_dir(s3_lake.uri)
    path = root / "base" / "events"
    write_delta(path, pa.table({"id": [0]}), mode="append")
    first, second = open_delta(path), open_delta(path)
    write_delta(first, pa.table({"id": [1]}), mode="append")
    write_delta(second, pa.table({"id": [2]}), mode="append")
    table = open_delta(path)
    assert table.version() == 2
    assert sorted(table.to_pyarrow_table().column("id").to_pylist()) == [0, 1, 2]


def test_locks_of_a_remote_lake_are_local_files(s3_lake):
    root = resolve_data_dir(s3_lake.uri)
    with exclusive_lock(root / "base" / "_locks" / "orders.lock"):
        assert (s3_lake.local_dir / "_locks" / "base" / "_locks" / "orders.lock").is_file()
    assert _keys(s3_lake) == []


def _append_worker(uri: str, writer: int, count: int, barrier, errors) -> None:
    try:
        barrier.wait(timeout=120)
        for i in range(count):
            write_delta(resolve_data_dir(uri) / "base" / "shared", pa.table({"writer": [writer], "i": [i]}), mode="append")
    except BaseException as exc:  # reported to the parent
        errors.put(f"writer {writer}: {type(exc).__name__}: {exc}")
        raise


@pytest.mark.slow  # three spawned processes
def test_writers_in_separate_processes_lose_no_commit(s3_lake):
    """Three processes append to one table at once, with no engine lock: only S3's conditional
    writes order their commits. Every append is a version of its own and every row is there."""
    import multiprocessing

    root = resolve_data_dir(s3_lake.uri)
    write_delta(root / "base" / "shared", pa.table({"writer": [-1], "i": [-1]}), mode="append")
    context = multiprocessing.get_context("spawn")
    barrier, errors = context.Barrier(3), context.Queue()
    workers = [context.Process(target=_append_worker, args=(s3_lake.uri, w, 5, barrier, errors)) for w in range(3)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=300)
    assert errors.empty(), errors.get()
    assert [w.exitcode for w in workers] == [0, 0, 0]
    table = open_delta(root / "base" / "shared")
    assert table.version() == 15
    rows = sorted(zip(*table.to_pyarrow_table().select(["writer", "i"]).to_pydict().values(), strict=True))
    assert rows == [(-1, -1)] + [(w, i) for w in range(3) for i in range(5)]


def test_the_package_opens_delta_tables_only_through_lake_py():
    """A ``DeltaTable(...)`` or ``write_deltalake(...)`` elsewhere would miss the storage options
    of a remote lake (and work only on local disk): every call goes through engine/storage/lake.py."""
    import re

    package = Path(__file__).resolve().parents[2] / "medallion_assets"
    direct = re.compile(r"\bDeltaTable(\.is_deltatable)?\(|\bwrite_deltalake\(")
    offenders = [
        f"{path.relative_to(package)}:{number}"
        for path in sorted(package.rglob("*.py"))
        if path.name != "lake.py"
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if direct.search(line)
    ]
    assert offenders == [], "use open_delta / is_delta / write_delta from medallion_assets.engine.storage.lake"
