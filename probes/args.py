"""The probes' command lines: one parser class and the checks every run makes before a rank starts.

Rules (as for every sizer command): no abbreviated flags (`--quic` is an error, never `--quick`),
a usage error is one line on stderr and exit 2 (the usage block only on --help), and input that
would be found wrong only after minutes of measuring -- an `--out` that cannot be written, a
`--timeout` of nan -- is refused before any rank starts.
"""

import argparse
import math
import os

from sizer.errors import InputError


class Parser(argparse.ArgumentParser):
    """argparse with allow_abbrev=False and one-line usage errors (exit 2)."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message):
        first = str(message).strip().splitlines()[0] if str(message).strip() else "bad arguments"
        self.exit(2, f"{self.prog}: error: {first}\n")


def seconds(text) -> float:
    """A positive, finite duration ('300', '90s', '500ms'); argparse type."""
    from sizer.units import parse_seconds

    try:
        value = parse_seconds(text)
    except (InputError, OverflowError, ValueError) as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number of seconds, got {text!r}")
    return value


def positive_int(text) -> int:
    """An integer >= 1; argparse type."""
    try:
        value = int(str(text).strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}")
    return value


def size_bytes(text) -> int:
    """A positive, finite byte count ('64MiB'); InputError otherwise."""
    from sizer.units import parse_bytes

    try:
        value = parse_bytes(text)
    except (OverflowError, ValueError):
        raise InputError(f"cannot parse size {text!r} (examples: 4096, 16MiB, 1GB)") from None
    if value < 1:
        raise InputError(f"size must be at least 1 byte, got {text!r}")
    return value


def writable_file(path: str, flag: str = "--out", create_folder: bool = False) -> str:
    """`path` as a file this process can create or overwrite, or InputError saying why not:
    a directory, a missing folder (created only when `create_folder`, for default paths), a
    folder or file it cannot write. Checked by creating and removing a probe file beside it."""
    if not path or not str(path).strip():
        raise InputError(f"{flag} is empty; give a file path")
    given, path = path, os.path.abspath(path)
    if os.path.isdir(path):
        raise InputError(f"{flag} {path} is a directory; give a file path")
    folder = os.path.dirname(path)
    if not os.path.isdir(folder):
        if not create_folder:
            raise InputError(f"{flag} {path}: folder {folder} does not exist")
        try:
            os.makedirs(folder, exist_ok=True)
        except OSError as exc:
            raise InputError(f"{flag} {path}: cannot create folder {folder} ({exc.strerror})") from None
    if os.path.exists(path) and not os.access(path, os.W_OK):
        raise InputError(f"{flag} {path} is not writable")
    probe = os.path.join(folder, f".{os.path.basename(path)}.{os.getpid()}.probe")
    try:
        with open(probe, "w", encoding="utf-8"):
            pass
        os.unlink(probe)
    except OSError as exc:
        raise InputError(f"{flag} {path}: cannot write in {folder} ({exc.strerror})") from None
    return given
