"""Hostile input: a catalogue of bad files, bad metadata and bad SQL, one test per case.

Each case asks for what the reliability requirement asks for: a clear error that names the file
(and the position where one exists) or the bad rows quarantined; nothing already stored is lost;
other assets keep running; nothing leaves the data root. Where the code falls short today the test
states the wanted behaviour and is marked ``xfail(strict=True)`` with the precise gap, so the suite
stays green and a fix turns the mark into an error that asks for its removal.
"""

from __future__ import annotations

import io
import re
from datetime import date, datetime
from pathlib import Path

import dagster as dg
import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from deltalake import DeltaTable
from pydantic import ValidationError

from medallion_assets.base.assets import build_base_asset
from medallion_assets.common.resources import LakehouseResource
from medallion_assets.engine.base import BaseLoadError, BaseTable, SchemaError, load_partition
from medallion_assets.engine.base import reader as base_reader
from medallion_assets.engine.base.model import load_base_file
from medallion_assets.engine.curated import parse_select
from medallion_assets.engine.curated.errors import CuratedError
from medallion_assets.engine.curated.model import load_curated_model
from medallion_assets.engine.curated.sql import TableRef, sandbox
from medallion_assets.engine.landing.extract import extract_object
from medallion_assets.engine.landing.sources import SourceSystem, load_source_file
from medallion_assets.engine.metadata import MetadataError
from medallion_assets.engine.storage.paths import PathOutsideDataRoot, inside, landing_file_path

DAY1, DAY2 = date(2026, 1, 1), date(2026, 1, 2)
GOOD_CSV = b"customer_id,segment,amount\n1,a,10\n2,b,20\n"


def customer_table(**overrides) -> BaseTable:
    spec = {
        "object": "customer", "source": "erp", "name": "erp_customer",
        "landing": [{"source": "erp", "object": "customer"}], "format": "csv",
        "write_behaviour": "scd1", "business_keys": ["customer_id"],
    }
    return BaseTable.model_validate({**spec, **overrides})


def land(root: Path, day: date, data: bytes, fmt: str = "csv", obj: str = "customer") -> Path:
    """Write raw bytes where the landing convention puts a full extract of ``day`` (22:00)."""
    path = landing_file_path(root, "erp", obj, "full", day, extracted_at=datetime(day.year, day.month, day.day, 22), fmt=fmt)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def parquet_bytes(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table, sink)
    return sink.getvalue()


def stored(root: Path, name: str = "erp_customer") -> tuple[int, list[dict]]:
    """(Delta version, rows without load timestamps) of a base table."""
    dt = DeltaTable(str(root / "base" / name))
    rows = dt.to_pyarrow_table().drop_columns(["lh_created_date", "lh_modified_date"]).to_pylist()
    return dt.version(), sorted(rows, key=lambda r: repr(sorted(r.items())))


@pytest.fixture
def day1(tmp_path) -> tuple[Path, tuple[int, list[dict]]]:
    """A data root whose base table holds a good day-1 load; returns (root, stored snapshot)."""
    land(tmp_path, DAY1, GOOD_CSV)
    load_partition(customer_table(), tmp_path, DAY1)
    return tmp_path, stored(tmp_path)


def assert_rejected(root: Path, before, data: bytes, fmt: str = "csv", match: str = "", table: BaseTable | None = None) -> BaseLoadError:
    """Land ``data`` on day 2; the load must fail naming the file, and leave the table as it was."""
    path = land(root, DAY2, data, fmt)
    with pytest.raises(BaseLoadError) as info:
        load_partition(table or customer_table(format=fmt), root, DAY2)
    message = str(info.value)
    assert path.name in message
    # Match the rest of the message, not the (test-named) path.
    rest = message.replace(str(path), "<file>").replace(path.relative_to(root).as_posix(), "<file>")
    assert re.search(match, rest), rest[:2000]
    assert stored(root) == before
    return info.value


# --- malformed files -------------------------------------------------------------------------


def test_csv_unbalanced_quote(day1):
    root, before = day1
    assert_rejected(root, before, b'customer_id,segment,amount\n1,"a,10\n2,b,20\n', match=r"(?i)line 2|quote")


def test_csv_wrong_field_count(day1):
    root, before = day1
    assert_rejected(
        root,
        before,
        b"customer_id,segment,amount\n1,a,10,99\n2,b\n",
        match=r"(?i)line:? [23]\b.*\n.*\n.*Expected Number of Columns: 3",
    )


