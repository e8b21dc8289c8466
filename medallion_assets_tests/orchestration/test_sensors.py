import json
import os
import threading
from datetime import UTC, date, datetime
from http.server import BaseHTTPRequestHandler, HTTPServer

import dagster as dg
import pytest

from medallion_assets.common.partitions import daily_partitions
from medallion_assets.common.resources import LakehouseResource
from medallion_assets.engine.landing.scan import scan_for_new_files
from medallion_assets.engine.landing.sources import SourceSystem
from medallion_assets.engine.storage.paths import landing_file_path
from medallion_assets.orchestration.sensors import build_landing_sensor, run_failure_notifier

SHOP = SourceSystem.model_validate(
    {
        "source": "shop",
        "connection": {"type": "duckdb", "database": "sources/shop.duckdb"},
        "objects": {"orders": {"extract_mode": "full", "format": "csv"}},
    }
)
DROPS = SourceSystem.model_validate(
    {
        "source": "finance",
        "connection": {"type": "drop_folder", "folder": "drops"},
        "objects": {"budget": {"extract_mode": "full", "file_pattern": "budget_*.csv", "format": "csv"}},
    }
)
SYSTEMS = {"shop": SHOP, "finance": DROPS}
LANDING = dg.AssetKey(["landing", "shop_orders"])
BASE = dg.AssetKey(["base", "shop_orders"])


def land(root, day: date, hour: int = 22):
    path = landing_file_path(root, "shop", "orders", "full", day, extracted_at=datetime(day.year, day.month, day.day, hour), fmt="csv")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("order_id\n1\n")
    return path


def drop(root, name: str, when: datetime):
    path = root / "drops" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("budget_month,category,region,budget_amount\n")
    os.utime(path, (when.timestamp(), when.timestamp()))
    return path


@pytest.fixture
def sensor():
    return build_landing_sensor(
        systems=SYSTEMS,
        downstream={LANDING: [BASE], dg.AssetKey(["landing", "finance_budget"]): []},
        partitions_def=daily_partitions(),
    )


def tick(sensor, instance, root, cursor):
    context = dg.build_sensor_context(
        instance=instance, cursor=cursor, resources={"lakehouse": LakehouseResource(data_dir=str(root))}
    )
    result = sensor(context)
    return result, result.cursor


def test_new_file_gives_one_run_for_its_partition_and_never_twice(sensor, tmp_path):
    land(tmp_path, date(2026, 1, 1))
    with dg.DagsterInstance.ephemeral() as instance:
        first, cursor = tick(sensor, instance, tmp_path, None)
        assert first.run_requests == [] and cursor  # the first tick only remembers what is there

        land(tmp_path, date(2026, 1, 2))
        second, cursor2 = tick(sensor, instance, tmp_path, cursor)
        (request,) = second.run_requests
        assert request.partition_key == "2026-01-02"
        assert list(request.asset_selection) == [LANDING, BASE]
        assert cursor2 != cursor

        third, cursor3 = tick(sensor, instance, tmp_path, cursor2)
        assert third.run_requests == []

        # A replayed cursor still yields the same run key: Dagster skips it, so no double trigger.
        replay, _ = tick(sensor, instance, tmp_path, cursor)
        assert [r.run_key for r in replay.run_requests] == [request.run_key]


def test_a_dropped_file_requests_its_landing_asset(sensor, tmp_path):
    (tmp_path / "drops").mkdir()
    with dg.DagsterInstance.ephemeral() as instance:
        _, cursor = tick(sensor, instance, tmp_path, None)
        drop(tmp_path, "budget_20260301.csv", datetime(2026, 3, 1, 9, tzinfo=UTC))
        drop(tmp_path, "notes.txt", datetime(2026, 3, 1, 9, tzinfo=UTC))
        result, _ = tick(sensor, instance, tmp_path, cursor)
        (request,) = result.run_requests
        assert request.partition_key == "2026-03-01"
        assert list(request.asset_selection) == [dg.AssetKey(["landing", "finance_budget"])]


def test_scan_does_not_revisit_old_day_folders(tmp_path):
    for day in range(1, 29):
        land(tmp_path, date(2026, 2, day))
    _, cursor = scan_for_new_files(tmp_path, {"shop": SHOP}, None)
    # A file added to an old day after the cursor passed it is history, not a new arrival.
    land(tmp_path, date(2026, 2, 3), hour=23)
    new_day = land(tmp_path, date(2026, 3, 1))
    found, cursor = scan_for_new_files(tmp_path, {"shop": SHOP}, cursor)
    assert [f.path for f in found] == [new_day]
    state = json.loads(cursor)["landing"]["shop/orders"]
    assert state["newest"] == "2026-03-01"
    assert all("20260227" not in name for name in state["seen"])  # the cursor stays small


