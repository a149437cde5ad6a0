"""The `sizer` command line: one sub-command per question.

Each sub-command lives in its own module `sizer/cli/<name>.py` exposing `register(subparsers)`;
this file only dispatches and maps errors to exit codes (0 answer, 1 infeasible, 2 bad input).
`--json` puts exactly one JSON document on stdout; warnings go to stderr. On exit 1 that document
is still printed: the command's own (recommend: no candidates, the error, what would fit) or,
where the command printed none, `{"command", "exit_code": 1, "infeasible": true, "error"}`. On
exit 2 (bad input) stdout stays empty and the one line on stderr is the answer.
"""

import argparse
import importlib
import sys

from sizer.errors import InfeasibleError, InputError
from sizer.output import NonFiniteOutputError, documents_printed, emit_json

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
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help (0) or a usage error (2, its one line already written)
        return exc.code if isinstance(exc.code, int) else 2
    if not getattr(args, "func", None):
        sys.stderr.write(f"sizer: error: give a command: {', '.join(COMMANDS)} "
                         "(see `sizer --help`)\n")
        return 2
    documents_printed(reset=True)
    try:
        code = args.func(args)
    except InputError as exc:
        sys.stderr.write(f"sizer: error: {exc}\n")
        return 2
    except InfeasibleError as exc:
        sys.stderr.write(f"sizer: {exc}\n")
        _json_failure(args, exc, infeasible=True)
        return 1
    except NonFiniteOutputError as exc:
        sys.stderr.write(f"sizer: error: {exc}\n")
        _json_failure(args, exc, infeasible=False)
        return 1
    except BrokenPipeError:
        return 0
    return int(code or 0)


def _json_failure(args, exc, infeasible: bool) -> None:
    """Exit 1 under --json: the one document, unless the command already printed its own."""
    if getattr(args, "json", False) and not documents_printed():
        emit_json({"command": args.command, "exit_code": 1, "infeasible": infeasible,
                   "error": str(exc)})


if __name__ == "__main__":
    sys.exit(main())
