"""A stage's results kept in the cache by everything they were computed from, so that a rerun
with the same code, libraries, CPU, params and inputs restores them instead of recomputing.

A stage function decorated with :func:`memoised` is looked up under a key of

- the stage, this package's source files, every installed distribution's version and the CPU
  (model and instruction sets);
- the params, except where runs and caches live, how many workers run them and ``memo``
  itself (:data:`NOT_IN_KEY`), and the bytes of the files they name outside the run folder (the
  paper's results, the backbone's weights);
- the run folder's inputs: every file in it (``notebooks/`` and ``logs/`` aside) and the
  stages' records (without their ``run_only`` fields: wall-clock seconds, what came from the
  cache) and figure lists in ``run.json``, except what the stage itself and the stages after
  it in the notebook sequence wrote when they last ran (a rerun into the same folder finds
  those there; no stage reads them).

Everything else a stage reads comes from the content-keyed cache, whose keys follow from
those inputs (notebook 01, which reads the corpus itself, is not memoised). On a miss the
stage runs; the files it wrote (new or replaced: every write is an ``os.replace``), the
``run.json`` entries it changed and its return value are stored as one zip entry. On a hit
they are put back (paths inside the return value follow the run folder) and the stage is not
run. ``memo: false`` in the params turns this off (``storyhash check-reproducible`` does, so
that it recomputes every stage). An entry that cannot be stored (a return value that does not
pickle) is skipped with a note; the stage's results are returned either way.
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import pickle
import zipfile
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any, TypeVar

from ..cache import atomic_path, spec_key
from ..machine import cpu
from ..params import resolve_path
from ..progress import note
from .records import RUN_ONLY
from .run import Run

MEMO_VERSION = 1
NOT_IN_KEY = ("run_name", "cache_dir", "output_dir", "cluster", "memo")
NOT_INPUTS = ("notebooks", "logs")
SEQUENCE = [  # the memoised stages in notebook order: each reads only earlier ones' outputs
    f"{module}.run"
    for module in (
        "fuse",
        "index",
        "robustness",
        "ablation",
        "failures",
        "figures",
        "baselines",
        "hard_suite",
        "partial_copies",
    )
]
PACKAGE = Path(__file__).resolve().parents[1]

Result = TypeVar("Result")


@functools.cache
def environment() -> str:
    """A digest of this package's files, every installed distribution's version and the CPU."""
    h = hashlib.sha256()
    for path in sorted(p for p in PACKAGE.rglob("*") if p.is_file() and p.suffix != ".pyc"):
        h.update(path.relative_to(PACKAGE).as_posix().encode())
        h.update(hashlib.sha256(path.read_bytes()).digest())
    dists = sorted({(d.metadata["Name"] or "", d.version) for d in metadata.distributions()})
    h.update(json.dumps([dists, cpu()]).encode())
    return h.hexdigest()


def stage_key(run: Run, stage: str) -> str:
    """The key of ``stage`` on ``run`` before its run-folder inputs are known."""
    params = run.params.model_dump(mode="json", exclude=set(NOT_IN_KEY))
    named = [run.params.paper_results, run.params.backbone.weights]
    files = [resolve_path(p) for p in named if p]
    digests = [run.cache.digest(p) if p.is_file() else "" for p in files]
    return spec_key(memo=MEMO_VERSION, stage=stage, env=environment(), params=params, files=digests)


def _files(run: Run) -> dict[str, tuple[int, int, int]]:
    """Every file of the run folder but ``run.json`` and :data:`NOT_INPUTS`, by relative path,
    with what changes when it is written (size, modification time, inode)."""
    if not run.dir.is_dir():
        return {}
    out = {}
    for path in run.dir.rglob("*"):
        rel = path.relative_to(run.dir).as_posix()
        if path.is_file() and rel != "run.json" and rel.split("/")[0] not in NOT_INPUTS:
            s = path.stat()
            out[rel] = (s.st_size, s.st_mtime_ns, s.st_ino)
    return out


def _run_json(run: Run) -> dict:
    path = run.path("run.json")
    return json.loads(path.read_text()) if path.is_file() else {}


def _file_digests(run: Run) -> dict[str, bytes]:
    return {rel: hashlib.sha256(run.path(rel).read_bytes()).digest() for rel in _files(run)}


def _entry_key(key: str, files: dict[str, bytes], data: dict, outputs: set[str]) -> str:
    """The entry's key: ``key`` and the run folder's inputs (``files``: digests by relative
    path; ``data``: ``run.json``), without the stage's own ``outputs``."""
    h = hashlib.sha256(key.encode())
    for rel in sorted(set(files) - outputs):
        h.update(rel.encode())
        h.update(files[rel])
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
    except (pickle.PicklingError, TypeError, AttributeError) as exc:
        note(f"not memoised ({type(exc).__name__}: {exc})")
        return False
    with atomic_path(entry) as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED) as z:
        z.writestr("changes.json", json.dumps(changes, default=str))
        z.writestr("result.pkl", buffer.getvalue())
        for rel in changes["written"]:
            z.write(run.path(rel), f"files/{rel}")
    run.cache.publish(entry)
    return True


