"""0.4.0: real ingestion accounting (issue 17): three columns of ``ingest_files``.

``ingest_files`` gains ``file_bytes``, ``refused_rows`` and ``collapsed_rows`` (nullable, after
``quarantined_rows``): the file's size, the rows of a file refused as a whole (one quarantine
record stands for them), and the accepted rows that collapsed as exact duplicates. With them the
day's lake partition and quarantine reconcile exactly against the file accounting. The table is
rebuilt so the columns keep their declared order on both backends; rows logged before keep null
in the new columns. No key or grain changes; no view reads the table.

Revision ID: 0004_ingest_accounting
Revises: 0003_adjusted_uplift
Create Date: 2026-12-01
"""

from __future__ import annotations

from pipelines.migrations import ddl
from pipelines.migrations.ddl import Col, Table

revision: str = "0004_ingest_accounting"
down_revision: str | None = "0003_adjusted_uplift"
branch_labels: str | None = None
depends_on: str | None = None
# Fingerprint of pipelines/schemas.py's warehouse tables as this revision leaves them
# (pipelines.db.contract_fingerprint()); the head revision's must equal the declaration's.
contract: str = "ebf02c07d62597c9"
RELEASE = "0.4.0"

_FILE = (
    Col("dt", "date", "Delivery day"),
    Col("source", "str", "Input table"),
    Col("platform", "str", "Platform folder", nullable=True),
    Col("source_file", "str", "Landing-zone file the row came from, relative to the landing root"),
)
_RUN_ID = Col("run_id", "str", "Run that wrote the row")
_GRAIN = "one landing file ingested by one run"
_KEY = ("run_id", "source_file")

#: ingest_files as 0.1.0 to 0.3.0 have it (what a downgrade restores).
INGEST_FILES_0_3 = Table(
    "ingest_files",
    grain=_GRAIN,
    key=_KEY,
    columns=(
        *_FILE,
        Col("format", "str", "Detected format (e.g. mediacrawler_json_v2026, csv_gb18030)"),
        Col("input_rows", "int64", "Rows read"),
        Col("accepted_rows", "int64", "Rows accepted into the lake"),
        Col("quarantined_rows", "int64", "Rows sent to quarantine"),
        _RUN_ID,
    ),
)

INGEST_FILES = Table(
    "ingest_files",
    grain=_GRAIN,
    key=_KEY,
    columns=(
        *_FILE,
        Col(
            "format",
            "str",
            "Detected format (e.g. mediacrawler_json_v2026, csv_gb18030; symlink, not_a_file for refused entries)",
        ),
        Col(
            "input_rows",
            "int64",
            "Rows read: records for a file read record by record, refused_rows for a refused file",
        ),
        Col("accepted_rows", "int64", "Rows that reached the lake partition (exact duplicates included)"),
        Col("quarantined_rows", "int64", "Rows sent to quarantine (a refused file's rows included)"),
        Col(
            "file_bytes",
            "int64",
            "Size of the file in bytes; null when it was not opened (a link or a special file) "
            "or logged before 0.4.0",
            nullable=True,
        ),
        Col(
            "refused_rows",
            "int64",
            "Rows of a file refused as a whole (one quarantine record, row 0, stands for them): "
            "the records read before it was refused, else the non-blank lines it holds (Parquet: "
            "its row count), at least 1; 0 for a file read record by record; null before 0.4.0",
            nullable=True,
        ),
        Col(
            "collapsed_rows",
            "int64",
            "Accepted rows equal in every column to an earlier accepted row of the delivery: "
            "stored once; null before 0.4.0",
            nullable=True,
        ),
        _RUN_ID,
    ),
)


def upgrade() -> None:
    """Rebuild ingest_files with the accounting columns (rows kept, the new columns null)."""
    ddl.recreate_table(INGEST_FILES_0_3, INGEST_FILES)


def downgrade() -> None:
    """Rebuild ingest_files without the accounting columns."""
    ddl.recreate_table(INGEST_FILES, INGEST_FILES_0_3)
