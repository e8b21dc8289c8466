"""Progress lines of a long load: rows done and rate, at most one every few seconds."""

import pyarrow as pa
import pyarrow.parquet as pq

from medallion_assets.engine.landing.extract import land_batches
from medallion_assets.engine.landing.sources import SourceObject
from medallion_assets.engine.progress import Progress


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_line_at_most_every_interval_with_rows_and_rate():
    clock, lines = Clock(), []
    progress = Progress("shop.sale (full extract)", lines.append, every_seconds=10, clock=clock)
    for _ in range(4):  # 4 s in: nothing yet
        clock.now += 1
        progress.add(50_000)
    assert lines == []
    clock.now += 6
    progress.add(50_000)
    assert lines == ["shop.sale (full extract): 250,000 rows so far, 25,000 rows/s"]
    clock.now += 5
    progress.add(50_000)
    assert len(lines) == 1  # 5 s since the last line


def test_landing_a_stream_reports_its_progress_and_writes_every_row(tmp_path):
    batches = [pa.record_batch({"id": pa.array(range(i * 1000, (i + 1) * 1000))}) for i in range(5)]
    reader = pa.RecordBatchReader.from_batches(batches[0].schema, iter(batches))
    obj = SourceObject.model_validate({"name": "sale", "extract_mode": "full", "format": "parquet"})
    lines = []
    target = tmp_path / "sale.parquet"
    landed = land_batches(reader, target, obj, progress=Progress("shop.sale", lines.append, every_seconds=0))
    assert landed.rows == 5000 and pq.read_table(target).num_rows == 5000
    assert [line.split(" rows so far")[0] for line in lines] == [f"shop.sale: {n:,}" for n in range(1000, 5001, 1000)]
