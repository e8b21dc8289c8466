"""`medallion` commands meet a user's mistakes: each is one line naming the culprit (variable,
metadata file, field, column), exit code 1, no traceback; a failed step prints its asset and its
error, and a table that kept rows aside in quarantine gets a warning line."""

import os
from datetime import date
from pathlib import Path

import pytest

from medallion_assets_tests.test_metadata_dir import _edit, _medallion, _shop_database

DAY = date(2026, 3, 1)


def _run_day(tmp_path: Path, **extra: str):
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path / "home"), **extra}
    return _medallion("run", "--from", str(DAY), "--to", str(DAY), env=env)


def _no_traceback(done) -> None:
    output = done.stdout + done.stderr
    assert "Traceback" not in output and "Stack Trace" not in output, output


def test_a_postgres_url_with_another_driver_stops_the_command_at_once(shop, tmp_path):
    done = _run_day(tmp_path, DAGSTER_POSTGRES_URL="postgresql+psycopg://dagster:secret@127.0.0.1:5432/dagster")
    assert done.returncode == 1, done.stdout + done.stderr
    assert done.stdout == ""  # nothing ran
    (line,) = done.stderr.splitlines()
    assert line.startswith("medallion: error: DAGSTER_POSTGRES_URL names the driver 'psycopg'")
    assert "secret" not in line
    _no_traceback(done)


def test_malformed_metadata_is_one_line_before_any_run(shop, tmp_path):
    _edit(shop / "base" / "shop.yaml", "write_behaviour: scd2", "write_behaviour: [scd2")
    done = _run_day(tmp_path)
    assert done.returncode == 1
    (line,) = done.stderr.splitlines()
    assert line.startswith(f"medallion: error: {shop / 'base' / 'shop.yaml'}") and "malformed YAML" in line
    assert "Dagster instance" not in done.stdout
    _no_traceback(done)


def test_an_unknown_write_behaviour_names_file_table_field_and_the_allowed_values(shop, tmp_path):
    _edit(shop / "base" / "shop.yaml", "write_behaviour: scd2", "write_behaviour: scd3")
    done = _run_day(tmp_path)
    assert done.returncode == 1
    (line,) = done.stderr.splitlines()
    assert str(shop / "base" / "shop.yaml") in line and "item" in line and "write_behaviour" in line and "scd2" in line
    _no_traceback(done)


@pytest.mark.slow
def test_source_columns_that_the_table_lacks_fail_landing_naming_file_field_and_column(shop, tmp_path):
    _shop_database(Path(os.environ["MEDALLION_DATA_DIR"]), DAY)
    _edit(shop / "sources" / "shop.yaml", "primary_key: [item_id]", "primary_key: [item_idd]")
    _edit(shop / "sources" / "shop.yaml", "watermark_column: modified_at", "watermark_column: modifed_at")
    done = _run_day(tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr
    source_file = shop / "sources" / "shop.yaml"
    lines = done.stdout.splitlines()
    assert f"  landing/shop_item: {source_file}: object 'item', field 'primary_key': column 'item_idd' is not in" in "\n".join(lines)
    assert f"  landing/shop_sale: {source_file}: object 'sale', field 'watermark_column': column 'modifed_at'" in "\n".join(lines)
    _no_traceback(done)


@pytest.mark.slow
def test_base_columns_that_the_landing_file_lacks_fail_base_naming_file_field_and_column(shop, tmp_path):
    _shop_database(Path(os.environ["MEDALLION_DATA_DIR"]), DAY)
    _edit(shop / "base" / "shop.yaml", "    modify_date_column: modified_at\n    column_descriptions:",
          "    modify_date_column: modified_at\n    history_columns: [prise]\n    column_descriptions:")
    _edit(shop / "base" / "shop.yaml", "business_keys: [sale_id]", "business_keys: [sale_no]")
    done = _run_day(tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr
    output = done.stdout
    base_file = shop / "base" / "shop.yaml"
    assert f"column 'prise' is missing: field 'history_columns' of table 'shop_item' in {base_file}" in output
    assert f"business key column 'sale_no' is missing: field 'business_keys' of table 'shop_sale' in {base_file}" in output
    assert "  base/shop_item: table 'shop_item', file " in output and "  base/shop_sale: " in output
    _no_traceback(done)


@pytest.mark.slow
def test_a_failed_step_prints_its_error_and_quarantine_is_a_warning(shop, tmp_path):
    """The source lost its `sale` table: landing/shop_sale fails with the source's error; items
    priced under 3 fail a rule and are kept aside, which the command reports as a warning."""
    import duckdb

    database = _shop_database(Path(os.environ["MEDALLION_DATA_DIR"]), DAY)
    con = duckdb.connect(str(database))
    con.execute("drop table sale")
    con.close()
    _edit(shop / "base" / "shop.yaml", "    column_descriptions:",
          "    quality_rules:\n      - {name: dear_enough, column: price, min: 3}\n    column_descriptions:")
    done = _run_day(tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert "  warning: base/shop_item: 1 rows kept aside in quarantine (base/_quarantine)" in lines
    (error,) = [line for line in lines if line.startswith("  landing/shop_sale: ")]
    assert "'sale'" in error and "extract failed" in error
    assert any(line.startswith("step output: ") for line in lines)
    log = Path(next(line for line in lines if line.startswith("step output: ")).split(": ", 1)[1])
    assert "landing__shop_sale" in log.read_text()  # the whole error is kept, out of the terminal
    _no_traceback(done)
