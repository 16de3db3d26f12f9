"""``storyhash`` command line: run the study, make data, apply transforms."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .errors import Interrupted, StoryHashError


def _study(args: argparse.Namespace) -> None:
    from .params import portable
    from .runner import NOTEBOOKS, run_notebooks

    unknown = sorted(set(args.only or ()) - set(NOTEBOOKS))
    if unknown:
        raise StoryHashError(
            f"--only: no notebook {', '.join(unknown)} (the sequence: {' '.join(NOTEBOOKS)})"
        )
    notebooks = tuple(n for n in NOTEBOOKS if not args.only or n in args.only)
    out = run_notebooks(args.params, notebooks, into=Path(args.into) if args.into else None)
    where = portable(out)
    print(f"study written to {where} (rendered notebooks in {where}/notebooks)")


def _transforms(args: argparse.Namespace) -> None:
    from .transforms import HARD_EDITS, PAPER_TRANSFORMS, filters, hard_transform

    for t in PAPER_TRANSFORMS.values():
        print(f"{t.name:14s} {t.family:11s} crf={t.crf:<3d} {filters(t)}")
    if args.hard:
        print(f"# the hard suite, as drawn for the source {args.hard!r} (seeded per source)")
        for name in HARD_EDITS:
            t = hard_transform(name, args.hard)
            extra = f" backgrounds={t.backgrounds}" if t.backgrounds else ""
            print(f"{t.name:16s} {t.family:18s}{extra} {filters(t)}")


def _transform(args: argparse.Namespace) -> None:
    from .transforms import apply_transform, resolve

    for t in resolve(args.name):
        out = Path(args.out) / f"{Path(args.src).stem}@{t.name}.mp4"
        out.parent.mkdir(parents=True, exist_ok=True)
        apply_transform(Path(args.src), t, out, args.folder_fps)
        print(out)


def _synthetic(args: argparse.Namespace) -> None:
    from .synthetic import SyntheticSpec, generate_corpus

    out = Path(args.out)
    if out.exists() and any(out.iterdir()):
        raise StoryHashError(f"{out} is not empty (choose a new folder)")
    out.mkdir(parents=True, exist_ok=True)
    spec = SyntheticSpec(n_videos=args.n_videos, seed=args.seed)
    print(generate_corpus(spec, out))


def _davis(args: argparse.Namespace) -> None:
    from .download import fetch_davis

    print(f"DAVIS root: {fetch_davis(Path(args.root), args.url, args.sha256)}")


def _manifest(args: argparse.Namespace) -> None:
    from .corpus import scan_directory, write_manifest

    videos = scan_directory(args.folder, args.fps, args.collection)
    out = Path(args.out) if args.out else Path(args.folder) / "manifest.csv"
    write_manifest(videos, out)
    print(f"{len(videos)} videos -> {out}")


def _query(args: argparse.Namespace) -> int:
    from .index import load_index
    from .preflight import check_writable
    from .query import QueryResult, check_recipe, operating_point, query_videos, rank_videos

    index = Path(args.index)
    check_recipe(index, load_index(index)[2])  # a damaged index is named before anything else
    if args.threshold is not None:
        threshold, why = args.threshold, "given"
    else:
        point = operating_point(index, args.fpr)
        threshold = point.threshold
        why = (
            f"FPR {point.fpr:g} over the study's detection queries, where it found"
            f" {point.tpr:.1%} of the copies first"
        )
    if args.out:
        check_writable(Path(args.out).parent, "folder of --out", "--out")
    videos = query_videos(args.videos, args.folder_fps)
    rows, notes, segments = rank_videos(
        videos, index, args.k, threshold, args.cache, args.visual_fallback
    )
    shown = None
    for row in rows:
        if row.error:
            print(f"storyhash: {row.path}: {row.error}", file=sys.stderr)
            continue
        if len(videos) > 1 and row.path != shown:
            print(f"# {row.query} ({row.path})")
        shown = row.path
        print(f"{row.rank:3d}  {row.score:.4f}  {row.reference}  {row.decision}")
    for m in segments:
        print(
            f"segment  {m.query_id} {m.query_start:.1f}–{m.query_end:.1f} s  <-  {m.ref_id}"
            f" {m.ref_start:.1f}–{m.ref_end:.1f} s  score {m.score:.4f}"
        )
    sys.stdout.flush()  # the hits and segments, then the notes on them
    for note in notes:
        print(f"storyhash: note: {note}", file=sys.stderr)
    copies = {r.path for r in rows if r.decision == "copy"}
    failed = sum(bool(r.error) for r in rows)
    summary = (
        f"{len(copies)} of {len(videos)} video(s) have a copy (score ≥ {threshold:.4f}: {why})"
    )
    if segments:
        with_segments = len({m.query_id for m in segments})
        summary += (
            f"; {with_segments} hold copied segments by the frame index (the decision above is"
            " the pooled vector's)"
        )
    if failed:
        summary += f"; {failed} could not be ranked"
    if args.out:
        QueryResult.write(rows, Path(args.out))
        summary += f"; rows in {args.out}"
    print(f"storyhash: {summary}", file=sys.stderr)
    return 0 if copies else 1


def _positive(value: str) -> int:
    """An argparse type: an integer of at least 1."""
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1 (got {number})")
    return number


def _check_reproducible(args: argparse.Namespace) -> None:
    from .reproduce import check

    if check(
        Path(args.params),
        Path(args.run),
        Path(args.scratch) if args.scratch else None,
        args.fresh_cache,
    ):
        raise SystemExit(1)


def _diff_tables(args: argparse.Namespace) -> None:
    from .reproduce import table_bytes_diff

    first, second = Path(args.first), Path(args.second)
    for run in (first, second):
        if not (run / "tables").is_dir():
            raise StoryHashError(f"{run} has no tables/ folder (give two run folders)")
    found = table_bytes_diff(first, second)
    for label, names in (
        ("CHANGED", found.changed),
        (f"ONLY IN {first}", found.only_first),
        (f"ONLY IN {second}", found.only_second),
    ):
        for name in names:
            print(f"{label}  {name}")
    print(
        f"{len(found.identical)} table files byte-identical, {len(found.changed)} changed,"
        f" {len(found.only_first)} only in {first}, {len(found.only_second)} only in {second}"
    )


def _cluster(args: argparse.Namespace) -> None:
    import signal
    import tempfile
    import time

    from .slurm import slurm_cluster

    if args.dry_run:  # a scheduler of its own: the live cluster's scheduler file stays untouched
        with (
            tempfile.TemporaryDirectory() as tmp,
            slurm_cluster(Path(args.config), Path(tmp) / "s.json") as cluster,
        ):
            print(cluster.job_script())
        return
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # scancel / walltime: close cleanly
    scheduler_file = Path(args.scheduler_file).expanduser()
    with slurm_cluster(Path(args.config), scheduler_file) as cluster:
        cluster.adapt(minimum_jobs=args.min_jobs, maximum_jobs=args.jobs)
        print(
            f"scheduler {cluster.scheduler_address}, dashboard {cluster.dashboard_link}\n"
            f"up to {args.jobs} SLURM job(s) of workers. In the params:"
            f" cluster: {{scheduler_file: {scheduler_file}}}\n"
            "Ctrl-C stops the cluster and cancels its jobs.",
            flush=True,
        )
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            print("stopping the cluster", flush=True)


_DEBUG = argparse.ArgumentParser(add_help=False)
_DEBUG.add_argument(
    "--debug", action="store_true", default=argparse.SUPPRESS, help="show an error's traceback"
)


def _command(group, name: str, **kwargs) -> argparse.ArgumentParser:
    """A subcommand's parser, which takes ``--debug`` too."""
    return group.add_parser(name, parents=[_DEBUG], **kwargs)


