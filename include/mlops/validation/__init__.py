"""Stage 1, data validation: the GX 1.x suite runner, its pandas and DuckDB engines, custom expectations, quarantine and Data Docs."""
