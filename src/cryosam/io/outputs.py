"""A run's outputs as one set: locked folder, staged writes, all-or-nothing.

Every file of a run is written into a hidden staging folder inside the output
folder and moved into place only when the whole run succeeded. An error, Ctrl-C
or a kill leaves no partial result under the final names (at most the staging
folder, which the next run cleans). A lock file stops two cryosam processes from
writing the same folder at once; a lock left by a dead process is taken over.

The moves themselves are many renames, so the commit is journalled: a journal naming
the staging folder and the new set is put in place with one atomic rename, and only
then are the files moved. A run killed among the moves leaves the journal; whoever
next takes the folder (a run, ``recut``, a batch resuming) first finishes that commit
(:func:`roll_forward`), so the folder holds the old set or the new one, never a mix.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from cryosam.errors import CryosamError

LOCK = ".cryosam.lock"
STAGING_PREFIX = ".cryosam-staging-"
MANIFEST = ".cryosam-outputs"
"""The files of the last committed set, one relative path per line."""
JOURNAL = ".cryosam-commit"
"""A commit under way: its staging folder and the new set (JSON)."""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def clear_abandoned(folder: Path) -> None:
    """Remove what a dead run left in ``folder``: staging folders, and its lock when the
    process that holds it is gone (a killed batch worker never reaches its cleanup)."""
    folder = Path(folder)
    lock = folder / LOCK
    try:
        pid = int(lock.read_text().strip() or 0)
    except (OSError, ValueError):
        pid = 0
    if lock.exists() and (not pid or not _alive(pid)):
        lock.unlink(missing_ok=True)
    if not lock.exists():
        roll_forward(folder)
        for old in folder.glob(STAGING_PREFIX + "*"):
            shutil.rmtree(old, ignore_errors=True)


def roll_forward(folder: Path) -> bool:
    """Finish a commit a killed run left half done (its journal is there): the old set's
    files the new set lacks go, the staged files still waiting are moved in, the journal
    goes. Safe to repeat (each step skips what is done). Call it holding the folder's lock,
    or when the lock's holder is dead. Returns whether there was one."""
    folder = Path(folder)
    journal = folder / JOURNAL
    try:
        entry = json.loads(journal.read_text())
        staging, new = folder / entry["staging"], list(entry["files"])
    except FileNotFoundError:
        return False
    except (OSError, ValueError, KeyError, TypeError):
        journal.unlink(missing_ok=True)  # not ours, or unreadable: nothing to finish
        return False
    for name in sorted(set(read_manifest(folder)) - set(new)):
        with contextlib.suppress(OSError):
            (folder / name).unlink()  # the old set's file the new set lacks
    for rel in [*new, MANIFEST]:
        src, dest = staging / rel, folder / rel
        if src.is_file():
            dest.parent.mkdir(parents=True, exist_ok=True)
            os.replace(src, dest)
    journal.unlink(missing_ok=True)
    shutil.rmtree(staging, ignore_errors=True)
    return True


def _commit(folder: Path, staging: Path, new: list[str]) -> None:
    """Journal the commit (one atomic rename decides it), then carry it out."""
    (staging / MANIFEST).write_text("".join(f"{n}\n" for n in new))
    pending = staging / (JOURNAL + ".tmp")
    pending.write_text(json.dumps({"staging": staging.name, "files": new}))
    os.replace(pending, folder / JOURNAL)
    roll_forward(folder)


def acquire_lock(folder: Path) -> Path:
    """Create ``folder/.cryosam.lock`` holding this pid, or say who holds it."""
    lock = folder / LOCK
    for _ in range(2):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            try:
                pid = int(lock.read_text().strip() or 0)
            except (OSError, ValueError):
                pid = 0
            if pid and pid != os.getpid() and _alive(pid):
                raise CryosamError(
                    f"another cryosam run (pid {pid}) is writing to {folder}; wait for it or "
                    "choose another --out"
                ) from None
            lock.unlink(missing_ok=True)  # left by a dead run
            continue
        with os.fdopen(fd, "w") as fh:
            fh.write(str(os.getpid()))
        return lock
    raise CryosamError(f"cannot lock {folder}; remove {lock} if no cryosam run is using it")


def check_outputs(out_dir: Path, names: list[str], overwrite: bool) -> None:
    """Refuse to start when any output exists (unless ``overwrite``) or ``out_dir`` is a file."""
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise CryosamError(f"{out_dir} exists and is not a folder; choose another --out")
    if not overwrite:
        existing = [n for n in names if (out_dir / n).exists()]
        if existing:
            raise CryosamError(
                f"{out_dir} already holds {', '.join(existing)}; pass --overwrite or another --out"
            )
    probe = out_dir
    while not probe.exists():
        probe = probe.parent
    if not os.access(probe, os.W_OK):
        raise CryosamError(f"cannot write to {probe}: permission denied; choose another --out")


@contextlib.contextmanager
def output_set(
    out_dir: str | os.PathLike, names: list[str] | tuple[str, ...] = (), overwrite: bool = True
) -> Iterator[Path]:
    """Yield a staging folder; on success move everything in it to ``out_dir``.

    Call :func:`check_outputs` first (it refuses before any work); this one checks again
    once it holds the lock, because another run may have written ``names`` meanwhile: without
    ``overwrite`` such results are never replaced. The folder's manifest (``MANIFEST``) lists
    what the last run committed; with ``overwrite`` the files of the old set that the new one
    lacks are removed (a particle run over an ``--extended`` one leaves no ``components.csv``
    behind), and files cryosam did not write are never touched.
    """
    out_dir = Path(out_dir)
    created = not out_dir.exists()
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CryosamError(f"cannot create {out_dir}: {exc.strerror or exc}") from exc
    lock = acquire_lock(out_dir)
    committed = False
    staging = None
    try:
        roll_forward(out_dir)  # a commit a killed run left half done
        existing = [n for n in names if (out_dir / n).exists()]
        if existing and not overwrite:
            raise CryosamError(
                f"{out_dir} now holds {', '.join(existing)}, written by another run while this "
                "one ran; nothing was replaced: pass --overwrite or another --out"
            )
        for old in out_dir.glob(STAGING_PREFIX + "*"):
            shutil.rmtree(old, ignore_errors=True)  # from an interrupted run
        staging = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=out_dir))
        yield staging
        new = sorted(str(p.relative_to(staging)) for p in staging.rglob("*") if p.is_file())
        _commit(out_dir, staging, new)
        committed = True
    finally:
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)
        lock.unlink(missing_ok=True)
        if created and not committed:
            with contextlib.suppress(OSError):
                out_dir.rmdir()  # only if empty: nothing of ours is left behind


def read_manifest(out_dir: Path) -> list[str]:
    """The files the last committed run wrote into ``out_dir`` (relative paths; [] if none).
    Only plain relative paths inside the folder are returned."""
    try:
        lines = (Path(out_dir) / MANIFEST).read_text().splitlines()
    except OSError:
        return []
    return [n for n in lines if n and not Path(n).is_absolute() and ".." not in Path(n).parts]
