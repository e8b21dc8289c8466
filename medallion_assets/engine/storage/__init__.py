"""The lake: where tables and files live (local folder or object store), Delta reads and writes,
landing paths, atomic files and locks, commit-conflict retries, and Delta tables as DuckDB scans."""