def test_broken_json_names_file_and_byte(day1):
    root, before = day1
    assert_rejected(
        root, before, b'[{"customer_id": 1, "segment": "a"', fmt="json", match=r"Malformed JSON.*at byte \d+"
    )


def test_truncated_parquet_names_file(day1):
    root, before = day1
    whole = parquet_bytes(pa.table({"customer_id": [1, 2], "segment": ["a", "b"], "amount": [10, 20]}))
    assert_rejected(
        root, before, whole[: len(whole) // 2], fmt="parquet", match="cannot read parquet landing file.*corrupted"
    )


@pytest.mark.parametrize(
    "fmt",
    [
        "csv",
        "json",
        "parquet",
    ],
)
def test_empty_file_says_empty(day1, fmt):
    root, before = day1
    assert_rejected(root, before, b"", fmt=fmt, match=r"(?i)empty|0 bytes")


@pytest.mark.parametrize("behaviour", ["scd1", "overwrite"])
def test_header_only_file_loses_nothing(tmp_path, behaviour):
    table = customer_table(write_behaviour=behaviour)
    land(tmp_path, DAY1, GOOD_CSV)
    load_partition(table, tmp_path, DAY1)
    before = stored(tmp_path)
    path = land(tmp_path, DAY2, b"customer_id,segment,amount\n")
    # A full extract with no rows would remove every stored row: refused, naming the file.
    with pytest.raises(BaseLoadError, match=rf"{path.name}.*no rows.*allow_empty_full_extract"):
        load_partition(table, tmp_path, DAY2)
    assert stored(tmp_path) == before


# --- encodings and sizes ---------------------------------------------------------------------


def test_non_utf8_names_file_and_line(day1):
    root, before = day1
    error = assert_rejected(
        root, before, "customer_id,segment,amount\n1,caf\xe9,10\n".encode("latin-1"), match="Line: 2"
    )
    assert "not utf-8" in str(error)


def test_byte_order_mark_is_ignored(day1):
    root, _ = day1
    land(root, DAY2, b"\xef\xbb\xbf" + b"customer_id,segment,amount\n1,a,11\n2,b,20\n")
    load_partition(customer_table(), root, DAY2)
    dt = DeltaTable(str(root / "base" / "erp_customer"))
    assert dt.schema().to_arrow().field(0).name == "customer_id"
    rows = {r["customer_id"]: r["amount"] for r in dt.to_pyarrow_table().to_pylist()}
    assert rows == {1: 11, 2: 20}


def test_ten_megabyte_line_names_file_line_and_limit(day1):
    root, before = day1
    error = assert_rejected(
        root,
        before,
        b"customer_id,segment,amount\n1," + b"x" * (10 << 20) + b",10\n",
        match=r"Line: 1(.|\n)*Maximum line size of 2000000 bytes exceeded",
    )
    assert len(str(error)) < 20_000  # DuckDB shortens the quoted line; the 10 MB do not reach the UI


# --- schema change ---------------------------------------------------------------------------


def test_new_column_is_added(day1):
    root, _ = day1
    land(root, DAY2, b"customer_id,segment,amount,region\n1,a,10,north\n2,b,20,south\n")
    load_partition(customer_table(), root, DAY2)
    rows = {r["customer_id"]: (r["amount"], r["region"]) for r in stored(root)[1]}
    assert rows == {1: (10, "north"), 2: (20, "south")}


def test_missing_column_is_kept_as_null(day1):
    root, _ = day1
    land(root, DAY2, b"customer_id,segment\n1,a\n2,b\n")
    load_partition(customer_table(), root, DAY2)
    version, rows = stored(root)
    assert "amount" in rows[0] and {r["amount"] for r in rows} == {None}


def test_incompatible_text_value_names_file_and_column(day1):
    root, before = day1
    assert_rejected(
        root,
        before,
        b"customer_id,segment,amount\n1,a,ten\n2,b,20\n",
        match=r"column 'amount': a value does not fit the stored type int64.*'ten'",
    )


def test_incompatible_parquet_type_names_file_and_column(day1):
    root, before = day1
    data = parquet_bytes(pa.table({"customer_id": [1, 2], "segment": ["a", "b"], "amount": ["10", "20"]}))
    error = assert_rejected(
        root, before, data, fmt="parquet", match=r"column 'amount' changed type from int64 \(stored\) to string"
    )
    assert isinstance(error, SchemaError)


# --- business keys ---------------------------------------------------------------------------


def test_duplicate_business_key(day1):
    """Two different rows of one key that nothing orders are set aside, not guessed between."""
    root, _ = day1
    land(root, DAY2, b"customer_id,segment,amount\n1,x,10\n1,y,10\n2,b,20\n2,b,20\n")
    result = load_partition(customer_table(), root, DAY2)
    assert result.quarantined == 2  # both versions of key 1; the exact duplicate of key 2 is just dropped
    aside = DeltaTable(str(root / "base" / "_quarantine" / "erp_customer")).to_pyarrow_table().to_pylist()
    assert sorted((r["customer_id"], r["segment"], r["lh_quarantine_rules"]) for r in aside) == [
        (1, "x", "ambiguous_business_key"),
        (1, "y", "ambiguous_business_key"),
    ]


def test_null_business_key_names_file_and_row(day1):
    root, before = day1
    assert_rejected(
        root,
        before,
        b"customer_id,segment,amount\n1,a,10\n,b,20\n",
        match="row 2: business key column 'customer_id' is null",
    )


def test_failing_quality_rule_quarantines_rows(day1):
    root, _ = day1
    table = customer_table(quality_rules=[{"name": "segment_known", "column": "segment", "allowed_values": ["a", "b"]}])
    land(root, DAY2, b"customer_id,segment,amount\n1,a,11\n2,zz,20\n")
    result = load_partition(table, root, DAY2)
    assert result.quarantined == 1
    q = DeltaTable(str(root / "base" / "_quarantine" / "erp_customer")).to_pyarrow_table().to_pylist()
    assert [(r["customer_id"], r["lh_quarantine_rules"]) for r in q] == [(2, "segment_known")]
    rows = {r["customer_id"]: (r["segment"], r["amount"]) for r in stored(root)[1]}
    assert rows == {1: ("a", 11), 2: ("b", 20)}  # key 2 keeps its stored row


# --- a landing file vanishes -----------------------------------------------------------------


def test_file_disappearing_after_listing(day1, monkeypatch):
    root, before = day1
    path = land(root, DAY2, GOOD_CSV)
    listed = base_reader.list_landing_files

    def list_then_delete(*args, **kwargs):
        files = listed(*args, **kwargs)
        for f in files:
            f.path.unlink()
        return files

    monkeypatch.setattr(base_reader, "list_landing_files", list_then_delete)
    with pytest.raises(BaseLoadError, match="cannot read csv landing file") as info:
        load_partition(customer_table(), root, DAY2)
    assert str(path) in str(info.value)
    assert stored(root) == before


# --- other assets keep running ----------------------------------------------------------------


def test_bad_asset_fails_alone(tmp_path):
    land(tmp_path, DAY2, GOOD_CSV)
    bad_path = land(tmp_path, DAY2, b'[{"product_id": 1,', fmt="json", obj="product")
    good = build_base_asset(table=customer_table())
    bad = build_base_asset(
        table=customer_table(
            object="product",
            name="erp_product",
            format="json",
            landing=[{"source": "erp", "object": "product"}],
            business_keys=["product_id"],
        )
    )
    result = dg.materialize(
        [good, bad],
        partition_key=DAY2.isoformat(),
        raise_on_error=False,
        resources={"lakehouse": LakehouseResource(data_dir=str(tmp_path))},
    )
    assert result.asset_materializations_for_node("base__erp_customer")
    [failure] = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    assert failure.step_key == "base__erp_product"
    assert bad_path.name in failure.step_failure_data.user_failure_data.description
    assert "Malformed JSON" in failure.step_failure_data.user_failure_data.description
    assert not (tmp_path / "base" / "erp_product").exists()


# --- metadata leaving the data root ------------------------------------------------------------


@pytest.fixture
def outside(tmp_path) -> Path:
    """A folder next to the data root, holding a readable DuckDB database and a CSV."""
    folder = tmp_path / "outside"
    folder.mkdir()
    con = duckdb.connect(str(folder / "secret.duckdb"))
    con.execute("create table customer as select 1 as customer_id")
    con.close()
    (folder / "secret.csv").write_text("ts\n2026-01-02 10:00:00\n")
    return folder


@pytest.fixture
def root(tmp_path) -> Path:
    (tmp_path / "root" / "sources").mkdir(parents=True)
    return tmp_path / "root"


def erp(**connection) -> SourceSystem:
    return SourceSystem.model_validate(
        {
            "source": "erp",
            "connection": connection,
            "objects": {
                "customer": {"extract_mode": "full", "format": "csv", "file_pattern": "*.csv"}
                if connection["type"] == "drop_folder"
                else {"extract_mode": "full", "format": "csv"}
            },
        }
    )


def test_inside_refuses_escapes(root, outside):
    (root / "link").symlink_to(outside)
    for relative in ("../outside/secret.csv", str(outside / "secret.csv"), "link/secret.csv", "sources/../../outside"):
        with pytest.raises(PathOutsideDataRoot, match="data root"):
            inside(root, relative)


@pytest.mark.parametrize("how", ["dotdot", "absolute"])
def test_source_database_outside_root_is_refused_when_metadata_loads(how, outside):
    database = {"dotdot": "../outside/secret.duckdb", "absolute": str(outside / "secret.duckdb")}[how]
    with pytest.raises(ValidationError, match="must be relative to the data root"):
        erp(type="duckdb", database=database)


def test_source_database_behind_a_symlink_is_refused_at_extract(root, outside):
    (root / "sources" / "link.duckdb").symlink_to(outside / "secret.duckdb")
    system = erp(type="duckdb", database="sources/link.duckdb")
    with pytest.raises(PathOutsideDataRoot, match="data root"):
        extract_object(root, system, system.objects["customer"], DAY2, partition_start=DAY1)
    assert not (root / "landing").exists()


def test_drop_folder_outside_root_is_refused(root, outside):
    with pytest.raises(ValidationError, match="may not contain '..'"):
        erp(type="drop_folder", folder="../outside")
    (root / "drops").symlink_to(outside)
    system = erp(type="drop_folder", folder="drops")
    with pytest.raises(PathOutsideDataRoot, match="leaves the data root"):
        extract_object(root, system, system.objects["customer"], DAY2, partition_start=DAY1)
    assert not (root / "landing").exists()


def test_source_metadata_path_escape_is_a_metadata_error(tmp_path):
    path = tmp_path / "erp.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "source": "erp",
                "connection": {"type": "duckdb", "database": "../outside/x.duckdb"},
                "objects": {"customer": {"extract_mode": "full", "format": "csv"}},
            }
        )
    )
    with pytest.raises(MetadataError, match=r"erp\.yaml.*connection\.(duckdb\.)?database"):
        load_source_file(path)


