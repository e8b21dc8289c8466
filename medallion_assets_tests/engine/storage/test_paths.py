from datetime import date, datetime
from pathlib import Path

import pytest

from medallion_assets.engine.storage.paths import (
    PathOutsideDataRoot,
    inside,
    landing_file_path,
    list_landing_files,
    parse_landing_file,
    resolve_data_dir,
)


def test_landing_path_follows_the_design_convention(tmp_path):
    path = landing_file_path(tmp_path, "erp", "customer", "delta", date(2026, 1, 2), extracted_at=datetime(2026, 1, 2, 22, 0, 5), fmt="csv")
    assert path.relative_to(tmp_path) == Path("landing/erp/customer/delta/2026/01/02/customer_delta_20260102T220005.csv")
    parsed = parse_landing_file(path)
    assert (parsed.source, parsed.object, parsed.load_type, parsed.partition_date, parsed.format) == (
        "erp",
        "customer",
        "delta",
        date(2026, 1, 2),
        "csv",
    )
    assert parsed.extracted_at == datetime(2026, 1, 2, 22, 0, 5)


def test_unknown_load_type_or_format_is_refused(tmp_path):
    with pytest.raises(ValueError, match="load type"):
        landing_file_path(tmp_path, "erp", "customer", "weekly", date(2026, 1, 2), extracted_at=datetime(2026, 1, 2), fmt="csv")
    with pytest.raises(ValueError, match="file format"):
        landing_file_path(tmp_path, "erp", "customer", "full", date(2026, 1, 2), extracted_at=datetime(2026, 1, 2), fmt="xlsx")


def test_listing_skips_temporary_and_foreign_files_and_sorts(tmp_path):
    later = landing_file_path(tmp_path, "erp", "customer", "delta", date(2026, 1, 3), extracted_at=datetime(2026, 1, 3, 22), fmt="csv")
    earlier = landing_file_path(tmp_path, "erp", "customer", "full", date(2026, 1, 2), extracted_at=datetime(2026, 1, 2, 22), fmt="csv")
    keys = landing_file_path(tmp_path, "erp", "customer", "keys", date(2026, 1, 3), extracted_at=datetime(2026, 1, 3, 22), fmt="csv")
    for path in (later, earlier, keys):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("customer_id\n1\n")
    (later.parent / ".tmp-abc-customer_delta_20260103T230000.csv").write_text("half")
    (later.parent / "notes.txt").write_text("not a landing file")
    files = list_landing_files(tmp_path, "erp", "customer")
    assert [f.path for f in files] == [earlier, later, keys]
    assert [f.path for f in list_landing_files(tmp_path, "erp", "customer", partition_date=date(2026, 1, 3))] == [later, keys]


@pytest.mark.parametrize("bad", ["../outside", "/etc/passwd", "sources/../../x"])
def test_inside_refuses_paths_leaving_the_root(tmp_path, bad):
    with pytest.raises(PathOutsideDataRoot):
        inside(tmp_path, bad)


def test_inside_refuses_symlinks_out_of_the_root(tmp_path):
    root, outside = tmp_path / "root", tmp_path / "elsewhere"
    root.mkdir()
    outside.mkdir()
    (root / "link").symlink_to(outside)
    with pytest.raises(PathOutsideDataRoot):
        inside(root, "link/file.db")
    assert inside(root, "sources/erp.duckdb") == root.resolve() / "sources" / "erp.duckdb"


def test_data_dir_comes_from_the_environment_at_call_time(tmp_path, monkeypatch):
    monkeypatch.setenv("MEDALLION_DATA_DIR", str(tmp_path / "lake"))
    assert resolve_data_dir() == (tmp_path / "lake").resolve()
    assert resolve_data_dir(tmp_path / "explicit") == (tmp_path / "explicit").resolve()
    monkeypatch.delenv("MEDALLION_DATA_DIR")
    assert resolve_data_dir().name == "data"
