"""A lock file that keeps a second process from training into a directory."""

import atexit
import contextlib
import json
import os
import socket
import time
import warnings

LOCK = "checkpoint.lock"
# The locks this process holds. Keras calls no `on_train_end` when `fit`
# raises (a later callback's `on_train_begin` refusing to start, an error in
# a step): they are released when the process exits, so that a run that
# wrote nothing leaves nothing behind. (A killed process leaves its lock,
# which the next run takes over.)
_HELD = set()


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def acquire_lock(directory):
    """Creates `directory/checkpoint.lock` (pid, host) or refuses to train.

    A lock of this process (left by a `fit` that raised) is taken over; so is,
    with a warning, the lock of a process that no longer runs on this host.
    """
    path = os.path.join(directory, LOCK)
    host = socket.gethostname()
    record = json.dumps({"pid": os.getpid(), "host": host, "time": time.time()})
    for _ in range(3):
        try:
            descriptor = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            pass
        else:
            with os.fdopen(descriptor, "w") as file:
                file.write(record)
            _HELD.add(path)
            return path
        try:
            with open(path) as file:
                owner = json.load(file)
            pid, owner_host = int(owner["pid"]), str(owner["host"])
        except FileNotFoundError:
            continue  # released meanwhile
        except (OSError, ValueError, KeyError, TypeError):
            pid, owner_host = None, host  # written by a process killed at once
        if pid != os.getpid() or owner_host != host:
            if owner_host != host or _alive(pid):
                where = "" if owner_host == host else f" on host {owner_host}"
                raise ValueError(
                    f"The directory {directory} is in use by another training "
                    f"process (pid {pid}{where}, which holds {path}): two runs "
                    "writing one directory would overwrite each other's "
                    "checkpoints. Wait for it to end or choose another "
                    f"`directory`; if that process no longer runs, delete {path}."
                )
            warnings.warn(
                f"CheckpointManager: taking over the lock {path} of process "
                f"{pid}, which no longer runs (it did not end its training).",
                stacklevel=3,
            )
        with contextlib.suppress(FileNotFoundError):
            os.remove(path)
    raise ValueError(f"Could not lock the directory {directory} ({path}).")


def release_lock(path):
    """Removes the lock `path` if this process still holds it."""
    _HELD.discard(path)
    try:
        with open(path) as file:
            owner = json.load(file)
        if owner.get("pid") == os.getpid():
            os.remove(path)
    except (OSError, ValueError, AttributeError):
        pass


@atexit.register
def _release_held_locks():
    for path in list(_HELD):
        release_lock(path)
