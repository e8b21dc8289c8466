"""The load engine: plain Python, no Dagster. Usable from a notebook and tested in milliseconds."""
