"""medallion-assets: a metadata-driven Landing -> Base -> Curated lakehouse on Dagster."""

__version__ = "0.1.0"
