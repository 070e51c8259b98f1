"""The training data path, tokenized: `prepare` (the entry: sources -> cached, memory-mapped `TokenizedSet`s and
a loader), `tokenize` (chat template and labels), `tokenized`, `packing`, `sampler` (batches by token budget),
`token_batch` (fixed token windows), `batch` (`Sample`, `Batch`, `collate`), `token_text` (token texts for the
Inspector) and `report` (what the log and summary.json say about the data). docs/data.md."""
