"""Independent SQL (DuckDB) implementation of SPEC 5: the test oracle and benchmark reference."""
