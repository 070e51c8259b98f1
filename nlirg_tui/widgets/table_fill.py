"""Refilling a DataTable that a timer redraws: cells change in place when the rows and columns are the same ones,
so the user's cursor and scroll position stay where they were (`DataTable.clear` resets both to the top left)."""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text
from textual.widgets import DataTable

Cell = str | Text
Row = tuple[str, Sequence[Cell]]
"""A row's key and its cells."""


def fill_table(table: DataTable, columns: Sequence[str], rows: Sequence[Row]) -> None:
    """Show `rows` under `columns`: changed cells only when the table already has these columns and row keys,
    else rebuilt (the columns only when they differ), the cursor kept on its row number."""
    same_columns = [str(c.label) for c in table.columns.values()] == list(columns)
    if same_columns and [k.value for k in table.rows] == [key for key, _ in rows]:
        _update_cells(table, rows)
        return
    keep = table.cursor_coordinate
    table.clear(columns=not same_columns)
    if not same_columns:
        table.add_columns(*columns)
    for key, cells in rows:
        table.add_row(*cells, key=key)
    if rows:
        table.move_cursor(row=min(keep.row, len(rows) - 1), column=min(keep.column, len(columns) - 1))


def _update_cells(table: DataTable, rows: Sequence[Row]) -> None:
    column_keys = list(table.columns)
    for key, cells in rows:
        for column, cell in zip(column_keys, cells, strict=True):
            if table.get_cell(key, column) != cell:
                table.update_cell(key, column, cell, update_width=True)
