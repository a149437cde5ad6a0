"""What is served: model shapes read from Hugging Face config.json files and presets, weight and
KV precisions, and the TP/PP/DP/EP split itself.

May import: itself and the shared top-level modules (errors, units, output, charts)."""
