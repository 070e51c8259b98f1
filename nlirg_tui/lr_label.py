"""The learning rate as the header and the Loss pane show it: one short scientific format (`2e-4`), and the live
`lr_scale` next to it from the step it applies; until that step's event arrives, the scale is announced as
`(×0.5 from step 13)`, so the number shown is never the old LR beside the new scale."""

from __future__ import annotations

from nlirg_tui.axis import short_sci
from nlirg_tui.state import RunState


def lr_label(state: RunState) -> str:
    lr = state.lr.last
    text = short_sci(lr) if lr is not None else "-"
    if state.lr_scale_step is not None and state.step <= state.lr_scale_step:
        return f"{text} (×{state.lr_scale:g} from step {state.lr_scale_step + 1})"
    if state.lr_scale != 1.0:
        return f"{text} ×{state.lr_scale:g}"
    return text


def scale_for_lr(target: float, state: RunState) -> float | None:
    """The lr_scale that makes the LR now `target`: the scheduled LR now is the last LR shown over its scale.
    None before the first step event (no LR known yet) or when the schedule stands at 0."""
    lr = state.lr.last
    if lr is None or state.lr_scale <= 0:
        return None
    scheduled = lr / state.lr_scale
    return target / scheduled if scheduled > 0 else None
