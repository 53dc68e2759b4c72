"""The one atomic writer: the target is replaced only by a complete file; failures leave the old one intact."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import pytest

from petr_ros import fileio


def test_write_replaces_whole_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "sub" / "out.txt"
    fileio.write_text(target, "first")
    fileio.write_bytes(target, b"second")
    assert target.read_bytes() == b"second"
    assert sorted(p.name for p in target.parent.iterdir()) == ["out.txt"]


def test_error_inside_block_keeps_previous_content(tmp_path):
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError):
        with fileio.atomic_open(target, "wb") as fh:
            fh.write(b"partial")
            raise RuntimeError("writer failed")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.bin"]


def test_atomic_path_for_writers_that_want_a_name_and_umask_mode(tmp_path):
    target = tmp_path / "a.npz"
    with fileio.atomic_path(target, suffix=".npz") as tmp:
        assert tmp.parent == tmp_path and tmp.name.endswith(".npz") and tmp.name.startswith(".a.npz.")
        tmp.write_bytes(b"x")
        assert not target.exists()
    assert target.read_bytes() == b"x"
    umask = os.umask(0)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask


def test_read_mode_is_refused(tmp_path):
    with pytest.raises(ValueError, match="mode must contain 'w'"):
        with fileio.atomic_open(tmp_path / "x", "rb"):
            pass


def test_sigkill_mid_write_keeps_old_file_and_stale_temporary_is_cleaned(tmp_path):
    target = tmp_path / "best.pt"
    target.write_bytes(b"old")
    code = textwrap.dedent(f"""
        import os, signal, sys
        from petr_ros import fileio
        with fileio.atomic_open({str(target)!r}, "wb") as fh:
            fh.write(b"new" * 1000)
            fh.flush()
            os.kill(os.getpid(), signal.SIGKILL)
    """)
    proc = subprocess.run([sys.executable, "-c", code], check=False)
    assert proc.returncode == -signal.SIGKILL
    assert target.read_bytes() == b"old"
    stale = [p for p in tmp_path.iterdir() if p.name != "best.pt"]
    assert len(stale) == 1 and stale[0].name.startswith(".best.pt.")
    (tmp_path / ".other.txt").write_text("not ours")
    removed = fileio.remove_stale_temporaries(tmp_path, "best.pt")
    assert removed == stale
    assert sorted(p.name for p in tmp_path.iterdir()) == [".other.txt", "best.pt"]
