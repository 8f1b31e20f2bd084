"""Tests of tf_compress.io_utils (atomic writes)."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from tf_compress import io_utils
from tf_compress.errors import UserInputError


def _leftovers(directory, keep):
  return sorted(p.name for p in directory.iterdir() if p.name not in keep)


def test_atomic_write_text_creates_and_overwrites(tmp_path):
  path = tmp_path / "report.txt"
  io_utils.atomic_write_text(path, "first\n")
  assert path.read_text() == "first\n"
  io_utils.atomic_write_text(str(path), "second")
  assert path.read_text() == "second"
  assert _leftovers(tmp_path, {"report.txt"}) == []


def test_atomic_write_keeps_existing_file_mode(tmp_path):
  path = tmp_path / "a.bin"
  path.write_bytes(b"old")
  os.chmod(path, 0o640)
  io_utils.atomic_write_bytes(path, b"\x00\x01")
  assert path.read_bytes() == b"\x00\x01"
  assert os.stat(path).st_mode & 0o777 == 0o640


def test_atomic_write_bytes_rejects_text(tmp_path):
  with pytest.raises(TypeError, match="needs bytes"):
    io_utils.atomic_write_bytes(tmp_path / "a", "text")
  assert not (tmp_path / "a").exists()


def test_failed_replace_keeps_old_content_and_no_temp_file(tmp_path,
                                                          monkeypatch):
  path = tmp_path / "result.json"
  io_utils.atomic_write_json(path, {"v": 1})

  def broken_replace(src, dst):
    raise OSError(28, "No space left on device")

  monkeypatch.setattr(os, "replace", broken_replace)
  with pytest.raises(OSError, match="No space left"):
    io_utils.atomic_write_json(path, {"v": 2})
  assert json.loads(path.read_text()) == {"v": 1}
  assert _leftovers(tmp_path, {"result.json"}) == []


def test_failed_write_midway_keeps_old_content(tmp_path, monkeypatch):
  path = tmp_path / "model.bin"
  path.write_bytes(b"previous")

  def broken_fsync(fd):
    raise OSError(5, "Input/output error")

  monkeypatch.setattr(os, "fsync", broken_fsync)
  with pytest.raises(OSError, match="Input/output"):
    io_utils.atomic_write_bytes(path, b"new content that never lands")
  assert path.read_bytes() == b"previous"
  assert _leftovers(tmp_path, {"model.bin"}) == []


def test_atomic_write_json_converts_numpy(tmp_path):
  path = tmp_path / "out.json"
  obj = {"i": np.int64(3), "f": np.float32(0.5), "b": np.bool_(True),
         "a": np.arange(3), "t": (1, 2), 7: "int key"}
  io_utils.atomic_write_json(path, obj, indent=None)
  assert json.loads(path.read_text()) == {
      "i": 3, "f": 0.5, "b": True, "a": [0, 1, 2], "t": [1, 2],
      "7": "int key"}


@pytest.mark.parametrize("bad", [float("nan"), np.float64("inf")])
def test_atomic_write_json_rejects_non_finite_and_keeps_file(tmp_path, bad):
  path = tmp_path / "out.json"
  path.write_text('{"old": true}')
  with pytest.raises(ValueError, match=r"\$\.stats\[1\]"):
    io_utils.atomic_write_json(path, {"stats": [1.0, bad]})
  assert path.read_text() == '{"old": true}'
  assert _leftovers(tmp_path, {"out.json"}) == []


def test_to_json_safe_rejects_objects():
  with pytest.raises(TypeError, match="object"):
    io_utils.to_json_safe({"x": object()})


def test_check_writable_file(tmp_path):
  io_utils.check_writable_file(tmp_path / "new.json")
  assert list(tmp_path.iterdir()) == []  # the probe file is removed
  with pytest.raises(UserInputError, match="does not exist"):
    io_utils.check_writable_file(tmp_path / "missing" / "a.json")
  with pytest.raises(UserInputError, match="is a directory"):
    io_utils.check_writable_file(tmp_path, what="--output_json")
  blocker = tmp_path / "file.txt"
  blocker.write_text("x")
  with pytest.raises(UserInputError, match="not a directory"):
    io_utils.check_writable_file(blocker / "a.json")


def test_stale_partial_files_of_dead_writers_are_removed(tmp_path,
                                                        monkeypatch):
  # A writer that has exited (killed mid-write) left half a file behind.
  dead_pid = subprocess.Popen([sys.executable, "-c", "pass"])
  dead_pid.wait()
  (tmp_path / "sub").mkdir()
  with monkeypatch.context() as patch:
    patch.setattr(os, "getpid", lambda: dead_pid.pid)
    fd, stale = io_utils.make_partial_file(tmp_path / "sub" / "report.json")
  os.write(fd, b"half")
  os.close(fd)
  assert os.path.basename(stale).startswith(
      f".partial-{dead_pid.pid}-report.json.")
  mine_fd, mine = io_utils.make_partial_file(tmp_path / "model.keras",
                                             suffix=".keras")
  os.close(mine_fd)
  assert os.path.basename(mine).startswith(
      f".partial-{os.getpid()}-model.keras.") and mine.endswith(".keras")
  whole = tmp_path / "sub" / "whole.json"
  whole.write_text("{}")
  assert io_utils.remove_stale_partial_files(tmp_path) == [stale]
  assert not os.path.exists(stale)
  assert os.path.exists(mine) and whole.exists()  # a live writer's is kept
