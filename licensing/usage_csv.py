"""Usage as CSV, streamed row by row (a year of usage is never held in memory), for the usage page and
the API alike. Names people chose (models, users, peers) are written so that a spreadsheet shows them
as text: one starting with =, +, -, @, a tab or a carriage return would otherwise run as a formula."""

from __future__ import annotations

import csv

from django.http import StreamingHttpResponse

COLUMNS = ("day", "model_id", "model", "action", "agreement", "user", "peer", "quantity", "entries")
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(text: str) -> str:
    return f"'{text}" if text[:1] in _FORMULA_STARTS else text


def as_row(row: dict) -> dict:
    """One row of selectors.usage_per_day as the API's JSON and the CSV give it."""
    return {"day": row["day"].isoformat(), "model_id": str(row["solution_id"]), "model": row["solution__name"],
            "action": row["action"], "agreement": str(row["agreement_id"]), "user": row["user__username"] or "",
            "peer": row["peer"], "quantity": row["quantity"], "entries": row["entries"]}


class _Echo:
    """csv.writer writes into this and gets the line back."""

    def write(self, value: str) -> str:
        return value


def response(rows, filename: str = "licence-usage.csv") -> StreamingHttpResponse:
    writer = csv.writer(_Echo())

    def lines():
        yield writer.writerow(COLUMNS)
        for row in rows.iterator(chunk_size=2000):
            values = as_row(row)
            yield writer.writerow([safe_cell(str(values[name])) if name in ("model", "user", "peer") else values[name]
                                   for name in COLUMNS])

    answer = StreamingHttpResponse(lines(), content_type="text/csv; charset=utf-8")
    answer["Content-Disposition"] = f'attachment; filename="{filename}"'
    return answer
