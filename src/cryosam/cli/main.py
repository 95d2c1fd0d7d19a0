"""The ``cryosam`` entry point: registers the commands, runs them, turns errors into lines.

Heavy imports (scipy, pandas, torch, dask and the library below the CLI) happen inside the
commands so that ``cryosam --help`` is instant. User errors
(:class:`~cryosam.errors.CryosamError`) print one line on stderr and exit with status 2;
``--debug`` (anywhere on the command line) shows the traceback instead.
"""

from __future__ import annotations

import errno
import sys
import traceback

import typer

import cryosam.cli.app as cli_app
from cryosam.cli import (  # noqa: F401  (each registers its commands on the app)
    batch,
    cache,
    copick,
    demo,
    evaluate,
    info,
    models,
    pick,
    recut,
    segment,
    simulate,
)
from cryosam.errors import CryosamError

STORAGE_ERRORS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM)


def _is_storage_error(exc: BaseException) -> bool:
    """Disk full, quota, read-only or permission problems: the user's to fix, not a bug."""
    return isinstance(exc, OSError) and exc.errno in STORAGE_ERRORS


def _say_interrupted() -> None:
    print(
        "\ncryosam: interrupted; finished outputs are kept, nothing partial was written "
        "(rerun the same command to go on)",
        file=sys.stderr,
    )


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``cryosam`` console script; returns the exit status."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    if debug:
        args = [a for a in args if a != "--debug"]
    cli_app.command_line = " ".join(["cryosam", *args])
    try:
        command = cli_app.tidy_help(typer.main.get_command(cli_app.app))
        command.main(args=args, prog_name="cryosam", standalone_mode=True)
    except SystemExit as exc:  # click ends every run, including usage errors (status 2)
        code = exc.code
        if code == 130:  # typer turns Ctrl-C into exit status 130
            _say_interrupted()
        return code if isinstance(code, int) else (0 if code is None else 1)
    except KeyboardInterrupt:
        _say_interrupted()
        return 130
    except CryosamError as exc:
        if debug:
            traceback.print_exc()
        print(f"cryosam: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except MemoryError:
        if debug:
            traceback.print_exc()
        print(
            "cryosam: error: out of memory; use a smaller volume or a machine with more memory",
            file=sys.stderr,
        )
        return 2
    except Exception as exc:  # a bug: say so, briefly, unless debugging
        if debug:
            traceback.print_exc()
        if _is_storage_error(exc):
            where = f" ({exc.filename})" if exc.filename else ""
            print(
                f"cryosam: error: {exc.strerror or exc}{where}; nothing was replaced: free "
                "space, check permissions or choose another --out",
                file=sys.stderr,
            )
            return 2
        if not debug:
            print(
                f"cryosam: internal error: {type(exc).__name__}: {exc} "
                "(rerun with --debug for the traceback and report it)",
                file=sys.stderr,
            )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