def _restore(run: Run, entry: Path) -> Any:
    """Put the stored files and ``run.json`` changes back into ``run``; the stored result."""
    with zipfile.ZipFile(entry) as z:
        for name in z.namelist():
            if name.startswith("files/"):
                with atomic_path(run.path(name.removeprefix("files/"))) as tmp:
                    tmp.write_bytes(z.read(name))
        changes = json.loads(z.read("changes.json"))
        for rel in changes["deleted"]:
            run.path(rel).unlink(missing_ok=True)
        run.put_records(changes["stages"], changes["figures"])
        return _Unpickler(io.BytesIO(z.read("result.pkl")), run).load()


def _index(run: Run, key: str) -> Path:
    """Where the outputs of the stage with ``key``, as last computed, are listed."""
    return run.cache.path("memo", key, ".json")


def _outputs(run: Run, key: str) -> set[str] | None:
    index = _index(run, key)
    if not run.cache.exists(index):
        return None
    return set(json.loads(run.cache.fetch(run.cache.entry(index)).read_text()))


def _later_outputs(run: Run, name: str) -> set[str]:
    """What the stages after ``name`` in :data:`SEQUENCE` wrote when last computed: never an
    input of it, though a rerun into the same folder finds them there."""
    later = SEQUENCE[SEQUENCE.index(name) + 1 :] if name in SEQUENCE else []
    return set().union(*(_outputs(run, stage_key(run, n)) or set() for n in later))


def memoised(stage: Callable[[Run], Result]) -> Callable[[Run], Result]:
    """``stage(run)``, or its stored results when nothing it is computed from has changed."""
    name = f"{stage.__module__.rsplit('.', 1)[-1]}.{stage.__name__}"

    @functools.wraps(stage)
    def wrapper(run: Run) -> Result:
        if not run.params.memo:
            return stage(run)
        key = stage_key(run, name)
        later = _later_outputs(run, name)
        outputs = _outputs(run, key)
        if outputs is not None:
            found = _entry_key(key, _file_digests(run), _run_json(run), outputs | later)
            entry = run.cache.path("memo", found, ".zip")
            if run.cache.exists(entry):
                note(f"{name}: restored from the cache (nothing it reads changed)")
                return _restore(run, run.cache.fetch(run.cache.entry(entry)))
        stats, digests, before = _files(run), _file_digests(run), _run_json(run)
        result = stage(run)
        now, after = _files(run), _run_json(run)
        changes = {
            part: {k: v for k, v in after.get(part, {}).items() if before.get(part, {}).get(k) != v}
            for part in ("stages", "figures")
        }
        changes["written"] = sorted(rel for rel, stat in now.items() if stats.get(rel) != stat)
        changes["deleted"] = sorted(set(stats) - set(now))
        outputs = {*changes["written"], *changes["deleted"]}
        outputs |= {f"run.json:{part}.{k}" for part in ("stages", "figures") for k in changes[part]}
        entry = run.cache.path("memo", _entry_key(key, digests, before, outputs | later), ".zip")
        if _store(run, entry, result, changes):
            with atomic_path(_index(run, key)) as tmp:
                tmp.write_text(json.dumps(sorted(outputs)))
            run.cache.publish(_index(run, key))
        return result

    return wrapper