@pytest.mark.parametrize("verb", ["copy", "read"])
def test_clock_query_cannot_touch_files(root, outside, verb):
    query = {
        "copy": f"COPY (SELECT 1) TO '{outside / 'leak.csv'}'",
        "read": f"SELECT ts::TIMESTAMP FROM read_csv('{outside / 'secret.csv'}')",
    }[verb]
    expected = {"copy": "only a single read-only SELECT", "read": "may not call table functions"}[verb]
    with pytest.raises(ValidationError, match=expected):
        erp(type="duckdb", database="sources/erp.duckdb", clock_query=query)
    assert not (outside / "leak.csv").exists()


def write_model(folder: Path, model: dict, files: dict[str, str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model.yaml").write_text(yaml.safe_dump(model))
    for name, text in files.items():
        (folder / name).write_text(text)
    return folder


@pytest.mark.parametrize("how", ["dotdot", "absolute", "symlink"])
def test_curated_sql_file_outside_folder_is_refused(tmp_path, outside, how):
    (outside / "evil.sql").write_text("SELECT 1 AS customer_key")
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "link.sql").symlink_to(outside / "evil.sql")
    sql = {"dotdot": "../outside/evil.sql", "absolute": str(outside / "evil.sql"), "symlink": "link.sql"}[how]
    write_model(folder, {"dimensions": {"customer": {"sql": sql}}}, {})
    with pytest.raises(MetadataError, match=r"model\.yaml: dimension 'customer': field 'sql'.*is outside"):
        load_curated_model(folder)


# --- identifiers smuggling SQL ------------------------------------------------------------------

EVIL = 'x"; DROP TABLE base.erp_customer; --'


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("name", EVIL),
        ("business_keys", [EVIL]),
        ("columns", ["customer_id", EVIL]),
        ("translations", {"segment": EVIL}),
        ("column_types", {"amount": "INT); DROP TABLE x; --"}),
        ("column_types", {EVIL: "INT"}),
        ("quality_rules", [{"name": "r", "column": EVIL, "not_null": True}]),
        ("delete_condition", {"column": EVIL, "equals": "D"}),
        ("landing", ["erp/customer'; --"]),
    ],
)
def test_base_metadata_identifier_injection_is_refused(tmp_path, field, value):
    spec = {"format": "csv", "write_behaviour": "scd1", "business_keys": ["customer_id"], field: value}
    path = tmp_path / "erp.yaml"
    path.write_text(yaml.safe_dump({"source": "erp", "tables": {"customer": spec}}))
    with pytest.raises(
        MetadataError, match=rf"erp\.yaml: table 'customer': .*{field}|erp\.yaml: table 'customer': field"
    ):
        load_base_file(path, sources_folder=tmp_path / "no_sources")


