"""A stage's results kept in the cache by everything they were computed from, so that a rerun
with the same code, libraries, CPU, params and inputs restores them instead of recomputing.

A stage function decorated with :func:`memoised` is looked up under a key of

- its notebook, this package's files, Python's and every installed distribution's version and
  the CPU (model and instruction sets);
- the params, except where runs and caches live, how many workers run them and ``memo``
  itself (:data:`~storyhash_core.params.NOT_RESULTS`); the bytes of every corpus video, of the
  backbone's weights (as notebook 01 resolved them) and of the paper's results;
- the run folder's inputs: every file in it (``notebooks/`` and ``logs/`` aside) and the
  stages' records (without their ``run_only`` fields: wall-clock seconds, what came from the
  cache) and figure lists in ``run.json``, except what the stage itself wrote when it last ran
  and the files a later notebook wrote into this folder and nothing changed since
  (``logs/memo_writers.json``; a rerun into the same folder finds those there; no stage reads
  a later one's).

Everything else a stage reads comes from the content-keyed cache, whose keys follow from
those inputs (notebook 01, which makes the corpus's features, is not memoised). On a miss the
stage runs; the files it wrote (new or replaced: every write is an ``os.replace``) and
deleted, the records it put in ``run.json`` and its return value are stored as one zip entry
(and those outputs in the stage's index: never inputs of it).
On a hit they are put back (paths inside the return value follow the run folder) and the
stage is not run. ``run.json`` says which notebooks were restored (``memo``).

The return value is pickled, so the memo trusts the cache as it trusts the code: it is used
with a local cache folder only (a cache at a URL, which others write, runs every stage).
``memo: false`` in the params turns it off (``storyhash check-reproducible`` does, so that it
recomputes every stage). An entry that cannot be stored or read is noted and skipped: the
stage runs, and its results are returned either way.
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import pickle
import sys
import zipfile
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any, TypeVar

from pydantic import ValidationError

from ..backbones import weights_id
from ..cache import atomic_path, file_digest, spec_key
from ..errors import StoryHashError
from ..machine import cpu
from ..params import NOT_RESULTS, resolve_path
from ..progress import note
from ..runner import NOTEBOOKS
from .inputs import extracted_backbone, load_corpus
from .records import RUN_ONLY
from .run import Run

MEMO_VERSION = 3
NOT_INPUTS = ("notebooks", "logs")
PACKAGE = Path(__file__).resolve().parents[1]
UNREADABLE = (OSError, EOFError, zipfile.BadZipFile, pickle.UnpicklingError, KeyError, ValueError)

Result = TypeVar("Result")


@functools.cache
def _distributions() -> list[tuple[str, str]]:
    """Every installed distribution and its version (read once per process)."""
    return sorted({(d.metadata["Name"] or "", d.version) for d in metadata.distributions()})


def environment() -> str:
    """A digest of this package's files (read on every call: a live kernel's edits count),
    Python's and every distribution's version, and the CPU."""
    h = hashlib.sha256()
    for path in sorted(p for p in PACKAGE.rglob("*") if p.is_file() and p.suffix != ".pyc"):
        h.update(path.relative_to(PACKAGE).as_posix().encode())
        h.update(hashlib.sha256(path.read_bytes()).digest())
    h.update(json.dumps([sys.version, _distributions(), cpu()]).encode())
    return h.hexdigest()


def _weights(run: Run) -> str:
    """The weights notebook 01 extracted with ("" without its record: the stage will say so)."""
    try:
        return weights_id(extracted_backbone(run))
    except (StoryHashError, ValidationError):
        return ""


def stage_key(run: Run, notebook: str) -> str:
    """The key of ``notebook``'s stage on ``run`` before its run-folder inputs: the
    environment, the params and the bytes of the files they name."""
    paper = resolve_path(run.params.paper_results)
    return spec_key(
        memo=MEMO_VERSION,
        env=environment(),
        params=run.params.model_dump(mode="json", exclude=set(NOT_RESULTS)),
        corpus=[run.cache.digest(v.path) for v in load_corpus(run.params, run.cache)],
        weights=_weights(run),
        paper=file_digest(paper) if paper.is_file() else "",
        notebook=notebook,
    )


def _files(run: Run) -> dict[str, tuple[int, int, int]]:
    """Every file of the run folder but ``run.json`` and :data:`NOT_INPUTS`, by relative path,
    with what changes when it is written (size, modification time, inode)."""
    out = {}
    for path in run.dir.rglob("*") if run.dir.is_dir() else ():
        rel = path.relative_to(run.dir).as_posix()
        if path.is_file() and rel != "run.json" and rel.split("/")[0] not in NOT_INPUTS:
            s = path.stat()
            out[rel] = (s.st_size, s.st_mtime_ns, s.st_ino)
    return out


def _snapshot(run: Run, files: dict[str, tuple[int, int, int]]) -> tuple[dict[str, str], dict]:
    """The run folder as a stage finds it: the digest of each of its ``files`` (as
    :func:`_files` lists them), and ``run.json``."""
    return {rel: file_digest(run.path(rel)) for rel in files}, run.read_json()


def _entry_key(key: str, snapshot: tuple[dict[str, str], dict], outputs: set[str]) -> str:
    """The entry's key: ``key`` and the inputs in ``snapshot`` (every file and ``run.json``
    entry but ``outputs``, records without their ``run_only`` fields)."""
    files, data = snapshot
    h = hashlib.sha256(key.encode())
    for rel in sorted(set(files) - outputs):
        h.update(f"{rel}\0{files[rel]}\0".encode())
    records, figures = (
        {k: v for k, v in data.get(part, {}).items() if f"run.json:{part}.{k}" not in outputs}
        for part in ("stages", "figures")
    )
    results = {
        stage: {f: v for f, v in record.items() if f not in RUN_ONLY.get(stage, ())}
        for stage, record in records.items()
    }
    h.update(json.dumps([results, figures], sort_keys=True, default=str).encode())
    return h.hexdigest()


def _index(run: Run, key: str) -> Path:
    """Where the outputs of the stage with ``key`` are listed: every file it wrote or deleted
    and every ``run.json`` entry it put, whenever it ran (a stage reads none of its own)."""
    return run.cache.path("memo", key, ".json")


def _outputs(run: Run, key: str) -> set[str] | None:
    index = _index(run, key)
    return set(json.loads(index.read_text())) if index.is_file() else None


def _writers_path(run: Run) -> Path:
    """Which notebook last wrote each file of the run folder, and the file's stat then."""
    return run.path("logs", "memo_writers.json")


