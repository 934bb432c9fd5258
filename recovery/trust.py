"""Who may write a recovery directory: only the service's own user.

Bytewax unpickles the rows of its recovery partitions when a run resumes
(``snaps.ser_change``: ``pickle.loads`` of whatever ``snapshot()`` returned),
and unpickling runs code named in the data. So anyone who can write a
partition file, or replace it (write access to the directory, or to a
directory above it that lacks the sticky bit), can run code as the service.

Recovery directories are created with mode 0700 (:func:`make_private_dir`),
and the files the run trusts with mode 0600 whatever the umask
(:func:`write_private_text`, :func:`make_private_file`), so that a store the
service made is never refused for a group-writable file a umask of 002 gave it.
Before a run lets Bytewax read an existing one, :func:`check_private` refuses
(:class:`~recovery.errors.UntrustedRecoveryError`) unless

- the directory and the files Bytewax or the run reads (``part-*.sqlite3``
  and their ``-wal`` and ``-shm`` files, ``run_manifest.json``,
  ``run_config.json``) are owned by this process's user (or root) and are not
  writable by group or others;
- every directory above it is owned by this user or root, and is not
  writable by group or others unless it has the sticky bit (``/tmp``: others
  cannot rename or delete what they do not own there).

We refuse rather than warn: a warning in a log does not stop the code from
running, and the fix is one ``chmod``. The check is ``stat`` based and sees
POSIX permission bits only (not ACLs).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from recovery.errors import RecoveryError, UntrustedRecoveryError

#: Files of a recovery directory whose content a run trusts.
_TRUSTED_FILES = ("run_manifest.json", "run_config.json")
_PARTITION_SUFFIXES = (".sqlite3", ".sqlite3-wal", ".sqlite3-shm")


def make_private_dir(path: str | os.PathLike[str]) -> Path:
    """Create ``path`` (and missing parents) with mode 0700 for the leaf; an
    existing empty directory owned by this user is narrowed to 0700 too."""
    target = Path(path)
    try:
        target.mkdir(mode=0o700, parents=True, exist_ok=True)
        st = target.stat()
        if st.st_uid == os.geteuid() and stat.S_IMODE(st.st_mode) != 0o700:
            if not any(target.iterdir()):
                target.chmod(0o700)
    except OSError as exc:
        msg = f"cannot create directory {target}: {exc.strerror or exc}"
        raise RecoveryError(msg) from exc
    return target


def write_private_text(path: str | os.PathLike[str], text: str) -> None:
    """Write ``path`` (mode 0600 whatever the umask) through a temporary file."""
    target = Path(path)
    tmp = target.with_name(target.name + ".tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.fchmod(fd, 0o600)
        with open(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, target)
    except OSError as exc:
        msg = f"cannot write {target}: {exc.strerror or exc}"
        raise RecoveryError(msg) from exc


def make_private_file(path: str | os.PathLike[str]) -> None:
    """Narrow an existing file to mode 0600 (SQLite then gives its ``-wal`` and
    ``-shm`` files the same mode)."""
    try:
        os.chmod(path, 0o600)
    except OSError as exc:
        msg = f"cannot make {path} private: {exc.strerror or exc}"
        raise RecoveryError(msg) from exc


def _trusted_owner(st: os.stat_result) -> bool:
    return st.st_uid in (os.geteuid(), 0)


def _problem(path: Path, st: os.stat_result, *, sticky_ok: bool) -> str | None:
    mode = stat.S_IMODE(st.st_mode)
    if not _trusted_owner(st):
        return f"{path} is owned by uid {st.st_uid}, not by this user (uid {os.geteuid()})"
    if mode & 0o022 and not (sticky_ok and mode & stat.S_ISVTX):
        who = " and ".join(w for w, bit in (("group", 0o020), ("others", 0o002)) if mode & bit)
        return f"{path} is writable by {who} (mode {mode:04o})"
    return None


def untrusted_paths(directory: str | os.PathLike[str]) -> list[str]:
    """Every reason ``directory`` may hold rows written by someone else (empty:
    only this user, or root, can have written them)."""
    root = Path(directory).resolve()
    problems: list[str] = []
    try:
        st = root.stat()
    except OSError as exc:
        return [f"{root} cannot be read: {exc.strerror or exc}"]
    found = _problem(root, st, sticky_ok=False)
    if found:
        problems.append(found)
    for parent in root.parents:
        try:
            found = _problem(parent, parent.stat(), sticky_ok=True)
        except OSError:
            continue
        if found:
            problems.append(found)
    for entry in sorted(root.iterdir()):
        if not (entry.name in _TRUSTED_FILES or entry.name.endswith(_PARTITION_SUFFIXES)):
            continue
        try:
            found = _problem(entry, entry.lstat(), sticky_ok=False)
        except OSError:
            continue
        if entry.is_symlink():
            found = f"{entry} is a symbolic link"
        if found:
            problems.append(found)
    return problems


def check_private(directory: str | os.PathLike[str]) -> None:
    """Refuse to let a run read ``directory``'s rows unless only this user (or
    root) can have written them (see the module docstring)."""
    problems = untrusted_paths(directory)
    if not problems:
        return
    msg = (
        f"refusing to resume from the recovery directory {directory}: "
        f"{'; '.join(problems)}. A resume unpickles its rows, so whoever can write "
        "them can run code as this service. Make it writable by this user only "
        "(chmod go-w, chown), or start over with a new recovery directory."
    )
    raise UntrustedRecoveryError(msg)
