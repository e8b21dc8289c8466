"""Dagster layer of the curated model: asset and check factories over the curated metadata."""