def _writers(run: Run) -> dict[str, list]:
    try:
        return json.loads(_writers_path(run).read_text())
    except (OSError, ValueError):  # none yet, or unreadable: nothing is excluded, stages run
        return {}


def _later_outputs(run: Run, notebook: str, stats: dict[str, tuple[int, int, int]]) -> set[str]:
    """The files of the folder that a notebook after ``notebook`` wrote and that are unchanged
    since (same size, modification time and inode), and the ``run.json`` entries a later
    notebook put: never inputs of it, though a rerun into the same folder finds them there.
    Kept per folder, not per key, so that a rerun after a code change finds the same inputs as
    the one after it; a file anything else rewrote since (notebook 01, an earlier stage, a
    person) is an input again."""
    later = NOTEBOOKS[NOTEBOOKS.index(notebook) + 1 :] if notebook in NOTEBOOKS else ()
    return {
        rel
        for rel, (writer, *stat) in _writers(run).items()
        if writer in later and (rel.startswith("run.json:") or tuple(stat) == stats.get(rel))
    }


def _record_names(changes: dict) -> set[str]:
    """The ``run.json`` entries a stage put, as its index names them."""
    return {f"run.json:{part}.{k}" for part in ("stages", "figures") for k in changes[part]}


def _put_writer(
    run: Run, notebook: str, changes: dict, now: dict[str, tuple[int, int, int]]
) -> None:
    """Record that ``notebook`` wrote its ``changes``' files (with their stats ``now``, as
    :func:`_files` lists them after the stage) and ``run.json`` entries, and deleted its
    deleted files."""
    writers = _writers(run)
    writers.update({rel: [notebook, *now[rel]] for rel in changes["written"] if rel in now})
    writers.update({name: [notebook] for name in _record_names(changes)})
    for rel in changes["deleted"]:
        writers.pop(rel, None)
    try:
        with atomic_path(_writers_path(run)) as tmp:
            tmp.write_text(json.dumps(writers, sort_keys=True))
    except OSError as exc:
        note(f"{notebook}: memo bookkeeping not written ({exc}): the next rerun may recompute")


