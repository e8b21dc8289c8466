"""The sample ERP: a DuckDB database that behaves like a source system changing day by day.

The landing layer needs a source that changes the way real ones do: inserts, updates that make
SCD2 history, hard deletes, rows that arrive late and the occasional double-posted row. This
module builds such a database as of a first day (mostly history) and moves it forward one
simulated day at a time.

Determinism: the changes of day ``k`` (``k = day - start_date``) are drawn from
``numpy.random.default_rng([seed, k, salt])`` and from the database state, always read in key
order, so ``advance(days=2)`` equals two ``advance(days=1)`` and equal arguments give equal
content. Every day is one DuckDB transaction: a crash leaves the previous day intact.

Rules the simulation keeps (others rely on them):
- every row changed on day D has ``modified_at`` on D between 06:00:00 and 21:59:59, except
  late-arriving new order lines and customer changes, dated D-1 or D-2 but written on D;
- order lines only reference existing customers, products and employees: only customers and
  products without order lines are hard-deleted, and a leaving employee's order lines are
  reassigned to a colleague of the same region (``employee_id`` and ``modified_at`` change);
- customers in segment ``Prospect`` place no orders (they are the usual delete candidates);
- all lines of an order ship together, ``1 + (order_id * 2654435761) % 5`` days after the
  order date at the earliest, on the first simulated day that is not earlier;
- exact duplicate order lines are updated and deleted together, so they stay exact duplicates.
"""

from __future__ import annotations

from medallion_assets.sample.erp.create import create_erp_database
from medallion_assets.sample.erp.days import advance_erp_database, current_source_day, read_sample_state
from medallion_assets.sample.erp.reference import (
    CATEGORIES,
    CATEGORY_PRICE_RANGE,
    CATEGORY_WEIGHTS,
    COUNTRY_REGION,
    LOCATIONS,
    REGIONS,
    SEGMENTS,
    SUBCATEGORIES,
)
from medallion_assets.sample.erp.state import SampleState

__all__ = [
    "CATEGORIES",
    "CATEGORY_PRICE_RANGE",
    "CATEGORY_WEIGHTS",
    "COUNTRY_REGION",
    "LOCATIONS",
    "REGIONS",
    "SEGMENTS",
    "SUBCATEGORIES",
    "SampleState",
    "advance_erp_database",
    "create_erp_database",
    "current_source_day",
    "read_sample_state",
]
