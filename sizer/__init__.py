"""sizer: how to split an LLM over GPUs for inference, and what it costs.

The analytical core (memory, communication, time) is pure numpy/scipy; presets are read
from the packaged `sizer_data` folder (the repository's `data/`).
"""

__version__ = "0.1.0"
