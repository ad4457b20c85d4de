"""Bulk coding on a Dask cluster (two worker processes started here): the same bytes as the local path,
one failure reported without stopping the others, an interrupted run leaves whole files only and the
next run with skip_existing finishes it."""
import numpy as np
import pytest
from PIL import Image

import vqcodec
from vqcodec import cluster

distributed = pytest.importorskip("distributed")


@pytest.fixture(scope="module")
def client():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as lc, \
            distributed.Client(lc) as c:
        yield c


@pytest.fixture
def folder(folder, small_photo):
    """conftest's folder, with a third picture and a broken one."""
    Image.fromarray(small_photo[:, ::-1]).save(folder / "c.png")
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n but not really")
    return folder


def test_compress_and_decompress_on_the_cluster_match_the_local_path(tmp_path, folder, client):
    local = vqcodec.compress_many([folder], tmp_path / "local", quality=1, jobs=1)
    results = cluster.compress_on(client, [folder], tmp_path / "remote", quality=1)
    assert [(r.source, r.status) for r in results] == [(r.source, r.status) for r in local]
    failed = [r for r in results if r.status == "failed"]
    assert [r.source.name for r in failed] == ["broken.png"] and "broken.png" in failed[0].error
    for r in results:
        if r.status == "written":
            assert r.target.read_bytes() == (tmp_path / "local" / r.target.relative_to(tmp_path / "remote")).read_bytes()
    images = cluster.decompress_on(client, [tmp_path / "remote"], tmp_path / "png", image_suffix=".webp")
    assert all(r.status == "written" and r.target.suffix == ".webp" for r in images)
    for r in images:  # the float CNN decoder's pixels may differ by one level between machines (FORMAT.md)
        a = np.asarray(Image.open(r.target).convert("RGB")).astype(int)
        assert a.shape == (96, 128, 3)


def test_a_budget_and_existing_outputs_follow_the_local_rules(tmp_path, folder, client):
    out = tmp_path / "out"
    first = cluster.compress_on(client, [folder / "a.png"], out, max_bytes=300)
    assert first[0].status == "written" and first[0].target.stat().st_size <= 300
    again = cluster.compress_on(client, [folder / "a.png"], out, max_bytes=300)
    assert again[0].status == "failed" and "--overwrite" in again[0].error
    assert cluster.compress_on(client, [folder / "a.png"], out, skip_existing=True)[0].status == "skipped"


def test_an_interrupted_run_leaves_whole_files_and_the_next_run_finishes_it(tmp_path, folder, client, monkeypatch):
    out = tmp_path / "out"
    write = cluster._write
    seen = []

    def write_then_stop(job, future, overwrite):  # Ctrl-C once one file is written
        if any(r.status == "written" for r in seen):
            raise KeyboardInterrupt
        seen.append(write(job, future, overwrite))
        return seen[-1]

    monkeypatch.setattr(cluster, "_write", write_then_stop)
    with pytest.raises(KeyboardInterrupt):
        cluster.compress_on(client, [folder], out, quality=1)
    done = [r.target for r in seen if r.status == "written"]
    assert sorted(p for p in out.rglob("*") if p.is_file()) == done  # no partial or temporary file
    assert vqcodec.describe(done[0])["quality"] == 1
    monkeypatch.setattr(cluster, "_write", write)
    rest = cluster.compress_on(client, [folder], out, quality=1, skip_existing=True)
    assert sorted(r.status for r in rest) == ["failed", "skipped", "written", "written"]
    local = vqcodec.compress_many([folder], tmp_path / "local", quality=1, jobs=1)
    for r in local:
        if r.status == "written":
            assert r.target.read_bytes() == (out / r.target.relative_to(tmp_path / "local")).read_bytes()
