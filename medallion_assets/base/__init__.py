"""Base layer in Dagster: one daily-partitioned asset per destination table, built from metadata."""
