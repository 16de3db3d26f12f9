"""Bad inputs and faults end in one line that names the file and the fix (exit code 2, 130 for
Ctrl-C), never a traceback or a silent wrong answer: one test per row of the README's
reliability table. Every damage is done here, to copies the test owns."""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from contextlib import contextmanager, suppress
from pathlib import Path

import cv2
import faiss
import numpy as np
import psutil
import pytest
import yaml

from storyhash_core import stages
from storyhash_core.cache import STALE_S, ArtifactCache, sweep_temporary
from storyhash_core.cli import main
from storyhash_core.corpus import Video, write_manifest
from storyhash_core.errors import ParamsError, StoryHashError, VideoReadError
from storyhash_core.index import IndexSpec, build_index, load_index, save_index
from storyhash_core.params import load_params
from storyhash_core.pipeline import process_videos
from storyhash_core.preflight import preflight
from storyhash_core.query import operating_point
from storyhash_core.runner import RESUME, report_failures
from storyhash_core.stages import inputs
from storyhash_core.video import is_complete_image, sample_frames

from .conftest import index_frames, write_folder, write_video
from .test_stages import run_stages, write_params


@pytest.fixture(scope="module")
def study(tmp_path_factory, client):
    """A tiny study's run (indexes saved with their operating thresholds) and the video of one
    of its references."""
    root = tmp_path_factory.mktemp("study")
    run = run_stages(write_params(root, transforms=["flip_h"]), client)
    stages.robustness.detection_stage(run)
    reference = run.table("references").iloc[1]
    return run, inputs.video_files(run)[reference.video_id], reference.video_id


def index_copy(study, tmp_path, configuration="fusion") -> Path:
    run, _, _ = study
    return Path(shutil.copytree(run.path("indexes", configuration), tmp_path / configuration))


def query(study, index: Path, *extra: str, video: Path | None = None) -> int:
    """``storyhash query`` as a user types it (the study's reference, unless ``video``)."""
    run, path, _ = study
    cache = str(run.params.cache_dir)
    argv = ["query", str(video or path), "--index", str(index), "--cache", cache, *extra]
    return main(argv)


def one_line_error(capsys, code: int, rc: int = 2) -> str:
    err = capsys.readouterr().err.strip()
    assert code == rc and "\n" not in err and "Traceback" not in err, err
    return err


# ---- a damaged or mismatched index ---------------------------------------------------------


def test_meta_json_that_is_not_json_is_named(study, tmp_path, capsys):
    index = index_copy(study, tmp_path)
    (index / "meta.json").write_text('{"configuration": "fusion",')
    err = one_line_error(capsys, query(study, index))
    assert f"index {index} is damaged: meta.json is not valid JSON" in err and "03_index" in err
    (index / "meta.json").write_bytes(b"\xff\xfe{}")
    assert "meta.json is not valid JSON (not UTF-8" in one_line_error(capsys, query(study, index))


@pytest.mark.parametrize("damage", ["missing", "empty"])
def test_ids_json_missing_or_empty_is_named(study, tmp_path, capsys, damage):
    index = index_copy(study, tmp_path)
    if damage == "missing":
        (index / "ids.json").unlink()
    else:
        (index / "ids.json").write_text("[]")
    err = one_line_error(capsys, query(study, index))
    assert "ids.json is missing" in err if damage == "missing" else "ids.json is not" in err


