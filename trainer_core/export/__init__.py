"""`nlirg export`: a run's model as a Hugging Face folder, a GGUF file or an Ollama model, each with a model card
(docs/export.md). `plan` and `card` are torch-free (the CLI checks its arguments with them); `hf`, `gguf_file`
and `ollama` load and write the model in the `python -m trainer_core.export` process."""
