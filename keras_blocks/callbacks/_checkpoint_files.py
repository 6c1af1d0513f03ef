"""The files of a checkpoint: written durably, and checked against a manifest.

A checkpoint records what it must contain in a manifest (the size and SHA-256
of each of its files), written after them and before the index names the
checkpoint; `manifest_damage` compares the files with it before a restore:
HDF5 keeps no checksums, so a flipped byte in a weight file would otherwise
load without a word. Arrays that are not variables (the best weights of
`EarlyStopping`) go in an `.npz` file under the same manifest.
"""

import hashlib
import json
import os

import numpy as np

MANIFEST = "manifest.json"
ARRAYS = "arrays.npz"


def write_atomically(path, text):
    partial = f"{path}.partial"
    with open(partial, "w") as file:
        file.write(text)
        file.flush()
        os.fsync(file.fileno())
    os.replace(partial, path)
    sync_directory(os.path.dirname(path))


def sync_directory(path):
    descriptor = os.open(path or ".", os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _digest(path):
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for chunk in iter(lambda: file.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def sync_file(path):
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def write_manifest(path, files):
    """Records the size and SHA-256 of `files` (paths in `path`'s folder)."""
    entries = {
        os.path.basename(name): {"size": os.path.getsize(name), "sha256": _digest(name)}
        for name in files
    }
    write_atomically(path, json.dumps({"files": entries}, indent=1))


def manifest_damage(path):
    """Why the files listed by the manifest `path` differ from it, or None."""
    folder = os.path.dirname(path)
    if not os.path.isdir(folder):
        return f"its folder {os.path.basename(folder)} is missing"
    try:
        with open(path) as file:
            entries = json.load(file)["files"]
    except FileNotFoundError:
        return (
            f"its manifest {os.path.basename(path)} is missing (deleted, or "
            "written by a keras_blocks that kept none)"
        )
    except (OSError, ValueError, KeyError, TypeError) as error:
        return f"its manifest {os.path.basename(path)} is unreadable ({error})"
    for name, entry in entries.items():
        file = os.path.join(folder, name)
        if not os.path.isfile(file):
            return f"{name} is missing"
        size = os.path.getsize(file)
        if size != entry["size"]:
            return f"{name} has {size} bytes, {entry['size']} when written"
        if _digest(file) != entry["sha256"]:
            return f"the SHA-256 of {name} differs from the one recorded when written"
    return None


def save_arrays(path, arrays):
    """`arrays` ({name: array}) as an .npz file; dtypes NumPy cannot store
    (bfloat16) as raw bytes and their name."""
    stored, dtypes = {}, {}
    for name, value in arrays.items():
        value = np.asarray(value)
        if value.dtype.kind == "V" or value.dtype.name == "bfloat16":
            dtypes[name] = value.dtype.name
            value = value.view(f"u{value.dtype.itemsize}")
        stored[name] = value
    stored["__dtypes__"] = np.asarray(json.dumps(dtypes))
    with open(path, "wb") as file:
        np.savez(file, **stored)
        file.flush()
        os.fsync(file.fileno())


def load_arrays(path):
    if not os.path.exists(path):
        return {}
    with np.load(path) as stored:
        dtypes = json.loads(str(stored["__dtypes__"]))
        return {
            name: stored[name].view(dtypes[name]) if name in dtypes else stored[name]
            for name in stored.files
            if name != "__dtypes__"
        }