def build_parser() -> argparse.ArgumentParser:
    from .download import DAVIS_2017_URL

    p = argparse.ArgumentParser(
        prog="storyhash",
        description="Run the StoryHash study, make data, apply transforms, rank a video."
        " A bad input ends in one line on stderr and exit code 2; Ctrl-C in one line and 130.",
    )
    p.add_argument("--debug", action="store_true", help="show an error's traceback")
    sub = p.add_subparsers(dest="command", required=True)

    s = _command(
        sub, "study", help="run the notebook sequence headlessly (papermill) for a params file"
    )
    s.add_argument(
        "--params", default="params/default.yaml", help="YAML params (default: %(default)s)"
    )
    s.add_argument(
        "--only",
        nargs="+",
        metavar="NOTEBOOK",
        help="run only these notebooks, e.g. 04_robustness (earlier ones must have run)",
    )
    s.add_argument(
        "--into",
        metavar="FOLDER",
        help="run in FOLDER, started as a copy of the params' run (e.g. the committed"
        " outputs/real), which stays untouched; the cache is the params' (e.g. --into"
        " outputs/scratch --only 04_robustness)",
    )
    s.set_defaults(fn=_study)

    s = _command(
        sub,
        "check-reproducible",
        help="rerun a committed run into a scratch folder and compare every table",
        description="Rerun the notebook sequence of --params into a scratch folder"
        " (with the params'"
        " cache) and compare every table with the committed run: rates, ranks and counts must be"
        " identical, other floats within 1e-4. Exits 1 and prints each difference if any.",
    )
    s.add_argument(
        "--params", default="params/real.yaml", help="YAML params of the run (default: %(default)s)"
    )
    s.add_argument(
        "--run", default="outputs/real", help="the committed run folder (default: %(default)s)"
    )
    s.add_argument(
        "--scratch",
        help="where to rerun (default: .cache/reproduce/<run folder name>; emptied first)",
    )
    s.add_argument(
        "--fresh-cache",
        action="store_true",
        help="recompute every video in an empty cache inside the scratch folder"
        " (default: the params' cache)",
    )
    s.set_defaults(fn=_check_reproducible)

    s = _command(
        sub,
        "diff-tables",
        help="which table files of two run folders are byte-identical",
        description="Compare tables/* (CSV, Markdown, LaTeX) of two run folders byte for byte"
        " and list the files that changed or exist in one run only.",
    )
    s.add_argument("first", help="a run folder, e.g. outputs/default")
    s.add_argument("second", help="another run folder")
    s.set_defaults(fn=_diff_tables)

    s = _command(
        sub,
        "query",
        help="rank videos against a saved index and decide copy / no copy",
        description="Rank each video against an index a study saved, through the study's own"
        " pipeline and cache, and call each hit a copy when its similarity reaches the"
        " operating threshold: by default the one notebook 04 measured on the study's detection"
        " gallery so that at most 1 % of its queries without a correct best hit (no match, or"
        " the wrong reference first) are called a copy (stored with the index), or --threshold."
        " Prints rank, similarity, video id and decision; notes on stderr say when a query is"
        " too short for motion or the list is shorter than -k. When the run beside the index"
        " has a frame index (indexes/frames.npz, saved by notebook 10), 'segment' lines give"
        " each copied stretch: its seconds in the video and in the reference, and a score."
        " In a batch, a video that cannot"
        " be read is a row with its error; a single one stops the command. Exit status: 0 if"
        " any video has a copy, 1 if none has, 2 on an error that stops the command.",
    )
    s.add_argument(
        "videos",
        nargs="+",
        metavar="VIDEO",
        help="video files or frame folders, folders of videos, manifest CSVs, or quoted glob"
        " patterns",
    )
    s.add_argument(
        "--index",
        default="outputs/real/indexes/fusion",
        help="index folder a study saved (default: %(default)s)",
    )
    s.add_argument("-k", type=_positive, default=5, help="how many results (default: 5)")
    decide = s.add_mutually_exclusive_group()
    decide.add_argument(
        "--fpr",
        type=float,
        default=0.01,
        help="the false-positive rate whose stored threshold decides (default: %(default)s;"
        " the levels an index stores are in its operating_points.json)",
    )
    decide.add_argument(
        "--threshold",
        type=float,
        metavar="SCORE",
        help="decide by this similarity instead (a hit at or above it is a copy)",
    )
    s.add_argument("--out", metavar="FILE", help="write every row to FILE (.csv or .json)")
    s.add_argument(
        "--visual-fallback",
        action="store_true",
        help="rank a query too short to track any motion by the visual index beside --index",
    )
    s.add_argument("--folder-fps", type=float, default=24.0, help="frame-folder rate (default: 24)")
    s.add_argument(
        "--cache",
        default=".cache/storyhash",
        help="cache of features and tracks, the study's by default (default: %(default)s)",
    )
    s.set_defaults(fn=_query)

    s = _command(sub, "transforms", help="list the paper's 14 transforms and their ffmpeg filters")
    s.add_argument(
        "--hard",
        metavar="SOURCE_ID",
        help="also list the hard suite's 15 edits as drawn for this source id",
    )
    s.set_defaults(fn=_transforms)

    s = _command(sub, "transform", help="apply named transforms to one video or frame folder")
    s.add_argument("src", help="video file or frame folder")
    s.add_argument("name", nargs="+", help="transform names, 'paper' for all 14, or rotate_<deg>")
    s.add_argument("--out", default=".", help="output folder (default: current)")
    s.add_argument("--folder-fps", type=float, default=24.0, help="frame-folder rate (default: 24)")
    s.set_defaults(fn=_transform)

    s = _command(
        sub,
        "cluster",
        help="start a Dask cluster on SLURM (dask-jobqueue) for study runs to connect to",
    )
    s.add_argument(
        "--config", default="deploy/slurm.yaml", help="jobqueue YAML (default: %(default)s)"
    )
    s.add_argument(
        "--scheduler-file",
        default="~/.storyhash/scheduler.json",
        help="where the scheduler writes its address (default: %(default)s)",
    )
    s.add_argument(
        "--jobs", type=int, default=4, help="most SLURM worker jobs at once (default: %(default)s)"
    )
    s.add_argument(
        "--min-jobs", type=int, default=0, help="jobs kept while idle (default: %(default)s)"
    )
    s.add_argument("--dry-run", action="store_true", help="print the worker job script and exit")
    s.set_defaults(fn=_cluster)

    data = _command(sub, "data", help="make or fetch a corpus").add_subparsers(
        dest="what", required=True
    )
    s = _command(data, "synthetic", help="write the embedded synthetic corpus to a folder")
    s.add_argument("--out", required=True)
    s.add_argument("--n-videos", type=int, default=12)
    s.add_argument("--seed", type=int, default=0)
    s.set_defaults(fn=_synthetic)
    s = _command(data, "davis", help="download and unpack DAVIS-2017 trainval 480p (resumable)")
    s.add_argument("--root", default="data/davis", help="download folder (default: %(default)s)")
    s.add_argument("--url", default=DAVIS_2017_URL, help="archive URL (default: the official one)")
    s.add_argument("--sha256", default=None, help="expected SHA-256 of the archive, if known")
    s.set_defaults(fn=_davis)

    s = _command(sub, "manifest", help="scan a DAVIS root or folder of clips into a manifest.csv")
    s.add_argument("folder")
    s.add_argument("--out", help="manifest path (default: <folder>/manifest.csv)")
    s.add_argument("--fps", type=float, default=24.0, help="frame-folder rate (default: 24)")
    s.add_argument("--collection", default="", help="collection name for every video")
    s.set_defaults(fn=_manifest)
    return p


def main(argv: list[str] | None = None) -> int:
    """Run a command; an input error is one line and exit code 2, Ctrl-C one line and 130
    (``--debug``: the traceback instead)."""
    args = build_parser().parse_args(argv)
    try:
        status = args.fn(args)  # a command may answer with its status (query: copy found)
    except (StoryHashError, KeyboardInterrupt) as exc:
        if args.debug:
            raise
        if isinstance(exc, KeyboardInterrupt):
            exc = Interrupted("stopped (Ctrl-C)")
        stopped = isinstance(exc, Interrupted)
        print(f"storyhash: {'' if stopped else 'error: '}{exc}", file=sys.stderr)
        return 130 if stopped else 2
    return status or 0


if __name__ == "__main__":
    sys.exit(main())
