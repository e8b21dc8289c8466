"""The sample ERP in PostgreSQL (``ERP_DATABASE_URL``): the whole pipeline runs against it and
gives the same base and curated tables as the DuckDB sample with the same seed; and so does the
same PostgreSQL ERP with the lake in a bucket of an S3 server (``MEDALLION_DATA_DIR=s3://...``)."""

from datetime import timedelta

import dagster as dg
import duckdb
import pyarrow as pa
import pytest
from deltalake import DeltaTable

from medallion_assets.definitions import defs
from medallion_assets.engine.base import load_base_tables
from medallion_assets.engine.storage.lake import open_delta
from medallion_assets.engine.storage.paths import resolve_data_dir
from medallion_assets.sample import advance_sample, generate_sample
from medallion_assets_tests.s3_server import create_bucket, s3_environment
from medallion_assets_tests.sql_servers import temporary_database

SIZES = {"seed": 5, "days": 3, "customers": 200, "order_lines": 2000}
ERP_TABLES = [t for t in load_base_tables() if t.source == "erp"]
# Set when a row is written, so they differ between two runs; everything else must match.
WRITE_TIMES = {"lh_created_date", "lh_modified_date"}


def run_sample(data_dir, url: str | None, environment: dict[str, str] | None = None) -> None:
    """Generate N days, move the source one day on, and run medallion_daily for every day."""
    mp = pytest.MonkeyPatch()
    for name, value in (environment or {}).items():
        mp.setenv(name, value)
    mp.setenv("MEDALLION_DATA_DIR", str(data_dir))
    if url:
        mp.setenv("ERP_DATABASE_URL", url)
    else:
        mp.delenv("ERP_DATABASE_URL", raising=False)
    try:
        data_dir = resolve_data_dir(str(data_dir))
        days = generate_sample(data_dir, log=lambda m: None, **SIZES)
        days += advance_sample(data_dir, days=1, log=lambda m: None)
        assert days[-1] == days[0] + timedelta(days=SIZES["days"])
        job = defs.resolve_job_def("medallion_daily")
        with dg.DagsterInstance.ephemeral() as instance:
            for day in days:
                assert job.execute_in_process(partition_key=day.isoformat(), instance=instance).success
    finally:
        mp.undo()


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("pg_sample")
    with temporary_database("postgresql", tmp) as url:
        run_sample(tmp / "duckdb_lake", None)
        run_sample(tmp / "postgres_lake", url)
        yield tmp / "duckdb_lake", tmp / "postgres_lake", url


@pytest.fixture(scope="module")
def s3_run(tmp_path_factory, s3_server):
    """The PostgreSQL ERP again, in a fresh database, with the lake in a bucket."""
    tmp = tmp_path_factory.mktemp("pg_s3_sample")
    bucket = "medallion-pg-sample"
    create_bucket(s3_server, bucket)
    environment = {**s3_environment(s3_server), "MEDALLION_LOCAL_DIR": str(tmp / "local")}
    with temporary_database("postgresql", tmp) as url, pytest.MonkeyPatch.context() as mp:
        run_sample(f"s3://{bucket}/lake", url, environment)
        for name, value in environment.items():
            mp.setenv(name, value)  # the tests below read the bucket
        yield resolve_data_dir(f"s3://{bucket}/lake")


def table_rows(path) -> pa.Table:
    table = open_delta(path).to_pyarrow_table()
    table = table.select([c for c in table.column_names if c not in WRITE_TIMES])
    return table.sort_by([(c, "ascending") for c in table.column_names if not pa.types.is_binary(table.schema.field(c).type)])


@pytest.mark.slow
@pytest.mark.parametrize("name", [t.name for t in ERP_TABLES] + ["fact_sales"])
def test_postgres_sample_gives_the_same_tables_as_the_duckdb_sample(runs, name):
    duckdb_lake, postgres_lake, _ = runs
    layer = "curated" if name.startswith("fact_") else "base"
    from_duckdb, from_postgres = table_rows(duckdb_lake / layer / name), table_rows(postgres_lake / layer / name)
    assert from_postgres.num_rows > 0
    assert from_postgres.schema == from_duckdb.schema
    assert from_postgres.to_pylist() == from_duckdb.to_pylist()


@pytest.mark.slow
@pytest.mark.parametrize("name", [t.name for t in ERP_TABLES] + ["fact_sales"])
def test_postgres_sample_with_the_lake_on_s3_gives_the_same_tables(runs, s3_run, name):
    duckdb_lake = runs[0]
    layer = "curated" if name.startswith("fact_") else "base"
    local, remote = table_rows(duckdb_lake / layer / name), table_rows(s3_run / layer / name)
    assert str(s3_run / layer / name).startswith("s3://") and remote.num_rows > 0
    assert remote.schema == local.schema
    assert remote.to_pylist() == local.to_pylist()


@pytest.mark.slow
@pytest.mark.parametrize("table", ERP_TABLES, ids=lambda t: t.name)
def test_base_equals_the_postgres_source_final_state(runs, table):
    import adbc_driver_postgresql.dbapi as adbc

    _, postgres_lake, url = runs
    with adbc.connect(url) as pg:
        cursor = pg.cursor()
        cursor.execute(f'SELECT DISTINCT * FROM "{table.object}"')
        source = cursor.fetch_arrow_table()
    con = duckdb.connect()
    con.register("source", source.select([c for c in source.column_names]))
    con.register("base", DeltaTable(str(postgres_lake / "base" / table.name)).to_pyarrow_dataset())
    columns = ", ".join(f'"{c}"' for c in source.column_names)
    current = "lh_is_current" if table.write_behaviour == "scd2" else "true"
    live = f"SELECT {columns} FROM base WHERE {current} AND NOT lh_is_deleted"
    assert con.execute(f"SELECT count(*) FROM ({live} EXCEPT SELECT {columns} FROM source)").fetchone()[0] == 0
    assert con.execute(f"SELECT count(*) FROM (SELECT {columns} FROM source EXCEPT {live})").fetchone()[0] == 0


@pytest.mark.slow
def test_fact_sales_equals_the_postgres_order_lines(runs):
    import adbc_driver_postgresql.dbapi as adbc

    _, postgres_lake, url = runs
    with adbc.connect(url) as pg:
        cursor = pg.cursor()
        # exact double-posted lines are one line
        cursor.execute("SELECT count(*), sum(amount)::text FROM (SELECT DISTINCT * FROM sales_order_line) lines")
        lines, amount = cursor.fetchone()
    fact = DeltaTable(str(postgres_lake / "curated" / "fact_sales")).to_pyarrow_table()
    con = duckdb.connect()
    con.register("fact", fact)
    count, total = con.execute("SELECT count(*), sum(amount)::VARCHAR FROM fact").fetchone()
    assert count == lines and float(total) == float(amount)
