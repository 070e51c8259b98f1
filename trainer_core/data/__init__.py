"""Training data read without torch: the file readers (`files`, `records`), the sources of a run read whole
(`corpus`), the on-disk cache (`cache`) and `data.exclude` (`exclude`). The CLI's data checks, the workbench and the
evaluator read data through here; the tokenizing half is `trainer_core.train.data.batch` (docs/data.md)."""
