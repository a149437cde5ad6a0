"""Errors that map to the CLI's exit codes.

Exit codes (DEVELOPERS.md): 0 an answer, 1 no feasible answer / failed check, 2 bad input.
"""


class InputError(ValueError):
    """Bad input from the user: the CLI prints one line and exits 2."""

    exit_code = 2


class InfeasibleError(RuntimeError):
    """A well-formed question with no feasible answer: the CLI exits 1."""

    exit_code = 1


def closest_names(name: str, choices, n: int = 3) -> str:
    """A ', '-joined list of the names closest to `name`, for 'did you mean' messages."""
    import difflib

    hits = difflib.get_close_matches(name.lower(), [c.lower() for c in choices], n=n, cutoff=0.4)
    lookup = {c.lower(): c for c in choices}
    return ", ".join(lookup[h] for h in hits)
