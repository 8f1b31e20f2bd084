"""Atomic file writing shared by the tf_compress command-line tools.

A report or model file is either fully written or not touched at all: data
goes to a temporary file in the destination's directory, is flushed to disk
with `fsync`, and then renamed over the destination with `os.replace` (atomic
on POSIX and Windows when both paths are on the same file system). On any
failure the temporary file is removed and the previous content stays intact.
A process killed mid-write leaves only a hidden `.partial-<pid>-...` file,
which `remove_stale_partial_files` clears on the next run.
"""

import json
import math
import os
import tempfile

import numpy as np

from tf_compress.errors import UserInputError

__all__ = [
    "atomic_write_bytes",
    "atomic_write_text",
    "atomic_write_json",
    "to_json_safe",
    "check_writable_file",
    "PARTIAL_PREFIX",
    "make_partial_file",
    "remove_stale_partial_files",
]

# Every temporary file written next to its destination starts with this,
# then the writer's process id: `.partial-<pid>-<name>.<random><suffix>`.
# A process killed mid-write leaves one behind; `remove_stale_partial_files`
# removes those whose writer no longer runs.
PARTIAL_PREFIX = ".partial-"


def _default_file_mode():
  """Returns the mode a new file gets under the current umask (e.g. 0o644)."""
  umask = os.umask(0)
  os.umask(umask)
  return 0o666 & ~umask


def make_partial_file(path, suffix=".tmp"):
  """Creates an empty temporary file for `path` in `path`'s directory.

  Its name starts with `PARTIAL_PREFIX` and this process's id, so that a
  later run can tell a file left by a killed writer from one being written.

  Args:
    path: the destination the temporary file will replace.
    suffix: the temporary file's suffix (Keras wants `.keras` for a model).

  Returns:
    `(fd, tmp_path)`: an open descriptor and the temporary file's path,
    whose mode is what a new file gets under the umask.
  """
  path = os.fspath(path)
  directory = os.path.dirname(os.path.abspath(path))
  prefix = f"{PARTIAL_PREFIX}{os.getpid()}-{os.path.basename(path)}."
  fd, tmp_path = tempfile.mkstemp(dir=directory, prefix=prefix, suffix=suffix)
  os.chmod(tmp_path, _default_file_mode())  # mkstemp makes it private
  return fd, tmp_path


def _writer_alive(pid):
  """Whether process `pid` still runs (or cannot be signalled by us)."""
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  except OSError:  # e.g. another user's process
    return True
  return True


def remove_stale_partial_files(directory):
  """Removes the partial files that killed writers left under `directory`.

  Files (at any depth) named `PARTIAL_PREFIX<pid>-...` whose process no
  longer runs are removed; those of running processes are kept.

  Args:
    directory: the folder to clean, e.g. a run's output directory.

  Returns:
    The removed paths, sorted.
  """
  removed = []
  for root, _, names in os.walk(os.fspath(directory)):
    for name in names:
      if not name.startswith(PARTIAL_PREFIX):
        continue
      pid = name[len(PARTIAL_PREFIX):].split("-", 1)[0]
      if pid.isdigit() and not _writer_alive(int(pid)):
        path = os.path.join(root, name)
        try:
          os.remove(path)
        except FileNotFoundError:
          continue
        removed.append(path)
  return sorted(removed)


def atomic_write_bytes(path, data):
  """Writes `data` to `path` atomically.

  Args:
    path: destination file path (str or path-like). Its directory must exist.
    data: the bytes to write.

  Raises:
    TypeError: if `data` is not bytes-like.
    OSError: if the temporary file cannot be created, written or renamed.
      The destination then keeps its previous content and no temporary file
      is left behind.
  """
  if not isinstance(data, (bytes, bytearray, memoryview)):
    raise TypeError(
        f"atomic_write_bytes needs bytes, got {type(data).__name__}; encode "
        "text first or use atomic_write_text.")
  path = os.fspath(path)
  directory = os.path.dirname(os.path.abspath(path))
  if os.path.exists(path):
    mode = os.stat(path).st_mode & 0o7777
  else:
    mode = _default_file_mode()
  fd, tmp_path = make_partial_file(path)
  try:
    with os.fdopen(fd, "wb") as f:
      f.write(data)
      f.flush()
      os.fsync(f.fileno())
    os.chmod(tmp_path, mode)
    os.replace(tmp_path, path)
  except BaseException:
    try:
      os.unlink(tmp_path)
    except OSError:
      pass
    raise
  _fsync_directory(directory)


def _fsync_directory(directory):
  """Best-effort fsync of a directory so that a rename survives a crash."""
  try:
    fd = os.open(directory, os.O_RDONLY)
  except OSError:
    return
  try:
    os.fsync(fd)
  except OSError:
    pass
  finally:
    os.close(fd)


