"""Partial results: what a calibration has measured so far, at a fixed path beside --out.

A user gets one shot at a reserved node, so nothing measured may be lost to a failing peer, a
hang, the launcher's SIGTERM or NCCL's watchdog (TORCH_NCCL_ASYNC_ERROR_HANDLING=3 ends the
process without running Python). Rank 0 therefore rewrites `partial_path(out)` -- a complete,
loadable profile whose env.status says 'partial: running (...)' -- after every step, atomically
(a temp file, then os.replace). The path is printed when the run starts. At the end:

* the run completes: the profile goes to --out and the partial file is removed;
* a rank fails, the run times out, SIGTERM/SIGINT arrives: --out gets the last partial
  profile with the reason in env.status (`finish`), the partial file is removed;
* the process is killed outright (SIGKILL, abort): the partial file stays, loadable as it is.
"""

import json
import os


def partial_path(out: str) -> str:
    """'profile.json' -> 'profile.partial.json' (same folder, so a check of --out covers it)."""
    root, ext = os.path.splitext(out)
    return f"{root}.partial{ext or '.json'}"


def write_atomic(path: str, doc: dict) -> None:
    """Write JSON so that a reader (or a kill mid-write) sees the old file or the new one."""
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(doc, fh, indent=1)
        fh.write("\n")
    os.replace(tmp, path)


def load(path: str) -> dict | None:
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except (OSError, ValueError):
        return None


def finish(partial: str, out: str, status: str) -> dict | None:
    """Move the last partial profile to `out` with env.status = `status`; the document, or
    None when no partial profile was written yet."""
    doc = load(partial)
    if doc is None:
        return None
    doc.setdefault("env", {})["status"] = status
    write_atomic(out, doc)
    try:
        os.unlink(partial)
    except OSError:
        pass
    return doc
