"""Dagster helpers every layer shares: partitions, retry policies and step guards, resources,
the metadata vocabulary and checks, concurrency pools. Layers import these; these import only
the engine."""
