"""How every command-line entry point reports a user error: one line, exit code 2, no traceback.

``python -m data_prep.make_dataset``, ``python -m data_prep.cad``, ``python -m symnb.demo`` and the
``symnb`` command run their ``main`` through :func:`run_main`::

    if __name__ == "__main__":
        sys.exit(run_main(main))

A user error (a bad value, a missing, existing or unreadable file: ``ValueError`` and ``OSError``,
which include ``BadSampleError``, ``MeshFormatError``, ``FileNotFoundError`` and
``FileExistsError``) prints ``error: <message>`` on stderr and exits with code 2, as argparse does
for bad options; Ctrl-C prints ``error: interrupted`` and exits with 130. ``--debug`` anywhere on
the command line shows the traceback instead. Any other exception is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import Any

#: Exceptions that are the user's input, not a bug in symnb.
USER_ERRORS: tuple[type[BaseException], ...] = (ValueError, OSError)
#: Exit code of a user error (argparse uses 2 for bad options too).
EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130


def one_line(err: BaseException) -> str:
    """The exception's message on one line (its type name when it has no message)."""
    text = " ".join(str(err).split())
    return text or type(err).__name__


def add_debug_flag(ap: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Document ``--debug`` in a parser's help (:func:`run_main` reads it before the parser runs)."""
    ap.add_argument("--debug", action="store_true", help="show the full traceback of an error")
    return ap


def run_main(main: Callable[[list[str]], Any], argv: Sequence[str] | None = None) -> int:
    """Call ``main(argv)`` (default: ``sys.argv[1:]``, without ``--debug``) and turn user errors into
    a one-line ``error: ...`` on stderr and exit code 2. On success: what ``main`` returned if that
    is an exit code (an int), else 0."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    argv = [a for a in argv if a != "--debug"]
    try:
        rc = main(argv)
    except USER_ERRORS as err:
        if debug:
            raise
        print(f"error: {one_line(err)}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        if debug:
            raise
        print("error: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    return rc if isinstance(rc, int) and not isinstance(rc, bool) else 0
