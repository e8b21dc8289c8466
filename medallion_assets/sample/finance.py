"""Finance's budget drops: a CSV with the whole year's budget, re-forecast every month.

Finance does not expose a database; it pushes files into a drop folder. On the first simulated
day and on the 1st of every month a new ``budget_<yyyymmdd>.csv`` appears with one row per
month of that calendar year, product category and sales region. Each drop is a revised
forecast, so the same (month, category, region) gets a new amount in every file, as real
re-forecasts do. The amounts depend only on the seed, the planned sales volume and the day,
never on when the file is written, so writing a drop late or twice gives the same file.
"""

from __future__ import annotations

import os
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from medallion_assets.engine.storage.files import atomic_path
from medallion_assets.sample.erp.days import current_source_day, read_sample_state
from medallion_assets.sample.erp.reference import (
    CATEGORIES,
    CATEGORY_PRICE_RANGE,
    CATEGORY_WEIGHTS,
    DISCOUNT_P,
    DISCOUNTS,
    LOCATIONS,
    QUANTITY_P,
    REGIONS,
)
from medallion_assets.sample.erp.state import SampleState

__all__ = ["BUDGET_COLUMNS", "budget_file_name", "budget_table", "is_budget_day", "write_budget_drops"]

BUDGET_COLUMNS = ("budget_month", "category", "region", "budget_amount")
DROP_HOUR_UTC = 9
# Cycling sells in spring and summer, and again before Christmas.
_SEASON = np.array([0.7, 0.75, 0.95, 1.1, 1.2, 1.25, 1.2, 1.1, 1.0, 0.9, 0.8, 1.05])
_PLAN_SALT = 101
_REVISION_SALT = 102


def budget_file_name(day: date) -> str:
    return f"budget_{day:%Y%m%d}.csv"


def is_budget_day(day: date, start_date: date) -> bool:
    """Finance drops a forecast on the first simulated day and on the 1st of every month."""
    return day == start_date or (day.day == 1 and day > start_date)


def _mean_line_amount_by_category() -> np.ndarray:
    """Expected amount of one order line per category, from the generator's own distributions."""
    quantity = 1.0 / QUANTITY_P
    discount = float(np.dot(DISCOUNTS, DISCOUNT_P)) / 100.0
    means = []
    for category in CATEGORIES:
        low, high = CATEGORY_PRICE_RANGE[category]
        means.append((high - low) / np.log(high / low) * quantity * (1.0 - discount))
    return np.array(means)


def budget_table(state: SampleState, day: date) -> pa.Table:
    """The forecast finance publishes on ``day``: 12 months x categories x regions of that year."""
    line_amount = _mean_line_amount_by_category()
    category_revenue = np.array(CATEGORY_WEIGHTS) * line_amount * (state.order_lines_per_day * 365.25 / 12)
    region_share = np.array([sum(1 for *_, r in LOCATIONS if r == region) for region in REGIONS], dtype=float)
    region_share /= region_share.sum()
    season = _SEASON / _SEASON.mean()

    # The plan of the year (growth per category and region), then this drop's revision of it.
    plan = np.random.default_rng([state.seed, day.year, _PLAN_SALT]).uniform(0.95, 1.15, (len(CATEGORIES), len(REGIONS)))
    revision = np.random.default_rng([state.seed, day.toordinal(), _REVISION_SALT]).normal(1.0, 0.04, (12, len(CATEGORIES), len(REGIONS)))
    amounts = season[:, None, None] * category_revenue[None, :, None] * region_share[None, None, :] * plan[None] * revision
    cents = np.maximum(np.round(amounts * 100), 0).astype(np.int64)

    months, categories, regions = np.meshgrid(np.arange(12), np.arange(len(CATEGORIES)), np.arange(len(REGIONS)), indexing="ij")
    months, categories, regions = months.ravel(), categories.ravel(), regions.ravel()
    return pa.table(
        {
            "budget_month": pa.array([date(day.year, int(m) + 1, 1) for m in months], pa.date32()),
            "category": pa.array([CATEGORIES[c] for c in categories], pa.string()),
            "region": pa.array([REGIONS[r] for r in regions], pa.string()),
            "budget_amount": pa.array([Decimal(int(c)).scaleb(-2) for c in cents.ravel()], pa.decimal128(14, 2)),
        }
    )


def write_budget_drops(drop_folder: Path, db_path: Path, *, days: list[date]) -> list[Path]:
    """For each day in ``days`` that is the first simulated day or the 1st of a month, write
    ``budget_<yyyymmdd>.csv`` atomically, its mtime set to that day 09:00 UTC.

    Existing files are left alone (idempotent). Days outside the simulated range (before the
    start or after the source clock) are refused: finance cannot drop a forecast from the future.
    Returns the files written.
    """
    drop_folder = Path(drop_folder)
    state = read_sample_state(db_path)
    today = current_source_day(db_path)
    outside = sorted(d for d in days if not state.start_date <= d <= today)
    if outside:
        raise ValueError(
            f"budget days {', '.join(map(str, outside))} are outside the simulated days "
            f"{state.start_date}..{today} of {db_path}"
        )
    written: list[Path] = []
    for day in sorted(set(days)):
        if not is_budget_day(day, state.start_date):
            continue
        final = drop_folder / budget_file_name(day)
        if final.exists():
            continue
        dropped_at = datetime(day.year, day.month, day.day, DROP_HOUR_UTC, tzinfo=UTC).timestamp()
        with atomic_path(final) as temp:
            pacsv.write_csv(budget_table(state, day), temp)
            os.utime(temp, (dropped_at, dropped_at))  # the rename keeps it: the file appears with its drop time
        written.append(final)
    return written
