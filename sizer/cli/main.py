"""The `sizer` command line: one sub-command per question.

Each sub-command lives in its own module `sizer/cli/<name>.py` exposing `register(subparsers)`;
this file only dispatches and maps errors to exit codes (0 answer, 1 infeasible, 2 bad input).
`--json` puts exactly one JSON document on stdout; warnings go to stderr. The document is held
until the exit code is known: on exit 1 it is still printed, with an `error` string (the stderr
reason) added where the command's own document has none (recommend's rejected splits, simulate
--find-rate's curve, the capacity plans), or, where the command produced none,
`{"command", "exit_code": 1, "infeasible", "error"}`. On exit 2 (bad input) stdout stays empty
and the one line on stderr is the answer.
"""

import argparse
import importlib
import sys

from sizer.errors import InfeasibleError, InputError
from sizer.output import (NonFiniteOutputError, emit_json, hold_documents, hold_warnings, release_documents,
                          release_warnings)

COMMANDS = ("models", "gpus", "memory", "comm", "step", "estimate", "recommend", "simulate")


class _Parser(argparse.ArgumentParser):
    """argparse that reports usage errors in one line and exits 2, and takes no abbreviations:
    with them `recommend --tp 4` was read as `--tpot 4`, a 4 s target."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message):
        sys.stderr.write(f"sizer: error: {message} (see `{self.prog} --help`)\n")
        sys.exit(2)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="sizer", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"sizer.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"sizer.cli.{name}":
                raise
            continue  # command not built yet
        module.register(sub)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    hold_warnings()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help (0) or a usage error (2, its one line already written)
        release_warnings(write=False)
        return exc.code if isinstance(exc.code, int) else 2
    release_warnings(write=True)
    if not getattr(args, "func", None):
        sys.stderr.write(f"sizer: error: give a command: {', '.join(COMMANDS)} "
                         "(see `sizer --help`)\n")
        return 2
    failure = None
    hold_documents()
    try:
        code = args.func(args)
    except InputError as exc:  # exit 2: stdout stays empty (the held document is dropped)
        sys.stderr.write(f"sizer: error: {exc}\n")
        return 2
    except InfeasibleError as exc:
        sys.stderr.write(f"sizer: {exc}\n")
        code, failure = 1, (exc, True)
    except NonFiniteOutputError as exc:
        sys.stderr.write(f"sizer: error: {exc}\n")
        code, failure = 1, (exc, False)
    except BrokenPipeError:
        return 0
    finally:
        docs = release_documents()  # whatever happened, emit_json writes directly again
    try:
        _write_documents(args, docs, failure)
    except BrokenPipeError:
        return 0
    return int(code or 0)


def _write_documents(args, docs: list, failure) -> None:
    """The run's one JSON document; on exit 1 under --json it names the reason (`error`)."""
    if failure is not None and getattr(args, "json", False):
        exc, infeasible = failure
        docs = [{**d, "error": str(exc)} if isinstance(d, dict) and not d.get("error") else d
                for d in docs] or [{"command": args.command, "exit_code": 1,
                                    "infeasible": infeasible, "error": str(exc)}]
    for doc in docs:
        emit_json(doc)


if __name__ == "__main__":
    sys.exit(main())
