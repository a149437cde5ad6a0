"""The faces: the `sizer` command line, one module per sub-command (main.py dispatches) and the flags
they share (common.py).

May import: anything in sizer/. Only cli/, the UI (ui/, app.py) and probes/ import sizer.cli."""
