"""What a study checks before it starts a kernel, so that bad input fails in one line and at
once, not in a notebook cell minutes later: the cache and output folders can be written, and
the corpus lists at least one reference that exists. It also sweeps the temporary files of
writers killed more than a day ago (:func:`~storyhash_core.cache.sweep_temporary`).
Transform and configuration names are checked with the params (:mod:`.params`)."""

from __future__ import annotations

import tempfile
from pathlib import Path

from .cache import is_url, sweep_temporary
from .errors import FolderError, ManifestError
from .params import StudyParams, resolve_location, run_location


def check_writable(folder: Path, what: str, setting: str) -> None:
    """Create ``folder`` if needed and write a file in it; a :class:`FolderError` names the
    ``setting`` to change if that fails."""
    fix = f"set {setting} to a folder you can write"
    existing = next(p for p in (folder, *folder.parents) if p.exists())
    if not existing.is_dir():
        raise FolderError(f"{what} {folder}: {existing} is a file, not a folder ({fix})")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".write-check-"):
            pass
    except OSError as exc:
        raise FolderError(f"{what} {folder} is not writable: {exc.strerror} ({fix})") from None


def check_corpus(params: StudyParams) -> None:
    """At least one reference of a manifest or scanned corpus exists (the synthetic corpus
    is generated, so always does)."""
    if params.corpus.kind == "synthetic":
        return
    from .stages.inputs import load_corpus

    videos = load_corpus(params, cache=None)
    if not videos:
        raise ManifestError(f"corpus {params.corpus.path} lists no videos")
    if not any(v.path.exists() for v in videos):
        raise ManifestError(
            f"none of the {len(videos)} references of corpus {params.corpus.path} exists"
            f" (the first is {videos[0].path}): check corpus.path, STORYHASH_SHARED and the"
            " manifest's paths, which are relative to its folder"
        )


def preflight(params: StudyParams) -> int:
    """Check what a study needs before it starts; return how many stale temporary files
    were swept from the cache and the run folder."""
    check_corpus(params)
    swept = 0
    cache = resolve_location(params.cache_dir)
    if not is_url(cache):
        check_writable(Path(cache), "cache folder", "cache_dir in the params")
        swept += sweep_temporary(Path(cache))
    run_dir, url = run_location(params)
    check_writable(run_dir, "run folder" if url else "output folder", "output_dir in the params")
    swept += sweep_temporary(run_dir)
    return swept