class _Pickler(pickle.Pickler):
    """Pickles paths inside the run folder relative to it, and the run itself by reference."""

    def __init__(self, file, run: Run) -> None:
        super().__init__(file, protocol=pickle.HIGHEST_PROTOCOL)
        self.run = run

    def persistent_id(self, obj: Any):
        if obj is self.run:
            return ("run",)
        if isinstance(obj, Path) and obj.is_absolute() and obj.is_relative_to(self.run.dir):
            return ("path", obj.relative_to(self.run.dir).as_posix())
        return None


class _Unpickler(pickle.Unpickler):
    def __init__(self, file, run: Run) -> None:
        super().__init__(file)
        self.run = run

    def persistent_load(self, pid):
        return self.run if pid[0] == "run" else self.run.path(pid[1])


def _store(run: Run, entry: Path, result: Any, changes: dict) -> bool:
    """Write the zip ``entry``: the files the stage wrote, its other changes and ``result``."""
    buffer = io.BytesIO()
    try:
        _Pickler(buffer, run).dump(result)
        with atomic_path(entry) as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED) as z:
            z.writestr("changes.json", json.dumps(changes, default=str))
            z.writestr("result.pkl", buffer.getvalue())
            for rel in changes["written"]:
                z.write(run.path(rel), f"files/{rel}")
    except (pickle.PicklingError, TypeError, AttributeError, OSError) as exc:
        note(f"not memoised ({type(exc).__name__}: {exc})")
        return False
    return True


def _inside(run: Run, rel: str) -> Path:
    path = run.path(rel)
    if not path.resolve().is_relative_to(run.dir.resolve()):
        raise ValueError(f"memo entry names {rel}, outside the run folder")
    return path


def _restore(run: Run, entry: Path) -> tuple[Any, dict]:
    """Put the stored files, deletions and ``run.json`` records back into ``run``; return the
    stored result and the changes made."""
    with zipfile.ZipFile(entry) as z:
        changes = json.loads(z.read("changes.json"))
        result = _Unpickler(io.BytesIO(z.read("result.pkl")), run).load()
        for rel in changes["written"]:
            with atomic_path(_inside(run, rel)) as tmp, z.open(f"files/{rel}") as member:
                tmp.write_bytes(member.read())
    for rel in changes["deleted"]:
        _inside(run, rel).unlink(missing_ok=True)
    run.put_records(changes["stages"], changes["figures"])
    return result, changes


def memoised(notebook: str) -> Callable[[Callable[[Run], Result]], Callable[[Run], Result]]:
    """``stage(run)`` for the stage of ``notebook``, or its stored results when nothing it is
    computed from has changed."""

    def decorate(stage: Callable[[Run], Result]) -> Callable[[Run], Result]:
        @functools.wraps(stage)
        def wrapper(run: Run) -> Result:
            if not run.params.memo or run.cache.fs is not None:
                return stage(run)
            key, stats = stage_key(run, notebook), _files(run)
            snapshot = _snapshot(run, stats)
            later, outputs = _later_outputs(run, notebook, stats), _outputs(run, key)
            if outputs is not None:
                entry = run.cache.path("memo", _entry_key(key, snapshot, outputs | later), ".zip")
                if entry.is_file():
                    try:
                        result, changes = _restore(run, entry)
                    except UNREADABLE as exc:
                        note(f"{notebook}: memo entry {entry.name} unreadable ({exc}): rerunning")
                    else:
                        _put_writer(run, notebook, changes, _files(run))
                        run.put_memo(notebook, "restored")
                        note(f"{notebook}: restored from the cache (nothing it reads changed)")
                        return result
            with run.recording() as put:
                result = stage(run)
            now = _files(run)
            written = sorted(rel for rel, stat in now.items() if stats.get(rel) != stat)
            changes = {"written": written, "deleted": sorted(set(stats) - set(now)), **put}
            records = _record_names(changes)
            known = (outputs or set()) | {*written, *changes["deleted"], *records}
            entry = run.cache.path("memo", _entry_key(key, snapshot, known | later), ".zip")
            if _store(run, entry, result, changes) and known != outputs:
                with atomic_path(_index(run, key)) as tmp:
                    tmp.write_text(json.dumps(sorted(known)))
            _put_writer(run, notebook, changes, now)
            run.put_memo(notebook, "computed")
            return result

        return wrapper

    return decorate
