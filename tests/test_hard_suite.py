"""The hard edit suite: every edit on a small odd-sized video decodes to even dimensions and the
expected length, its seeded choices depend only on (source, edit), and the same seed gives the
same bytes."""

from __future__ import annotations

import re
from pathlib import Path

import av
import numpy as np
import pytest

from storyhash_core.augment import apply_variant, check_variant
from storyhash_core.cache import ArtifactCache
from storyhash_core.corpus import Video
from storyhash_core.errors import ParamsError, TransformError
from storyhash_core.params import HardSuiteParams, load_params
from storyhash_core.queries import QueryJob, hard_jobs, query_path, run_jobs
from storyhash_core.transforms import HARD_EDITS, apply_transform, hard_transform

from .conftest import index_frames, write_video

FPS, FRAMES = 12, 24  # a 2 s source


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> tuple[Path, tuple[Path, ...]]:
    """A 161×91 source (odd on both sides, lossless) and three backgrounds of other sizes."""
    folder = tmp_path_factory.mktemp("hard")
    src = write_video(folder / "src.mkv", index_frames(FRAMES, 91, 161), FPS, "ffv1", "yuv444p")
    rng = np.random.default_rng(0)
    backgrounds = tuple(
        write_video(
            folder / f"bg{i}.mp4", rng.integers(0, 256, (10, 120, 200, 3), np.uint8), fps=10
        )
        for i in range(3)
    )
    return src, backgrounds


def probe(path: Path) -> tuple[int, int, int, float]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = sum(1 for _ in container.decode(video=0))
        return stream.width, stream.height, frames, float(stream.average_rate)


def test_the_suite_holds_fifteen_named_edits_with_backgrounds_only_where_they_compose():
    assert len(HARD_EDITS) == 15
    composed = {n for n in HARD_EDITS if hard_transform(n, "s").backgrounds}
    assert composed == {"pip", "blend_50", "grid_2x2"}
    assert hard_transform("grid_2x2", "s").backgrounds == 3
    assert [hard_transform(n, "s").name for n in HARD_EDITS] == list(HARD_EDITS)


@pytest.mark.parametrize("name", list(HARD_EDITS))
def test_each_edit_decodes_even_sized_at_the_expected_length_and_repeats_byte_for_byte(
    inputs, tmp_path, name
):
    src, backgrounds = inputs
    edit = hard_transform(name, "davis__bear")
    first, second = tmp_path / "a.mp4", tmp_path / "b.mp4"
    for out in (first, second):
        apply_transform(src, edit, out, backgrounds=backgrounds[: edit.backgrounds])
    assert first.read_bytes() == second.read_bytes()
    width, height, frames, rate = probe(first)
    assert width % 2 == 0 and height % 2 == 0 and width >= 2 and height >= 2
    assert frames / rate == pytest.approx(FRAMES / FPS / edit.speed, abs=1.5 / rate), (frames, rate)
    assert rate == (5 if name == "fps_5" else FPS)


def test_seeded_choices_follow_the_source_and_nothing_else():
    assert hard_transform("pip", "davis__bear") == hard_transform("pip", "davis__bear")
    assert hard_transform("pip", "davis__bear").vf != hard_transform("pip", "davis__camel").vf
    assert hard_transform("noise_80", "a").vf != hard_transform("noise_80", "b").vf
    assert hard_transform("blur_5", "a") == hard_transform("blur_5", "b")  # nothing to draw


def test_an_edit_without_its_backgrounds_or_an_unknown_edit_is_refused(inputs, tmp_path):
    src, backgrounds = inputs
    with pytest.raises(TransformError, match="grid_2x2 needs 3 background video"):
        apply_transform(src, hard_transform("grid_2x2", "s"), tmp_path / "x.mp4", backgrounds=())
    with pytest.raises(TransformError, match="unknown hard edit 'pip_99'"):
        hard_transform("pip_99", "s")


def test_an_edit_s_cache_key_names_no_machine_folder():
    for name in HARD_EDITS:
        spec = str(hard_transform(name, "davis__bear").spec())
        assert "DejaVu" not in spec and not re.search(r"/[A-Za-z_][\w.-]*/", spec), name


def test_hard_queries_draw_their_backgrounds_by_seed_and_are_cached_under_them(
    inputs, tmp_path, client
):
    src, backgrounds = inputs
    video = Video("davis__bear", src)
    pool = [Video(f"bg{i}", p) for i, p in enumerate(backgrounds)]
    names = ["pip", "grid_2x2", "blur_5"]
    jobs = hard_jobs([video], names, pool)
    assert [len(j.backgrounds) for j in jobs] == [1, 3, 0]
    assert hard_jobs([video], names, pool) == jobs  # the same draw every time
    cache = ArtifactCache(tmp_path / "cache")
    first = run_jobs(client, jobs, cache)
    assert [q.query_id for q in first] == [f"davis__bear@{n}" for n in names]
    assert all(q.path and q.path.is_file() and not q.cached and not q.error for q in first)
    assert all(q.cached for q in run_jobs(client, jobs, cache))
    other = QueryJob(
        video, jobs[0].transform, (pool[2] if jobs[0].backgrounds[0] != pool[2] else pool[0],)
    )
    assert query_path(other, cache) != first[0].path  # another background: another query
    with pytest.raises(TransformError, match="grid_2x2 composes 3 background videos, 2 given"):
        hard_jobs([video], ["grid_2x2"], pool[:2])


def test_a_region_variant_keeps_its_share_of_the_frame_at_its_offset():
    frames = np.arange(2 * 4 * 6 * 3, dtype=np.uint8).reshape(2, 4, 6, 3)
    top_right = apply_variant(frames, "crop0.5@1,0")
    assert (top_right == frames[:, 0:2, 3:6]).all()
    centre = apply_variant(frames, "crop0.5@0.5,0.5")
    assert (centre == frames[:, 1:3, 2:5]).all()  # 3 columns left over: 1.5 rounds up to 2
    assert apply_variant(frames, "crop1@0,0").shape == frames.shape
    for bad in ("crop0@0,0", "crop0.5@2,0", "crop0.5", "crop-0.5@0,0"):
        with pytest.raises(ValueError, match="crop<keep>@<x>,<y>"):
            check_variant(bad)


def test_the_params_select_hard_edits_by_name_in_the_registry_s_order(tmp_path):
    suite = HardSuiteParams(edits=["grayscale", "pip"])
    assert suite.names == ["pip", "grayscale"]
    assert HardSuiteParams(edits="all").names == list(HARD_EDITS)
    assert HardSuiteParams().names == []  # none unless the params ask
    path = tmp_path / "p.yaml"
    path.write_text("hard_suite: {edits: [pip, sepia]}\n")
    with pytest.raises(ParamsError, match=r"hard_suite.edits: .*'sepia'.*known: pip, blend_50"):
        load_params(path)