def atomic_write_text(path, text, encoding="utf-8"):
  """Writes the string `text` to `path` atomically.

  Args:
    path: destination file path. Its directory must exist.
    text: the string to write.
    encoding: the text encoding.

  Raises:
    TypeError: if `text` is not a string.
    OSError: as for `atomic_write_bytes`.
  """
  if not isinstance(text, str):
    raise TypeError(
        f"atomic_write_text needs a str, got {type(text).__name__}.")
  atomic_write_bytes(path, text.encode(encoding))


def to_json_safe(obj):
  """Converts numpy values and containers into plain JSON-compatible Python.

  numpy scalars become int/float/bool, arrays and tuples become lists, mapping
  keys become strings. Non-finite floats are kept (and rejected later by
  `json.dumps(..., allow_nan=False)`).

  Args:
    obj: a nest of dicts, lists, tuples, numpy arrays and scalars.

  Returns:
    The same structure built only from dict, list, str, int, float, bool and
    None.

  Raises:
    TypeError: for a value that has no JSON form (e.g. an arbitrary object).
  """
  if obj is None or isinstance(obj, (str, bool)):
    return obj
  if isinstance(obj, (int, float)):
    return obj
  if isinstance(obj, np.bool_):
    return bool(obj)
  if isinstance(obj, np.integer):
    return int(obj)
  if isinstance(obj, np.floating):
    return float(obj)
  if isinstance(obj, np.ndarray):
    return to_json_safe(obj.tolist())
  if isinstance(obj, dict):
    return {str(k): to_json_safe(v) for k, v in obj.items()}
  if isinstance(obj, (list, tuple)):
    return [to_json_safe(v) for v in obj]
  if isinstance(obj, os.PathLike):
    return os.fspath(obj)
  raise TypeError(
      f"value of type {type(obj).__name__} cannot be written as JSON; "
      "convert it to a number, string, list or dict first.")


def atomic_write_json(path, obj, indent=2):
  """Writes `obj` as JSON to `path` atomically.

  The object is converted and serialised completely before the file is
  touched, so a value that cannot be written leaves the destination as it was.

  Args:
    path: destination file path. Its directory must exist.
    obj: a JSON-compatible nest; numpy scalars and arrays are converted.
    indent: JSON indentation.

  Raises:
    TypeError: for values with no JSON form.
    ValueError: for NaN or infinite floats (not valid JSON).
    OSError: as for `atomic_write_bytes`.
  """
  safe = to_json_safe(obj)
  _check_finite(safe, "$")
  text = json.dumps(safe, indent=indent, allow_nan=False, sort_keys=False)
  atomic_write_text(path, text + "\n")


def _check_finite(obj, where):
  """Raises ValueError naming the first NaN/inf found in a JSON-safe nest."""
  if isinstance(obj, float) and not math.isfinite(obj):
    raise ValueError(
        f"cannot write {obj} at {where} as JSON (NaN and infinity are not "
        "valid JSON); replace it with null or a finite number.")
  if isinstance(obj, dict):
    for k, v in obj.items():
      _check_finite(v, f"{where}.{k}")
  elif isinstance(obj, list):
    for i, v in enumerate(obj):
      _check_finite(v, f"{where}[{i}]")


def check_writable_file(path, what="output file"):
  """Checks, before any expensive work, that `path` can be written.

  A temporary file is created (and removed) in the destination directory,
  which detects missing directories, permissions and read-only file systems.

  Args:
    path: the file that will be written later.
    what: how the file is named in error messages (e.g. "--output_json").

  Raises:
    UserInputError: if `path` is a directory, its directory does not exist or
      is not a directory, or a file cannot be created there.
  """
  path = os.fspath(path)
  if not path:
    raise UserInputError(f"{what} is empty; give a file path.")
  if os.path.isdir(path):
    raise UserInputError(
        f"{what} '{path}' is a directory; give a file path such as "
        f"'{os.path.join(path, 'result.json')}'.")
  directory = os.path.dirname(os.path.abspath(path))
  if not os.path.exists(directory):
    raise UserInputError(
        f"cannot write {what} '{path}': directory '{directory}' does not "
        "exist; create it first or choose another location.")
  if not os.path.isdir(directory):
    raise UserInputError(
        f"cannot write {what} '{path}': '{directory}' is not a directory.")
  try:
    fd, probe = tempfile.mkstemp(dir=directory, prefix=".write_check.")
  except OSError as e:
    raise UserInputError(
        f"cannot write {what} '{path}': {e.strerror or e}; choose a "
        "writable location.") from e
  os.close(fd)
  try:
    os.unlink(probe)
  except OSError:
    pass
