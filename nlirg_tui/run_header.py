"""The Run screen's header, laid out for the terminal's width: the run (name, status, step, loss, LR) first, then
the notes (data preparation, the special-token warning, the last ack, the resume summary), each whole or not at
all, over at most two lines. A note that does not fit is left out whole and counted at the end (`+1 in 6 Log`):
the Log pane holds every one of them. So at 80 columns nothing is cut mid-word, and what is left out says where
it is."""

from __future__ import annotations

from rich.text import Text

from nlirg_tui.lr_label import lr_label
from nlirg_tui.panes import PANE_KEY
from nlirg_tui.state import RunState

MAX_LINES = 2
GAP = "  "
HINT_ROOM = len(f"{GAP}+9 in 6 Log")
"""A note is at most a line less this, so the count of those left out fits beside it."""


def header_text(state: RunState, status: str, width: int) -> Text:
    """The header for a terminal `width` columns wide (at most MAX_LINES lines, each within `width`)."""
    return fit(run_part(state, status), notes(state), width)


def run_part(s: RunState, status: str) -> Text:
    total = f"/{s.total_steps}" if s.total_steps else ""
    loss = s.loss.last
    return Text.assemble((f" {s.name} ", "bold reverse"), " ", (status, _status_style(status)),
                         f"  step {s.step}{total}", f"  loss {loss:.4f}" if loss is not None else "",
                         (f"  lr {lr_label(s)}", "bold yellow" if s.lr_scale != 1.0 else "")
                         if s.lr.last is not None else "")


def notes(s: RunState) -> list[Text]:
    """The notes, most wanted first: what a starting run is busy with, the answer to the user's last key, a warning
    about the run's data, what a resume changed."""
    out = []
    if s.preparing:
        out.append(Text(preparing_text(s.preparing), style="bold yellow"))
    if s.last_ack:
        out.append(Text(s.last_ack, style="italic"))
    if s.special_zeroed:
        out.append(Text(special_zeroed_summary(s.special_zeroed), style="bold yellow"))
    if s.resumed:
        out.append(Text(resume_summary(s.resumed), style="yellow"))
    return out


def fit(head: Text, items: list[Text], width: int) -> Text:
    """`head` then `items` in order, each whole, over at most MAX_LINES lines of `width` cells; an item that does
    not fit is left out (a later, shorter one may still fit) and the count of those left out ends the last line.
    An item longer than a whole line is shortened at a word, with an ellipsis."""
    width = max(width, 20)
    rows: list[list[Text]] = [[]]
    """The items on each line; the first line starts with `head`, the others with one space."""
    left = 0
    for item in items:
        item = shorten(item, width - 1 - HINT_ROOM)
        row = next((i for i in range(len(rows)) if _line_width(head, i, [*rows[i], item]) <= width), None)
        if row is not None:
            rows[row].append(item)
        elif len(rows) < MAX_LINES:
            rows.append([item])
        else:
            left += 1
    while left:  # the count ends the last line, taking notes off it until it fits
        hint = Text(f"+{left} in {PANE_KEY['log']} Log", style="dim")
        last = len(rows) - 1
        if _line_width(head, last, [*rows[last], hint]) <= width or not rows[last]:
            rows[last].append(hint)
            break
        rows[last].pop()
        left += 1
        if not rows[last] and last:
            rows.pop()
    lines = []
    for i, row in enumerate(rows):
        line = head.copy() if i == 0 else Text(" ")
        for j, item in enumerate(row):
            line.append(GAP if i == 0 or j else "")
            line.append_text(item)
        lines.append(line)
    return Text("\n").join(lines)


def _line_width(head: Text, line: int, row: list[Text]) -> int:
    """The cells of line number `line` if it held the items `row`."""
    lead = head.cell_len if line == 0 else 1 - len(GAP)
    return lead + sum(len(GAP) + t.cell_len for t in row)


def shorten(item: Text, room: int) -> Text:
    """`item` whole when it fits `room` cells, else cut at the last space before it, with `…`."""
    if item.cell_len <= room:
        return item
    cut = item.plain.rfind(" ", 0, room - 1)
    return item[:cut if cut > 0 else room - 1] + Text("…", style=item.style)


def resume_summary(line: str) -> str:
    """`resumed from checkpoints/step-4 at step 4: lr 0.0002 -> 0.001, ...` -> `resumed at 4: lr 0.0002 -> 0.001`."""
    head, _, rest = line.partition(": ")
    step = head.rsplit(" ", 1)[-1]
    return f"resumed at {step}: {rest.split(', ')[0]}"


def special_zeroed_summary(line: str) -> str:
    """The trainer's special-token warning -> `'<|im_end|>' zeroed: nlirg.protect_special_tokens`."""
    token = line.partition("most often ")[2].partition(" (id")[0] or "special tokens"
    return f"{token} zeroed: nlirg.protect_special_tokens"


def _status_style(status: str) -> str:
    return {"running": "green", "paused": "yellow", "completed": "cyan", "stopped": "cyan",
            "failed": "red", "dead": "red"}.get(status, "")


def preparing_text(p: dict) -> str:
    """`tokenizing 40,000/100,000 (40%) 3,400/s`: the data preparation a starting run is busy with."""
    done, total = p.get("done") or 0, p.get("total") or 0
    share = f" ({done / total:.0%})" if total else ""
    rate = f" {p['samples_per_s']:,.0f}/s" if isinstance(p.get("samples_per_s"), (int, float)) else ""
    return f"{p.get('phase')} {done:,}/{total:,}{share}{rate}"
