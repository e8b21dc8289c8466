"""Sources -> Landing: source metadata, database and DuckDB readers, the extract that writes
landing files, the scan of landed files and discovery of a source's tables."""
