"""Column lineage read off the curated SQL's parse tree and the base metadata's renames."""

import pytest

from medallion_assets.engine.base.model import BaseTable
from medallion_assets.engine.lineage import (
    ColumnRef,
    LineageError,
    base_lineage,
    dimension_lineage,
    fact_lineage,
    sql_lineage,
)

SCHEMAS = {
    ("base", "shop_sale"): ["sale_id", "item_id", "amount", "quantity", "sold_on", "lh_is_deleted"],
    ("base", "shop_item"): ["item_id", "name", "price", "lh_is_current"],
}


def sale(column: str) -> ColumnRef:
    return ColumnRef("base", "shop_sale", column)


def item(column: str) -> ColumnRef:
    return ColumnRef("base", "shop_item", column)


def test_aliases_and_expressions():
    traced = sql_lineage("SELECT sale_id AS sale_key, amount * quantity AS revenue FROM base.shop_sale", SCHEMAS)
    assert traced == {"sale_key": (sale("sale_id"),), "revenue": (sale("amount"), sale("quantity"))}


def test_joins_case_and_table_aliases():
    sql = """
        SELECT s.sale_id, i.name AS item_name,
               CASE WHEN i.price > 3 THEN s.amount ELSE 0 END AS dear_amount
        FROM base.shop_sale AS s JOIN base.shop_item AS i ON i.item_id = s.item_id
    """
    traced = sql_lineage(sql, SCHEMAS)
    assert traced["item_name"] == (item("name"),)
    assert traced["dear_amount"] == (item("price"), sale("amount"))  # sorted by table


def test_ctes_resolve_to_the_base_columns():
    sql = """
        WITH big AS (SELECT sale_id, amount * 2 AS doubled FROM base.shop_sale WHERE amount > 1)
        SELECT sale_id AS sale_key, doubled + 1 AS amount_plus FROM big
    """
    assert sql_lineage(sql, SCHEMAS) == {"sale_key": (sale("sale_id"),), "amount_plus": (sale("amount"),)}


def test_select_star_expands_from_the_stored_schema():
    traced = sql_lineage("SELECT * FROM base.shop_item", SCHEMAS)
    assert list(traced) == SCHEMAS[("base", "shop_item")]
    assert traced["price"] == (item("price"),)


def test_a_column_the_table_lacks_is_not_traced():
    with pytest.raises(LineageError):
        sql_lineage("SELECT nope FROM base.shop_item", SCHEMAS)


def test_base_columns_come_from_their_landing_columns_renames_included():
    table = BaseTable(
        object="customer", source="erp", name="erp_customer", landing=[{"source": "erp", "object": "customer"}], format="csv",
        write_behaviour="scd2", business_keys=["customer_id"], translations={"CustName": "customer_name"},
    )
    traced = base_lineage(table, ["customer_id", "customer_name", "lh_valid_from"])
    assert traced == {
        "customer_id": (ColumnRef("landing", "erp_customer", "customer_id"),),
        "customer_name": (ColumnRef("landing", "erp_customer", "CustName"),),
        "lh_valid_from": (),
    }


def test_framework_keys_point_at_what_they_resolve_against():
    from_sql = sql_lineage("SELECT item_id AS item_key, amount, CAST(strftime(sold_on, '%Y%m%d') AS INTEGER) AS calendar_key "
                           "FROM base.shop_sale", SCHEMAS)
    fact = fact_lineage(from_sql, ["item_id", "calendar_key", "amount", "lh_created_date"],
                        mapped={"item_id": ("item_key", "dim_item"), "calendar_key": ("calendar_key", "dim_calendar")})
    role = fact_lineage(from_sql, ["calendar_ship_key"], mapped={"calendar_ship_key": ("calendar_key", "dim_calendar")})
    assert role["calendar_ship_key"] == (sale("sold_on"), ColumnRef("curated", "dim_calendar", "calendar_key"))
    assert fact["item_id"] == (ColumnRef("base", "shop_sale", "item_id"), ColumnRef("curated", "dim_item", "item_id"))
    assert fact["calendar_key"] == (sale("sold_on"), ColumnRef("curated", "dim_calendar", "calendar_key"))
    assert fact["amount"] == (sale("amount"),) and fact["lh_created_date"] == ()
    dimension = dimension_lineage({"item_key": (item("item_id"),)}, ["item_id", "item_key", "lh_is_current"], id_column="item_id")
    assert dimension == {"item_id": (), "item_key": (item("item_id"),), "lh_is_current": ()}


# --- before any table is stored: the SQL text alone -------------------------------------------


def test_without_schemas_qualified_and_single_table_columns_are_traced():
    traced = sql_lineage("SELECT sale_id AS sale_key, amount * quantity AS revenue FROM base.shop_sale", None)
    assert traced == {"sale_key": (sale("sale_id"),), "revenue": (sale("amount"), sale("quantity"))}
    joined = sql_lineage(
        "SELECT s.sale_id, i.name FROM base.shop_sale s JOIN base.shop_item i ON i.item_id = s.item_id", None
    )
    assert joined == {"sale_id": (sale("sale_id"),), "name": (item("name"),)}


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT * FROM base.shop_sale",
        "SELECT s.* FROM base.shop_sale s",
        "SELECT sale_id, name FROM base.shop_sale s JOIN base.shop_item i ON i.item_id = s.item_id",  # whose name?
    ],
)
def test_without_schemas_what_only_the_stored_schemas_tell_is_refused(sql):
    with pytest.raises(LineageError):
        sql_lineage(sql, None)


def test_the_sample_model_declares_its_lineage_before_any_run():
    """The shipped model's lineage from its SQL text: a fact's mapped key points at the base
    column it was mapped from and the dimension's id; a dimension's surrogate key at nothing;
    a dimension whose SQL joins unqualified columns waits for its first materialization."""
    from medallion_assets.engine.curated.model import load_curated_model
    from medallion_assets.engine.lineage import declared_lineage
    from medallion_assets.engine.metadata import shipped_metadata_root

    model = load_curated_model(shipped_metadata_root() / "curated")
    sales = declared_lineage(model.facts["fact_sales"])
    lines = "erp_sales_order_line"
    assert sales["amount"] == (ColumnRef("base", lines, "amount"),)
    assert sales["customer_id"] == (ColumnRef("base", lines, "customer_id"), ColumnRef("curated", "dim_customer", "customer_id"))
    assert sales["calendar_order_key"] == (ColumnRef("base", lines, "order_date"), ColumnRef("curated", "dim_calendar", "calendar_key"))
    assert "customer_key" not in sales  # stored as customer_id
    customer = declared_lineage(model.dimensions["customer"])
    assert customer["customer_id"] == () and customer["email"] == (ColumnRef("base", "erp_customer", "email"),)
    assert declared_lineage(model.dimensions["employee"]) is None