def test_truncated_index_faiss_is_named(study, tmp_path, capsys):
    index = index_copy(study, tmp_path)
    data = (index / "index.faiss").read_bytes()
    (index / "index.faiss").write_bytes(data[: len(data) // 3])
    err = one_line_error(capsys, query(study, index))
    assert "index.faiss cannot be read" in err and str(index) in err


def test_an_index_of_another_backbone_names_the_backbone(study, tmp_path, capsys):
    index = index_copy(study, tmp_path)
    other = faiss.IndexFlatIP(64)  # vectors of another width under this index's meta.json
    other.add(np.eye(64, dtype=np.float32)[: len(json.loads((index / "ids.json").read_text()))])
    faiss.write_index(other, str(index / "index.faiss"))
    err = one_line_error(capsys, query(study, index))
    assert "meta.json says" in err and "index.faiss has 64" in err  # the files disagree
    meta = json.loads((index / "meta.json").read_text())
    (index / "meta.json").write_text(json.dumps(meta | {"dimension": 64}))
    err = one_line_error(capsys, query(study, index))  # they agree, but not with the query
    assert "has 64: it was built with another backbone than dct" in err


def test_an_index_of_another_feature_version_is_refused(study, tmp_path, capsys):
    index = index_copy(study, tmp_path)
    meta = json.loads((index / "meta.json").read_text())
    (index / "meta.json").write_text(json.dumps(meta | {"feature_version": 1}))
    err = one_line_error(capsys, query(study, index))
    assert "holds features v1; this storyhash computes v" in err


@pytest.mark.parametrize(
    "wrong",
    [
        ({"backbone": "dct"}, "backbone: Input should be"),
        ({"pooling": "mode"}, "pooling: Input should be"),
        ({"sampling_fps": 0}, "sampling_fps: Input should be greater than 0"),
        ({"configuration": "x"}, "configuration: unknown configuration 'x'"),
        ({"index": "hnsw"}, "index: Input should be a valid dictionary"),
        ({"motion": None}, "configuration fusion needs motion, none recorded"),
    ],
)
def test_a_meta_json_with_wrong_contents_is_named(study, tmp_path, capsys, wrong):
    index = index_copy(study, tmp_path)
    meta = json.loads((index / "meta.json").read_text())
    (index / "meta.json").write_text(json.dumps(meta | wrong[0]))
    err = one_line_error(capsys, query(study, index))
    assert f"is damaged: meta.json: {wrong[1]}" in err, err


def test_a_re_ranked_ivfpq_index_answers_a_query(study, tmp_path, capsys):
    run, _, _ = study
    flat = run.path("indexes", "fusion")
    assert query(study, flat, "-k", "3") == 0
    expected = capsys.readouterr().out
    hnsw, ids, meta = load_index(flat)
    spec = IndexSpec(kind="ivfpq", nlist=1, pq_m=4, rerank=3)
    vectors = hnsw.reconstruct_n(0, hnsw.ntotal)
    save_index(build_index(vectors, spec), ids, meta | {"index": spec.model_dump()}, tmp_path / "i")
    threshold = operating_point(flat).threshold  # a new index has none stored: give it
    assert query(study, tmp_path / "i", "-k", "3", "--threshold", str(threshold)) == 0
    assert capsys.readouterr().out == expected  # re-ranked exactly: the same list


# ---- -k --------------------------------------------------------------------------------------


@pytest.mark.parametrize("k", ["0", "-2", "two"])
def test_k_below_one_is_refused_by_the_parser(study, capsys, k):
    run, _, _ = study
    with pytest.raises(SystemExit) as stop:
        query(study, run.path("indexes", "fusion"), "-k", k)
    err = capsys.readouterr().err
    assert stop.value.code == 2 and "argument -k:" in err and "Traceback" not in err


def test_k_beyond_the_gallery_says_so(study, capsys):
    run, _, reference = study
    assert query(study, run.path("indexes", "fusion"), "-k", "500") == 0
    out, err = capsys.readouterr()
    assert len(out.splitlines()) == 3 and reference in out.splitlines()[0]
    assert "note: -k 500 exceeds the 3 videos of the index" in err


# ---- a query too short for motion -----------------------------------------------------------


def test_a_query_too_short_for_motion_is_warned_and_can_fall_back(study, tmp_path, capsys):
    run, path, reference = study
    frames = sample_frames(path, None).frames
    short = write_video(tmp_path / "short.mp4", frames[:2], fps=12)  # 0.17 s: 2 tracked frames
    # its motion blocks are zeros: its best fused score is below the FPR-1 % threshold (exit 1)
    assert query(study, run.path("indexes", "fusion"), "-k", "1", video=short) == 1
    out, err = capsys.readouterr()
    assert out.endswith(" no copy\n")
    assert re.search(
        r"too short for motion: [012] tracked frame\(s\), the motion features need 3", err
    )
    assert "--visual-fallback" in err and len(out.splitlines()) == 1
    fusion, visual = run.path("indexes", "fusion"), run.path("indexes", "visual")
    assert query(study, fusion, "-k", "1", "--visual-fallback", video=short) == 0
    out, err = capsys.readouterr()
    assert err.count("note:") == 1 and f"ranked by the visual index {visual}" in err
    assert query(study, visual, "-k", "1", video=short) == 0
    again, err = capsys.readouterr()
    assert again == out and "note:" not in err  # no motion in a visual index: nothing to note
    assert out.split()[2] == reference
    # a long enough query gets no note
    assert query(study, run.path("indexes", "fusion"), "-k", "1") == 0
    assert "note:" not in capsys.readouterr().err


# ---- a partly decodable frame ---------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".jpg", ".png"])
def test_a_frame_cut_short_is_an_error_not_a_grey_frame(tmp_path, suffix):
    noise = np.random.default_rng(0).integers(0, 256, (24, 120, 160, 3), dtype=np.uint8)
    folder = write_folder(tmp_path / "seq", noise)  # a cut at a third lands in the pixels
    if suffix == ".png":
        for jpg in folder.glob("*.jpg"):
            cv2.imwrite(str(jpg.with_suffix(".png")), cv2.imread(str(jpg)))
            jpg.unlink()
    frame = folder / f"00012{suffix}"
    frame.write_bytes(frame.read_bytes()[: frame.stat().st_size // 3])
    if suffix == ".jpg":  # what the check is for: libjpeg decodes it, rows grey, no error
        assert cv2.imread(str(frame)).shape == (120, 160, 3)
    with pytest.raises(VideoReadError) as caught:
        sample_frames(folder, None)
    assert f"00012{suffix}: truncated image" in str(caught.value)


def test_trailing_data_passes_and_an_early_thumbnail_does_not_hide_a_cut():
    small, big = (
        cv2.imencode(".jpg", np.random.default_rng(0).integers(0, 256, (h, h, 3), np.uint8))[
            1
        ].tobytes()
        for h in (16, 120)
    )
    assert is_complete_image(big, ".jpg") and is_complete_image(big + b"\0trailer" * 30, ".JPG")
    assert not is_complete_image(big[: len(big) // 3], ".jpg")
    # an EXIF thumbnail is a whole JPEG (with its end marker) before the main image's scan
    assert not is_complete_image(small + big[: len(big) // 3], ".jpeg")
    assert is_complete_image(b"anything", ".bmp")  # other formats: the decoder decides


# ---- the study's checks before a kernel starts -----------------------------------------------


@contextmanager
def read_only(folder: Path):
    """``folder`` made unwritable: immutable for root (chmod does not stop root), else 0o500."""
    folder.mkdir(parents=True, exist_ok=True)
    root = os.geteuid() == 0
    if root:
        if subprocess.run(["chattr", "+i", str(folder)], capture_output=True).returncode:
            pytest.skip("running as root on a filesystem without chattr +i: no read-only folder")
    else:
        folder.chmod(0o500)
    try:
        yield folder
    finally:
        if root:
            subprocess.run(["chattr", "-i", str(folder)], check=True)
        else:
            folder.chmod(0o700)


def params_file(tmp_path: Path, **overrides) -> Path:
    path = tmp_path / "p.yaml"
    values = {"cache_dir": str(tmp_path / "cache"), "output_dir": str(tmp_path / "out")}
    path.write_text(yaml.safe_dump(values | overrides))
    return path


def study_error(capsys, params: Path) -> str:
    return one_line_error(capsys, main(["study", "--params", str(params)]))


def test_a_read_only_cache_fails_before_the_kernel(tmp_path, capsys):
    with read_only(tmp_path / "cache"):
        err = study_error(capsys, params_file(tmp_path))
    assert f"cache folder {tmp_path / 'cache'} is not writable" in err and "cache_dir" in err
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").rglob("*.ipynb"))


def test_a_query_with_a_read_only_cache_names_it(study, tmp_path, capsys):
    run, path, _ = study
    with read_only(tmp_path / "ro"):
        argv = ["query", str(path), "--index", str(run.path("indexes", "fusion"))]
        err = one_line_error(capsys, main([*argv, "--cache", str(tmp_path / "ro")]))
    assert f"cache folder {tmp_path / 'ro'} is not writable" in err and "set --cache" in err


@pytest.mark.parametrize("damage", ["read-only", "a file"])
def test_an_unwritable_output_dir_fails_before_the_kernel(tmp_path, capsys, damage):
    out = tmp_path / "out"
    if damage == "a file":
        out.write_text("not a folder")
        err = study_error(capsys, params_file(tmp_path))
        assert f"{out} is a file, not a folder" in err and "output_dir" in err
    else:
        with read_only(out):
            err = study_error(capsys, params_file(tmp_path))
        assert "output folder" in err and "not writable" in err and "output_dir" in err


def test_a_manifest_whose_references_are_all_missing_fails_before_the_kernel(tmp_path, capsys):
    manifest = tmp_path / "m" / "manifest.csv"
    manifest.parent.mkdir()
    write_manifest([Video(f"v{i}", manifest.parent / f"v{i}.mp4") for i in range(3)], manifest)
    corpus = {"kind": "manifest", "path": str(manifest)}
    err = study_error(capsys, params_file(tmp_path, corpus=corpus))
    assert "none of the 3 references of corpus" in err and "v0.mp4" in err


def test_every_reference_failing_says_so_with_the_first_errors(tmp_path, client):
    folder = tmp_path / "m"
    folder.mkdir()
    for i in range(2):
        (folder / f"v{i}.mp4").write_bytes(b"not a video" * 50)
    write_manifest([Video(f"v{i}", folder / f"v{i}.mp4") for i in range(2)], folder / "m.csv")
    params = write_params(
        tmp_path, corpus={"kind": "manifest", "path": str(folder / "m.csv")}, transforms=["flip_h"]
    )
    with pytest.raises(StoryHashError, match="every one of the 2 references failed, first v0: Vid"):
        stages.extract.extract(stages.Run.open(params), client)


def test_an_unknown_transform_is_a_params_error(tmp_path):
    with pytest.raises(ParamsError, match="transforms: unknown transform 'blurr'"):
        load_params(params_file(tmp_path, transforms=["flip_h", "blurr"]))
    for wrong in ("papr", ["flip_h", 3]):
        with pytest.raises(ParamsError, match="transforms: give 'paper' or a list of transform"):
            load_params(params_file(tmp_path, transforms=wrong))


def test_a_header_only_manifest_is_named(tmp_path, capsys):
    manifest = tmp_path / "manifest.csv"
    manifest.write_text("video_id,path\n")
    err = study_error(
        capsys, params_file(tmp_path, corpus={"kind": "manifest", "path": str(manifest)})
    )
    assert f"corpus {manifest} lists no videos" in err


# ---- Ctrl-C ----------------------------------------------------------------------------------


def start_study(tmp_path: Path) -> subprocess.Popen:
    """``storyhash study`` on a corpus whose notebook 01 takes several seconds, in a session
    of its own (so a failed test can stop the whole tree)."""
    corpus = {"kind": "synthetic", "synthetic": {"n_videos": 4, "max_duration_s": 4.0}}
    params = write_params(
        tmp_path, corpus=corpus, cluster={"n_workers": 1, "processes": True}, transforms="paper"
    )
    argv = [sys.executable, "-m", "storyhash_core.cli", "study", "--params", str(params)]
    return subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )


def descendants(proc: subprocess.Popen) -> list[psutil.Process]:
    with suppress(psutil.Error):
        return psutil.Process(proc.pid).children(recursive=True)
    return []


def stopped(proc: subprocess.Popen, tree: list[psutil.Process]) -> list[str]:
    """Ctrl-C (SIGINT to the foreground process), then the stderr lines other than progress
    bars; stops the whole tree whatever happens."""
    try:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 130 and "Traceback" not in err, err
        _, alive = psutil.wait_procs(tree, timeout=30)
        assert alive == []  # the kernel and its Dask workers are gone
    finally:
        with suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    progress = re.compile(r"\[storyhash\] \S+ · ")  # relayed from the kernel
    return [
        line
        for line in err.replace("\r", "\n").splitlines()
        if line.strip() and "%|" not in line and not progress.match(line)
    ]


ACK = "[storyhash] stopping (Ctrl-C again: at once)"


def test_ctrl_c_in_a_cell_stops_the_study_in_one_line_and_leaves_no_process(tmp_path):
    proc = start_study(tmp_path)
    deadline, tree = time.monotonic() + 120, []
    while not any(p.ppid() != proc.pid for p in tree if p.is_running()):
        if time.monotonic() > deadline:
            os.killpg(proc.pid, signal.SIGKILL)
            pytest.fail("the study started no Dask worker within 120 s")
        time.sleep(0.2)  # until the kernel has started its Dask worker: notebook 01's cell runs
        tree = descendants(proc)
    lines = stopped(proc, tree)
    assert lines[:-1] == [ACK] and lines[-1].startswith("storyhash: stopped in 01_extract, cell")
    assert lines[-1].endswith("the cache keeps finished work, so the same command resumes")


def test_ctrl_c_while_the_kernel_starts_stops_after_the_notebook(tmp_path):
    proc = start_study(tmp_path)
    assert proc.stdout.readline().startswith("[storyhash] 01_extract")  # before the kernel runs
    lines = stopped(proc, descendants(proc))
    assert lines == [ACK, "storyhash: stopped after 01_extract; " + RESUME]


# ---- temporary files of killed writers ------------------------------------------------------

KILLED_WRITER = """
import os, sys
from pathlib import Path
from storyhash_core.cache import atomic_path
with atomic_path(Path(sys.argv[1])) as tmp:
    tmp.write_bytes(b"half a video")
    os._exit(9)  # killed mid-write: no cleanup runs
"""


def test_temporary_files_of_killed_writers_are_swept_after_a_day(tmp_path):
    cache = tmp_path / "cache"
    for name in ("old", "young"):
        final = cache / "queries" / "ab" / f"{name}.mp4"
        subprocess.run([sys.executable, "-c", KILLED_WRITER, str(final)], check=False)
    left = sorted(p for p in cache.rglob("*") if p.is_file())
    assert [p.name.split(".")[1] for p in left] == ["old", "young"]  # .old.<uuid>.tmp.mp4
    finished = cache / "queries" / "ab" / "done.mp4"
    finished.write_bytes(b"a finished entry")
    day_ago = time.time() - STALE_S - 60
    old = next(p for p in left if ".old." in p.name)
    os.utime(old, (day_ago, day_ago))
    os.utime(finished, (day_ago, day_ago))
    assert preflight(load_params(params_file(tmp_path))) == 1  # the study sweeps at its start
    assert sorted(p for p in cache.rglob("*.mp4")) == sorted([finished, *left[1:]])
    assert sweep_temporary(cache, older_than_s=0) == 1  # the young one, when told to


# ---- expected per-video failures -------------------------------------------------------------


def test_expected_failures_are_rows_not_dask_error_logs(tmp_path, client, caplog, capsys):
    from storyhash_core.backbones import BackboneSpec

    good = write_video(tmp_path / "good.mp4", index_frames(24, 32, 48), fps=12)
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(good.read_bytes()[:300])
    items = {k: (p, 24.0) for k, p in (("good", good), ("bad", bad), ("gone", tmp_path / "x.mp4"))}

    dask_log = logging.getLogger("distributed")  # it does not propagate to the root
    dask_log.addHandler(caplog.handler)
    try:
        done, failed = process_videos(
            client, items, 2.0, [(BackboneSpec(name="dct"), "")], None, ArtifactCache(tmp_path)
        )
    finally:
        dask_log.removeHandler(caplog.handler)
    assert set(done) == {"good"} and [f.key for f in failed] == ["bad", "gone"]
    assert failed[0].error.startswith("VideoReadError: cannot read video")
    assert not [r for r in caplog.records if "Compute Failed" in r.getMessage()]
    table = tmp_path / "failed_videos.csv"
    table.write_text("video_id,query_id,error\nbad,,VideoReadError: …\ngone,,VideoReadError: …\n")
    report_failures(table, since=0)
    assert (
        capsys.readouterr().out == f"[storyhash] 2 video(s) failed; their errors are in {table}\n"
    )
    report_failures(table, since=time.time() + 1)  # not written by this notebook: no line
    assert capsys.readouterr().out == ""


@pytest.mark.parametrize("where", ["before", "after"])
def test_debug_shows_the_traceback_instead(tmp_path, capsys, where):
    missing = str(tmp_path / "nope.mp4")
    assert main(["query", missing]) == 2
    assert "cannot read video" in one_line_error(capsys, 2)
    argv = ["--debug", "query", missing] if where == "before" else ["query", missing, "--debug"]
    with pytest.raises(VideoReadError):
        main(argv)