def test_hostile_landing_column_names_stay_data(day1):
    root, _ = day1
    header = b'customer_id,"segment""; DROP TABLE base.erp_customer; --",amount\n'
    land(root, DAY2, header + b"1,a,11\n2,b,20\n")
    table = customer_table(translations={'segment"; DROP TABLE base.erp_customer; --': "segment"})
    load_partition(table, root, DAY2)
    rows = {r["customer_id"]: (r["segment"], r["amount"]) for r in stored(root)[1]}
    assert rows == {1: ("a", 11), 2: ("b", 20)}


@pytest.mark.parametrize("field", ["table", "watermark_column", "primary_key", "columns"])
def test_source_metadata_identifier_injection_is_refused(tmp_path, field):
    obj = {"extract_mode": "full", "format": "csv", field: [EVIL] if field in ("primary_key", "columns") else EVIL}
    path = tmp_path / "erp.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "source": "erp",
                "connection": {"type": "duckdb", "database": "sources/erp.duckdb"},
                "objects": {"customer": obj},
            }
        )
    )
    with pytest.raises(MetadataError, match=rf"erp\.yaml: object 'customer': field '{field}.*lower snake_case"):
        load_source_file(path)


def test_curated_entity_name_injection_is_refused(tmp_path):
    folder = write_model(tmp_path / "model", {"dimensions": {EVIL: {"sql": "d.sql"}}}, {"d.sql": "SELECT 1 AS x_key"})
    with pytest.raises(MetadataError, match=r"model\.yaml.*lower snake_case"):
        load_curated_model(folder)


