"""The whole sample through every layer, day by day, with `medallion_daily` on a real instance:
base equals the source's final state, fact_sales equals the source's order lines."""

from datetime import date, timedelta

import dagster as dg
import duckdb
import pytest
from deltalake import DeltaTable

from medallion_assets.definitions import defs
from medallion_assets.engine.base import load_base_tables
from medallion_assets.engine.base.invariants import scd2_violations
from medallion_assets.sample import generate_sample

pytestmark = pytest.mark.slow  # the whole sample pipeline through Dagster

DAYS = 9  # day 1 full, deltas, a weekly full on day 8, a delta after it


@pytest.fixture(scope="module")
def lake(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("lake")
    days = generate_sample(data_dir, seed=3, days=DAYS, customers=400, order_lines=4000, log=lambda m: None)
    assert days == [date(2026, 1, 1) + timedelta(days=i) for i in range(DAYS)]
    job = defs.resolve_job_def("medallion_daily")
    mp = pytest.MonkeyPatch()
    mp.setenv("MEDALLION_DATA_DIR", str(data_dir))
    try:
        with dg.DagsterInstance.ephemeral() as instance:
            for day in days:
                result = job.execute_in_process(partition_key=day.isoformat(), instance=instance)
                assert result.success
    finally:
        mp.undo()
    return data_dir


def connect(lake):
    con = duckdb.connect()
    con.execute(f"ATTACH '{lake / 'sources' / 'erp.duckdb'}' AS src (READ_ONLY)")
    return con


@pytest.mark.parametrize("table", [t for t in load_base_tables() if t.source == "erp"], ids=lambda t: t.name)
def test_base_current_rows_equal_the_source_final_state(lake, table):
    con = connect(lake)
    con.register("base", DeltaTable(str(lake / "base" / table.name)).to_pyarrow_dataset())
    source_columns = [r[0] for r in con.execute(f"DESCRIBE src.{table.object}").fetchall()]
    columns = ", ".join(f'"{c}"' for c in source_columns)
    current = "lh_is_current" if table.write_behaviour == "scd2" else "true"
    live = f"SELECT {columns} FROM base WHERE {current} AND NOT lh_is_deleted"
    source = f"SELECT DISTINCT {columns} FROM src.{table.object}"
    assert con.execute(f"SELECT count(*) FROM ({live} EXCEPT {source})").fetchall()[0][0] == 0
    assert con.execute(f"SELECT count(*) FROM ({source} EXCEPT {live})").fetchall()[0][0] == 0
    # Keys deleted in the source are kept, soft-deleted, never removed.
    keys = ", ".join(table.business_keys)
    deleted = con.execute(
        f"SELECT count(*) FROM (SELECT {keys} FROM base WHERE {current} EXCEPT SELECT {keys} FROM src.{table.object})"
    ).fetchall()[0][0]
    flagged = con.execute(f"SELECT count(*) FROM base WHERE {current} AND lh_is_deleted").fetchall()[0][0]
    assert deleted == flagged
    if table.name in ("erp_customer", "erp_sales_order_line"):
        assert deleted > 0, "the sample deletes some of these every day"


def test_scd2_invariants_hold_and_history_exists(lake):
    for table in load_base_tables():
        if table.write_behaviour != "scd2":
            continue
        dataset = DeltaTable(str(lake / "base" / table.name)).to_pyarrow_dataset()
        assert scd2_violations(dataset, table.business_keys) == dict.fromkeys(scd2_violations(dataset, table.business_keys), 0)
    customers = DeltaTable(str(lake / "base" / "erp_customer")).to_pyarrow_table()
    assert customers.num_rows > len(set(customers.column("customer_id").to_pylist())), "some customers changed"


def test_fact_sales_has_one_row_per_source_order_line_and_the_same_total(lake):
    con = connect(lake)
    con.register("fact", DeltaTable(str(lake / "curated" / "fact_sales")).to_pyarrow_dataset())
    fact = con.execute("SELECT count(*), count(DISTINCT order_line_key), sum(amount) FROM fact").fetchall()[0]
    source = con.execute(
        "SELECT count(*), count(DISTINCT order_line_id), sum(amount) FROM (SELECT DISTINCT * FROM src.sales_order_line)"
    ).fetchall()[0]
    assert fact == source


def test_every_fact_id_exists_in_its_dimension(lake):
    con = duckdb.connect()
    for name in ("fact_sales", "dim_customer", "dim_product", "dim_employee", "dim_calendar"):
        con.register(name, DeltaTable(str(lake / "curated" / name)).to_pyarrow_dataset())
    for column, dimension, key in [
        ("customer_id", "dim_customer", "customer_id"),
        ("product_id", "dim_product", "product_id"),
        ("employee_id", "dim_employee", "employee_id"),
        ("calendar_order_key", "dim_calendar", "calendar_key"),
        ("calendar_ship_key", "dim_calendar", "calendar_key"),
    ]:
        orphans = con.execute(
            f"SELECT count(*) FROM fact_sales WHERE {column} NOT IN (SELECT {key} FROM {dimension})"
        ).fetchall()[0][0]
        assert orphans == 0, column
    assert (
        con.execute("SELECT count(*) FROM fact_sales WHERE customer_id = -1 OR product_id = -1").fetchall()[0][0] == 0
    )


def test_the_serving_database_shows_every_table(lake):
    con = duckdb.connect(str(lake / "warehouse.duckdb"), read_only=True)
    views = {tuple(r) for r in con.execute("SELECT table_schema, table_name FROM information_schema.tables").fetchall()}
    assert {("base", "erp_customer"), ("curated", "fact_sales"), ("curated", "dim_calendar")} <= views
    rows = con.execute("SELECT count(*) FROM curated.fact_sales").fetchall()[0][0]
    assert rows == DeltaTable(str(lake / "curated" / "fact_sales")).to_pyarrow_dataset().count_rows()
