"""Outputs: all or nothing, under the user's umask, in the format the suffix names."""
import os
import stat
from pathlib import Path

import pytest

from vqcodec.output import image_format, same_file, write_atomically


@pytest.mark.parametrize("failure", [RuntimeError("encoder failed"), KeyboardInterrupt()])
def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path, failure):
    path = tmp_path / "out.vqc"
    path.write_bytes(b"old")

    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            f.write(b"half")
        raise failure

    with pytest.raises(type(failure)):
        write_atomically(path, write)
    assert path.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["out.vqc"]


def test_new_files_get_the_permissions_of_the_umask(tmp_path):
    old = os.umask(0o027)
    try:
        write_atomically(tmp_path / "out.vqc", lambda tmp: open(tmp, "wb").close())
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "out.vqc").stat().st_mode) == 0o640


def test_errors_name_the_output_not_the_temporary_file(tmp_path):
    with pytest.raises(OSError) as e:
        write_atomically(tmp_path / "missing-folder" / "out.vqc", lambda tmp: None)
    assert e.value.filename == str(tmp_path / "missing-folder" / "out.vqc")


def test_links_to_one_file_are_the_same_file(tmp_path):
    a = tmp_path / "a.png"
    a.write_bytes(b"x")
    os.symlink(a, tmp_path / "soft.png")
    os.link(a, tmp_path / "hard.png")
    assert same_file(a, tmp_path / "soft.png") and same_file(a, tmp_path / "hard.png")
    assert same_file(a, tmp_path / "." / "a.png")
    assert not same_file(a, tmp_path / "b.png")


def test_the_suffix_names_the_format():
    assert image_format("x.PNG") == "PNG" and image_format("x.jpeg") == "JPEG" and image_format("x.webp") == "WEBP"
    for path in ("x.xyz", "x"):
        with pytest.raises(ValueError, match="suffix"):
            image_format(path)


def test_without_replace_an_existing_output_is_left_alone_even_one_that_appears_while_writing(tmp_path):
    from vqcodec.output import OutputExists, write_atomically

    target = tmp_path / "out.vqc"
    target.write_bytes(b"theirs")
    with pytest.raises(OutputExists, match="--overwrite"):
        write_atomically(target, lambda tmp: Path(tmp).write_bytes(b"mine"), replace=False)
    assert target.read_bytes() == b"theirs"

    def another_run_writes_meanwhile(tmp):
        Path(tmp).write_bytes(b"mine")
        (tmp_path / "late.vqc").write_bytes(b"theirs")

    with pytest.raises(OutputExists):
        write_atomically(tmp_path / "late.vqc", another_run_writes_meanwhile, replace=False)
    assert (tmp_path / "late.vqc").read_bytes() == b"theirs"
    write_atomically(tmp_path / "new.vqc", lambda tmp: Path(tmp).write_bytes(b"mine"), replace=False)
    assert (tmp_path / "new.vqc").read_bytes() == b"mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["late.vqc", "new.vqc", "out.vqc"]  # no temporaries


def test_a_killed_writers_temporary_is_removed_by_the_next_write_and_a_live_ones_stays(tmp_path):
    import subprocess
    import sys

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stray = tmp_path / f".out.vqc.{int(dead.stdout)}.abcd1234.tmp"
    live = tmp_path / f".out.vqc.{os.getpid()}.efgh5678.tmp"
    other = tmp_path / f".other.vqc.{int(dead.stdout)}.ijkl9012.tmp"
    for p in (stray, live, other):
        p.write_bytes(b"half")
    write_atomically(tmp_path / "out.vqc", lambda tmp: Path(tmp).write_bytes(b"whole"))
    assert (tmp_path / "out.vqc").read_bytes() == b"whole"
    assert not stray.exists() and live.exists() and other.exists()  # only this output's, only the dead's
