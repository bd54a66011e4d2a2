"""Data quality: Great Expectations suites generated from ``schemas``, run before every publish.

- ``suites``: builds the suites (one per canonical input table, per published table and per
  derived check) from the schema declaration and the semantic rules; ``expectations/`` holds them.
- ``checks``: the frames a day is validated on, including the derived check frames (credit sums,
  ingestion reconciliation, freshness, feed rates) computed in pandas.
- ``validate``: runs the suites through GX Core, writes ``dq_results`` and Data Docs, and gates
  publishing on critical failures.
- ``data_docs``: makes the Data Docs site open offline (its CDN assets, vendored in
  ``data_docs_vendor/``, served from the site itself).

See ``docs/quality.md``.
"""
