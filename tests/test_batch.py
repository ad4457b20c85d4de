"""Whole folders, on worker processes: relative paths kept, existing outputs skipped or overwritten by
flag, one failure reported without stopping the others, nothing half-written."""
import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

import vqcodec
from vqcodec.cli import main


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def test_compress_and_decompress_a_folder_on_two_processes(tmp_path, folder, small_photo):
    vqc, png = tmp_path / "vqc", tmp_path / "png"
    r = run("compress", folder, "-o", vqc, "--jobs", 2, "-q", 1)
    assert r.exit_code == 0, r.output
    assert sorted(p.relative_to(vqc).as_posix() for p in vqc.rglob("*.vqc")) == ["a.vqc", "sub/b.vqc"]
    assert (vqc / "a.vqc").read_bytes() == vqcodec.compress(small_photo, quality=1)
    r = run("decompress", vqc, "-o", png, "--jobs", 2)
    assert r.exit_code == 0, r.output
    assert "2 written" in r.output
    # the float CNN decoder's pixels may differ by one level between thread counts (FORMAT.md)
    a, b = np.asarray(Image.open(png / "a.png")).astype(int), np.asarray(vqcodec.decompress(vqc / "a.vqc")).astype(int)
    assert a.shape == b.shape and np.abs(a - b).max() <= 1
    assert Image.open(png / "sub" / "b.png").size == (128, 96)


def test_existing_outputs_are_failures_unless_skipped_or_overwritten(tmp_path, folder):
    out = tmp_path / "vqc"
    assert run("compress", folder, "-o", out, "-q", 1, "--jobs", 1).exit_code == 0
    (out / "a.vqc").write_bytes(b"old")
    r = run("compress", folder, "-o", out, "-q", 1, "--jobs", 1)
    assert r.exit_code == 1 and "exists" in r.output
    assert "2 existed: --overwrite replaces them, --skip-existing leaves them" in r.output  # the summary too
    assert (out / "a.vqc").read_bytes() == b"old"
    r = run("compress", folder, "-o", out, "-q", 1, "--jobs", 1, "--skip-existing")
    assert r.exit_code == 0 and "2 skipped" in r.output
    assert run("compress", folder, "-o", out, "-q", 1, "--jobs", 1, "--overwrite").exit_code == 0
    assert (out / "a.vqc").read_bytes()[:3] == b"VQC"


def test_one_bad_file_is_reported_and_the_others_are_written(tmp_path, folder):
    (folder / "broken.png").write_bytes(b"\x89PNG not really")
    results = vqcodec.compress_many([folder], tmp_path / "out", quality=1, jobs=1)
    status = {r.source.name: r.status for r in results}
    assert status == {"a.png": "written", "broken.png": "failed", "b.jpg": "written"}
    assert "not a readable image" in next(r.error for r in results if r.status == "failed")
    assert not (tmp_path / "out" / "broken.vqc").exists()
    assert not list((tmp_path / "out").rglob("*.tmp"))
    r = run("compress", folder, "-o", tmp_path / "out2", "-q", 1, "--jobs", 1)
    assert r.exit_code == 1 and "broken.png" in r.output and "2 written" in r.output


def test_two_inputs_that_would_share_an_output_are_refused(tmp_path, folder):
    Image.open(folder / "a.png").save(tmp_path / "a.png")
    r = run("compress", folder / "a.png", tmp_path / "a.png", "-o", tmp_path / "out")
    assert r.exit_code != 0 and "both" in r.output
    assert not (tmp_path / "out").exists()


def test_a_full_disk_stops_the_run_and_lists_what_was_not_written(tmp_path, folder, monkeypatch):
    import errno

    from vqcodec import batch

    def no_space(path, write, replace=True):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(batch, "write_atomically", no_space)
    results = vqcodec.compress_many([folder], tmp_path / "out", quality=1, jobs=1)
    assert [r.status for r in results] == ["failed", "failed"]
    assert results[0].error.startswith("the disk is full")
    assert results[1].error == "not written: the run stopped when the disk was full"


def test_workers_end_soon_after_their_parent_is_killed(tmp_path, folder):
    import os
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    if not Path("/proc").is_dir():
        pytest.skip("finds the workers through /proc")
    for k in range(6):
        Image.fromarray(np.zeros((256, 256, 3), np.uint8) + k).save(folder / f"grey{k}.png")
    parent = subprocess.Popen([sys.executable, "-c", "import sys, vqcodec; vqcodec.compress_many([sys.argv[1]], "
                               "sys.argv[2], jobs=2)", str(folder), str(tmp_path / "out")])

    def children() -> list[int]:
        found = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == parent.pid and "spawn" in (stat.parent / "cmdline").read_bytes().decode(errors="replace"):
                found.append(int(stat.parent.name))
        return found

    deadline = time.time() + 120
    while len(workers := children()) < 2 and time.time() < deadline:
        time.sleep(0.5)
    assert len(workers) == 2, "the pool's workers never started"
    os.kill(parent.pid, signal.SIGKILL)
    parent.wait()
    def alive() -> list[int]:
        return [pid for pid in workers if Path(f"/proc/{pid}").exists()
                and Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"]

    deadline = time.time() + 20  # a second once started; a worker still importing torch needs longer
    while alive() and time.time() < deadline:
        time.sleep(0.2)
    assert alive() == [], "workers outlived their killed parent"