class _Collector(BaseHTTPRequestHandler):
    received: list = []

    def do_POST(self):  # noqa: N802 (http.server API)
        length = int(self.headers["Content-Length"])
        _Collector.received.append(json.loads(self.rfile.read(length)))
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"1")

    def log_message(self, *args):
        pass


@dg.op
def explode():
    raise RuntimeError("boom: source unreachable")


@dg.job
def failing_job():
    explode()


def failure_context(instance):
    result = failing_job.execute_in_process(instance=instance, raise_on_error=False)
    run = instance.get_run_by_id(result.run_id)
    failure = next(e for e in result.all_events if e.event_type_value == "PIPELINE_FAILURE")
    return dg.build_run_status_sensor_context(
        sensor_name="run_failure_notifier", dagster_event=failure, dagster_instance=instance, dagster_run=run
    ).for_run_failure()


def test_failure_sensor_posts_to_the_webhook(monkeypatch):
    server = HTTPServer(("127.0.0.1", 0), _Collector)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _Collector.received.clear()
    try:
        monkeypatch.setenv("MEDALLION_WEBHOOK_URL", f"http://127.0.0.1:{server.server_port}/hook")
        with dg.DagsterInstance.ephemeral() as instance:
            context = failure_context(instance)
            run_failure_notifier(context)
    finally:
        server.shutdown()
    (payload,) = _Collector.received
    assert payload["job"] == "failing_job"
    assert payload["failed_steps"] == ["explode"]
    assert "boom: source unreachable" in payload["error"] and "boom" in payload["text"]
    assert payload["run_url"].endswith(f"/runs/{payload['run_id']}")


def test_failure_sensor_logs_when_no_webhook_is_set(monkeypatch):
    import medallion_assets.orchestration.sensors as sensors_module

    monkeypatch.delenv("MEDALLION_WEBHOOK_URL", raising=False)
    monkeypatch.setattr(sensors_module, "post_json", lambda *a, **k: pytest.fail("nothing may be posted"))
    warnings = []
    with dg.DagsterInstance.ephemeral() as instance:
        context = failure_context(instance)
        monkeypatch.setattr(type(context.log), "warning", lambda self, message, *a, **k: warnings.append(message))
        run_failure_notifier(context)
    (message,) = warnings
    assert "failing_job failed at explode" in message and "boom: source unreachable" in message


def test_the_webhook_url_never_reaches_the_log(monkeypatch):
    secret = "http://127.0.0.1:9/hooks/T000-SECRET-TOKEN"  # nothing listens on port 9
    monkeypatch.setenv("MEDALLION_WEBHOOK_URL", secret)
    logged = []
    with dg.DagsterInstance.ephemeral() as instance:
        context = failure_context(instance)
        for level in ("info", "warning", "error"):
            monkeypatch.setattr(type(context.log), level, lambda self, message, *a, **k: logged.append(message))
        run_failure_notifier(context)
    assert logged and "not delivered" in logged[-1]
    assert all("SECRET-TOKEN" not in message and "127.0.0.1:9" not in message for message in logged)


def test_the_sensor_watches_a_lake_on_s3(sensor, s3_lake):
    """The same sensor with ``data_dir`` an ``s3://`` URI: day prefixes listed from the bucket,
    run keys from the objects' modification times, the drop folder (absent) on local disk."""
    from medallion_assets.engine.storage.lake import upload_file
    from medallion_assets.engine.storage.paths import resolve_data_dir

    root = resolve_data_dir(s3_lake.uri)
    local = s3_lake.local_dir / "orders.csv"
    local.write_text("order_id\n1\n")

    def land_s3(day: date) -> None:
        upload_file(local, landing_file_path(
            root, "shop", "orders", "full", day, extracted_at=datetime(day.year, day.month, day.day, 22), fmt="csv"
        ))

    land_s3(date(2026, 1, 1))
    with dg.DagsterInstance.ephemeral() as instance:
        first, cursor = tick(sensor, instance, s3_lake.uri, None)
        assert first.run_requests == [] and cursor
        land_s3(date(2026, 1, 2))
        second, cursor = tick(sensor, instance, s3_lake.uri, cursor)
        (request,) = second.run_requests
        assert request.partition_key == "2026-01-02" and list(request.asset_selection) == [LANDING, BASE]
        third, _ = tick(sensor, instance, s3_lake.uri, cursor)
        assert third.run_requests == []
