"""`medallion plan` on a team's folder after a real run: 0 when nothing changes, 2 naming the
table and the column when a curated SQL file gains one, a retype reported as breaking, and 1
naming the file and the column when the SQL names a column its base table lacks."""

import json
import os
from datetime import date
from pathlib import Path

import pytest

from medallion_assets_tests.test_metadata_dir import _edit, _medallion, _shop_database

pytestmark = pytest.mark.slow
DAY = date(2026, 3, 1)


def test_plan_after_a_run(shop, tmp_path):
    _shop_database(Path(os.environ["MEDALLION_DATA_DIR"]), DAY)
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path / "home")}
    ran = _medallion("run", "--from", str(DAY), "--to", str(DAY), env=env)
    assert ran.returncode == 0, ran.stdout + ran.stderr

    unchanged = _medallion("plan", env=env)
    assert unchanged.returncode == 0, unchanged.stdout + unchanged.stderr
    assert unchanged.stdout.strip().endswith("plan: no changes")

    fact = shop / "curated" / "fact_sale.sql"
    original = fact.read_text()
    _edit(fact, "    amount\n", "    amount,\n    amount * quantity AS revenue\n")
    _edit(fact, "    quantity,", "    CAST(quantity AS DOUBLE) AS quantity,")
    changed = _medallion("plan", env=env)
    assert changed.returncode == 2, changed.stdout + changed.stderr
    assert f"curated.fact_sale ({fact}): BREAKING" in changed.stdout
    assert "  column added: revenue DECIMAL" in changed.stdout
    assert "  column retyped: quantity INTEGER -> DOUBLE (breaking)" in changed.stdout
    assert "  rebuild: dagster asset materialize -m medallion_assets.definitions --select curated/fact_sale" in changed.stdout
    as_json = _medallion("plan", "--json", env=env)
    assert as_json.returncode == 2
    tables = {t["table"]: t for t in json.loads(as_json.stdout)["tables"]}
    assert tables["curated.fact_sale"]["breaking"] and not tables["curated.dim_item"]["changes"]

    fact.write_text(original.replace("    amount\n", "    amout\n"))
    wrong = _medallion("plan", env=env)
    assert wrong.returncode == 1
    (line,) = wrong.stderr.splitlines()
    assert line.startswith(f"medallion: error: {fact}: ") and '"amout"' in line
    assert "Traceback" not in wrong.stdout + wrong.stderr

    fact.write_text(original)
    _edit(shop / "base" / "shop.yaml", "write_behaviour: scd1", "write_behaviour: append")
    behaviour = _medallion("plan", env=env)
    assert behaviour.returncode == 2
    assert "base.shop_sale" in behaviour.stdout and "  write_behaviour: scd1 -> append (breaking)" in behaviour.stdout
