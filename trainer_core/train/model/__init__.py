"""The model: `load` (tokenizer, model, dtype, LoRA), `builtin` (the `builtin:` models), `checkpoint` (written
atomically, loaded back), `resume` (what a resumed run keeps and the line that says so), `finite` (no checkpoint
of NaN weights)."""
