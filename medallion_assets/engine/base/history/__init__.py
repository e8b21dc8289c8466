"""Keyed history (scd1/scd2) as a pure function of the set of extracts seen.

Why a function of the set: docs/design.md requires that processing landing files or partitions in any
order, or twice, gives the same rows. A sequential merge cannot promise that once late-arriving
rows, out-of-order partitions and deletions mix, so the table is derived from *observations*.
What is stored (the hidden state table) grows with versions and deletions, not with extracts:

* ``version``  a distinct row content of a key, (key, ``_hash``), with its data columns, its modify
  date ``_m`` and the first extract that carried it (``_t``, ``_file``);
* ``sighting`` a delta extract that carried a version (key, ``_m``, ``_hash``, ``_t``, ``_file``), other
  than the version's first sighting, which the ``version`` row itself records;
* ``mark``     where a key's content in the full and keys extracts changes. The full and keys
  extracts, in time order, show each key as a set of versions (full), present (keys) or absent
  (a key seen before, missing). A mark starts a *run*: ``sighting`` marks (one row per version)
  cover every later full extract with the same versions and every keys extract holding the key;
  ``absent`` marks every later full or keys extract missing it; ``present`` marks keys extracts
  holding a key with no run of versions. A run lasts until the key's next mark, so a full extract
  that repeats yesterday's rows stores nothing. Extracts that arrive out of order may land inside
  a run: then the key's marks are rebuilt from its runs' members, and a ``reset`` mark (with the
  load's generation ``_gen``) supersedes the key's older marks;
* ``event``    an explicit delete event (delete condition) with its modify date ``_m``;
* ``extract``  a landing file already applied (``_file``, ``_t``, ``_load_type``).

The runs' members (which extracts a run covers) follow from the marks and the ``extract`` list, so
the sightings and absences of every extract can be recovered exactly; the fold below reads them
for the keys a batch touches, and only where they matter (a run of versions stands for its first
extract unless a deletion could make a later one re-open the key).

:func:`plan` adds a batch of extracts to the observations and returns the new observations plus
the recomputed history of every key the batch touches; :func:`fold` is the history itself, one
set-based DuckDB query (no per-row Python):

1. An absence at ``T`` deletes a key seen in an earlier extract and not seen in an extract at ``T``;
   a delete event deletes at its modify date.
2. A sighting starts its version at the modify date, unless a deletion observed before that
   extract is not earlier than the modify date: then the key *came back* at the extract's time.
   Such a come-back is dropped when a version with a later modify date already starts before it
   (the source moved on; modify dates never run backwards within a key's history).
3. Events are ordered by that time (a deletion after a row at the same instant); the state at an
   event is (deleted?, tracked attributes). A new version starts where the state changes; the
   other columns show the latest content within the version (updated in place), and its
   ``lh_source_file`` is the first extract that carried that content within the version.
4. ``lh_valid_to`` is the next version's start minus one microsecond, or 9999-12-31.

The daily case, one full extract later than every extract applied, goes a shorter way (see
``_Steps.split_unchanged``): one join of the extract's rows with the marks by (key, version) sets
aside the keys whose open run it repeats (they add no observation and their history stays), and
keys the state has never seen get their version, mark and history row directly; only changed and
missing keys, and keys with several rows or a delete event, go through the steps above. The result is the same by
construction and is tested against the full fold (``reference_history``).

SCD1 keeps the last version of each key. The loader (``load.py``) keeps the observations in a
hidden Delta table ``base/_state/<table>`` so they travel with the data and commit atomically.
"""

from medallion_assets.engine.base.history.plan import build_history, current_rows, plan, reference_history, stage_plan
from medallion_assets.engine.base.history.spec import (
    KINDS,
    OPEN_END,
    OPEN_END_SQL,
    STATE_COLUMNS,
    HistoryPlan,
    HistorySpec,
    StagedPlan,
    empty_state,
    state_schema,
)

__all__ = [
    "KINDS",
    "OPEN_END",
    "OPEN_END_SQL",
    "STATE_COLUMNS",
    "HistorySpec",
    "HistoryPlan",
    "StagedPlan",
    "build_history",
    "current_rows",
    "empty_state",
    "plan",
    "reference_history",
    "stage_plan",
    "state_schema",
]
