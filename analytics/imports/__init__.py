"""Importing past conversations (docs/import.md): PowerPulse's fb-grouped export, jsonl and csv.

`import_stream(stream, ImportOptions(...))` is the one entry point (the command, the staff
upload page and `POST /api/v1/imports/` call it): streaming parsers (`parsers`), autoresponse
and duplicate dropping and the content hash (`cleaning`), batched writes with analytics computed
in memory (`writer`, over `assistant.services.imported_sessions_write`), the summary
(`summary`), and the `ImportRun` record (`pipeline`).
"""

from analytics.imports.parsers import guess_format
from analytics.imports.pipeline import ImportAborted, ImportOptions, ImportResult, import_stream
from analytics.imports.records import FORMATS
from analytics.imports.selectors import recent_runs
from analytics.imports.summary import Summary

__all__ = [
    "FORMATS",
    "ImportAborted",
    "ImportOptions",
    "ImportResult",
    "Summary",
    "guess_format",
    "import_stream",
    "recent_runs",
]