# --- curated SQL that writes, attaches, copies or reads files ------------------------------------


@pytest.mark.parametrize(
    "sql",
    [
        "INSERT INTO base.erp_customer VALUES (1)",
        "CREATE TABLE curated.x AS SELECT 1",
        "SELECT 1; DROP TABLE base.erp_customer",
        "ATTACH '/tmp/other.duckdb' AS other",
        "SELECT * FROM other.main.t",
        "COPY base.erp_customer TO '/tmp/leak.csv'",
        "EXPORT DATABASE '/tmp/leak'",
        "SET enable_external_access = true",
        "INSTALL httpfs",
        "SELECT * FROM read_csv('/etc/passwd')",
        "SELECT * FROM '/etc/passwd'",
        "WITH x AS (SELECT * FROM read_text('/etc/hostname')) SELECT * FROM x",
        "SELECT * FROM base.erp_customer c, LATERAL (SELECT * FROM read_blob('/etc/hostname'))",
        "SELECT * FROM base.erp_customer WHERE customer_id IN (SELECT * FROM read_parquet('/x.parquet'))",
        "SELECT * FROM glob('/*')",
        "SELECT * FROM query_table('base.erp_customer')",
        "SELECT * FROM landing.erp_customer",
        'SELECT * FROM base."erp_customer; DROP TABLE x"',
    ],
)
def test_curated_sql_is_read_only_select_over_the_model(sql):
    with pytest.raises(CuratedError, match=r"^dim_evil\.sql: "):
        parse_select(sql, source="dim_evil.sql")


def test_curated_model_with_writing_sql_names_the_sql_file(tmp_path):
    folder = write_model(
        tmp_path / "model",
        {"dimensions": {"customer": {}}},
        {"dim_customer.sql": "COPY (SELECT 1 AS customer_key) TO '/tmp/leak.csv'"},
    )
    with pytest.raises(MetadataError, match=r"dim_customer\.sql: SQL rejected"):
        load_curated_model(folder)


def test_curated_sandbox_has_no_file_access(tmp_path, outside):
    data = {TableRef("base", "erp_customer"): pa.table({"customer_id": [1]})}
    with sandbox(tmp_path, list(data), source="x.sql", arrow=data) as con:
        for statement in (
            f"COPY (SELECT 1) TO '{outside / 'leak.csv'}'",
            f"SELECT * FROM read_csv('{outside / 'secret.csv'}')",
            f"ATTACH '{outside / 'secret.duckdb'}' AS s",
            "SET enable_external_access = true",
        ):
            with pytest.raises(duckdb.Error):
                con.execute(statement)
        assert con.execute("SELECT count(*) FROM base.erp_customer").fetchone() == (1,)
    assert not (outside / "leak.csv").exists()
