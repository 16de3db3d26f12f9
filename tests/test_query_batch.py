"""``storyhash query`` over many videos: one row per hit with a copy / no-copy decision against
the threshold the study stored with its index, and a row for each video that cannot be read."""

from __future__ import annotations

import json
import shutil

import pandas as pd
import pytest

from storyhash_core.cli import main
from storyhash_core.corpus import Video, write_manifest
from storyhash_core.query import FPR_LEVELS, QueryResult, operating_point
from storyhash_core.stages import inputs
from storyhash_core.video import sample_frames

from .conftest import write_folder
from .test_bad_inputs import study  # noqa: F401  (the module's tiny study, thresholds stored)

COLUMNS = ["query", "path", "rank", "reference", "score", "decision", "threshold", "error"]


@pytest.fixture(scope="module")
def batch(study, tmp_path_factory):  # noqa: F811
    """A folder of queries: a reference's copy, a transformed copy, the reference as a frame
    folder, and a file that is not a video."""
    run, path, reference = study
    folder = tmp_path_factory.mktemp("batch")
    shutil.copy(path, folder / "plain.mp4")
    shutil.copy(inputs.video_files(run)[f"{reference}@flip_h"], folder / "flipped.mp4")
    write_folder(folder / "frames", sample_frames(path, None).frames)
    (folder / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 8)
    return folder


def query(study, *argv: str) -> int:  # noqa: F811
    run, _, _ = study
    index = str(run.path("indexes", "fusion"))
    return main(["query", *argv, "--index", index, "--cache", str(run.params.cache_dir)])


def test_a_folder_becomes_one_csv_with_decisions_and_the_unreadable_video_as_a_row(
    study,  # noqa: F811
    batch,
    tmp_path,
    capsys,
):
    run, _, reference = study
    out = tmp_path / "hits.csv"
    assert query(study, str(batch), "-k", "2", "--out", str(out)) == 0  # a copy was found
    err = capsys.readouterr().err
    table = pd.read_csv(out, keep_default_na=False)
    assert list(table.columns) == COLUMNS
    assert sorted(set(table["query"])) == ["broken", "flipped", "frames", "plain"]
    broken = table[table["query"] == "broken"]
    assert len(broken) == 1 and broken.iloc[0]["rank"] == 0 and broken.iloc[0]["decision"] == ""
    assert "VideoReadError: cannot read video" in broken.iloc[0]["error"]
    assert "broken.mp4: VideoReadError" in err and "1 could not be ranked" in err
    hits = table[table["error"] == ""].astype({"score": float, "threshold": float})
    threshold = operating_point(run.path("indexes", "fusion"), 0.01).threshold
    assert (hits["threshold"] == threshold).all() and len(hits) == 3 * 2
    assert (
        hits["decision"] == hits["score"].ge(threshold).map({True: "copy", False: "no copy"})
    ).all()
    plain = hits[hits["rank"] == 1].set_index("query").loc["plain"]
    assert (
        plain["reference"] == reference and plain["score"] > 0.999 and plain["decision"] == "copy"
    )
    typed = QueryResult.read(out)  # the rows read back as records
    assert [(r.query, r.rank, r.decision) for r in typed] == list(
        zip(table["query"], table["rank"], table["decision"], strict=True)
    )
    assert all(
        isinstance(r.score, float) and (r.error == "") == (r.score == r.score) for r in typed
    )
    copies = len(set(hits.loc[hits["decision"] == "copy", "query"]))
    assert f"storyhash: {copies} of 4 video(s) have a copy" in err


def test_a_glob_and_a_manifest_name_the_same_videos(study, batch, tmp_path, capsys):  # noqa: F811
    by_folder, by_glob, by_manifest = (tmp_path / f"{n}.json" for n in ("f", "g", "m"))
    assert query(study, str(batch), "--out", str(by_folder)) == 0
    manifest = batch.parent / "videos.csv"  # its paths relative to it; the batch stays as made
    write_manifest([Video(p.stem, p) for p in sorted(batch.glob("*.mp4"))], manifest)
    assert query(study, str(manifest), "--out", str(by_manifest)) == 0
    assert query(study, str(batch / "*.mp4"), "--out", str(by_glob)) == 0
    rows = [json.loads(p.read_text()) for p in (by_folder, by_glob, by_manifest)]
    files = [r for r in rows[0] if r["query"] != "frames"]
    key = lambda r: (r["query"], r["rank"])  # noqa: E731
    assert sorted(rows[1], key=key) == sorted(rows[2], key=key) == sorted(files, key=key)
    assert [r["score"] for r in rows[0] if r["query"] == "broken"] == [None]  # JSON null


def test_the_threshold_is_the_stored_fpr_level_or_the_given_score(study, batch, capsys):  # noqa: F811
    run, _, _ = study
    plain = str(batch / "plain.mp4")
    strict = operating_point(run.path("indexes", "fusion"), min(FPR_LEVELS)).threshold
    assert query(study, plain, "--fpr", str(min(FPR_LEVELS))) == 0
    assert f"score ≥ {strict:.4f}: FPR {min(FPR_LEVELS):g}" in capsys.readouterr().err
    assert query(study, plain, "--threshold", "1.5") == 1  # nothing reaches it: no copy
    out, err = capsys.readouterr()
    assert "copy" in out and " copy\n" not in out.replace("no copy", "") and "0 of 1" in err
    assert query(study, plain, "--fpr", "0.3") == 2
    assert "stores thresholds for FPR 0.1, 0.05" in capsys.readouterr().err


def test_a_batch_where_no_video_can_be_read_is_an_error(study, tmp_path, capsys):  # noqa: F811
    for name in ("a", "b"):
        (tmp_path / f"{name}.mp4").write_text("not a video")
    assert query(study, str(tmp_path)) == 2
    err = capsys.readouterr().err
    last = err.splitlines()[-1]
    assert last.startswith("storyhash: error: no video could be ranked; the first: VideoReadError")


def test_a_folder_of_videos_with_an_image_in_it_is_still_a_folder_of_videos(
    study,  # noqa: F811
    batch,
    tmp_path,
    capsys,
):
    folder = tmp_path / "mixed"
    folder.mkdir()
    shutil.copy(batch / "plain.mp4", folder / "a.mp4")
    (folder / "cover.jpg").write_bytes((batch / "frames" / "00000.jpg").read_bytes())
    assert query(study, str(folder)) == 0
    assert capsys.readouterr().out.splitlines()[0].endswith(" copy")  # a.mp4, not the image
    query(study, str(batch / "frames"), "-k", "1")  # a folder of frames only: one video
    out, err = capsys.readouterr()
    assert len(out.splitlines()) == 1 and "of 1 video(s)" in err


def test_videos_of_the_same_name_in_two_folders_are_two_rows(study, batch, tmp_path, capsys):  # noqa: F811
    for side in ("a", "b"):
        (tmp_path / side).mkdir()
        shutil.copy(batch / "plain.mp4", tmp_path / side / "x.mp4")
    assert (
        query(study, str(tmp_path / "a" / "x.mp4"), str(tmp_path / "b" / "x.mp4"), "-k", "1") == 0
    )
    out, err = capsys.readouterr()
    assert out.count("# x (") == 2 and "2 of 2 video(s) have a copy" in err


def test_an_unwritable_out_is_named_before_any_work(study, batch, tmp_path, capsys):  # noqa: F811
    (tmp_path / "file").write_text("")
    assert query(study, str(batch / "plain.mp4"), "--out", str(tmp_path / "file" / "x.csv")) == 2
    assert "is a file, not a folder (set --out" in capsys.readouterr().err
