"""Tables as CSV: the leaderboard, votes and other exports."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Mapping, Sequence


def to_csv(records: Iterable[Mapping[str, object]], columns: Sequence[str]) -> str:
    """One header line and one line per record; nested values are written as JSON."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    for record in records:
        writer.writerow(
            [
                json.dumps(v) if isinstance(v, list | dict) else ("" if v is None else v)
                for v in (record.get(column) for column in columns)
            ]
        )
    return out.getvalue()
