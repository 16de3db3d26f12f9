"""A run: one params set, its folder ``<output_dir>/<run_name>/`` and its cache, and the typed
record each stage leaves in ``run.json`` (under ``stages.<name>``)."""

from __future__ import annotations

import json
import platform
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, TypeVar

import numpy as np
import pandas as pd
from pydantic import BaseModel

from .. import __version__
from ..cache import ArtifactCache, atomic_path
from ..errors import StoryHashError
from ..machine import cpu
from ..paper import Paper
from ..parallel import Workers
from ..params import (
    StudyParams,
    load_params,
    portable,
    resolve_location,
    resolve_path,
    run_location,
)
from ..plots import save_figure, save_image

if TYPE_CHECKING:
    from matplotlib.figure import Figure

# read as text even when every cell is empty (so are the intervals, ``*_ci``)
TEXT_COLUMNS = ("error", "features", "tracks", "path")


class StageRecord(BaseModel):
    """What a stage measured, kept in ``run.json``; subclasses name their stage and notebook."""

    stage: ClassVar[str]
    notebook: ClassVar[str]
    # fields about how this run went (wall-clock, what came from the cache), not its results:
    # no input of a later stage's memoised results (:mod:`.memo`)
    run_only: ClassVar[tuple[str, ...]] = ()


Record = TypeVar("Record", bound=StageRecord)


@dataclass
class Run:
    """A params set, its run folder and its cache."""

    params: StudyParams
    dir: Path
    params_file: Path | None = None
    # figures saved since the last record, and per notebook those this Run saved
    _unrecorded: list[str] = field(default_factory=list, repr=False)
    _figures: dict[str, list[str]] = field(default_factory=dict, repr=False)
    _recorded: dict[str, dict] | None = field(default=None, repr=False)

    @classmethod
    def open(cls, params_file: str | Path, run_dir: str | Path | None = None) -> Run:
        params = load_params(params_file)
        folder = Path(run_dir) if run_dir else run_location(params)[0]
        return cls(params, folder.resolve(), Path(params_file).resolve())

    @property
    def cache(self) -> ArtifactCache:
        return ArtifactCache(resolve_location(self.params.cache_dir))

    def paper(self) -> Paper | None:
        """The paper's numbers (``paper_results`` of the params), or None without that file."""
        return Paper.load(resolve_path(self.params.paper_results))

    @property
    def where(self) -> str:
        """The run folder as a reader of its pages can place it (project-relative, or
        ``$STORYHASH_SHARED/…``), never this machine's absolute path inside the project."""
        return portable(self.dir)

    def path(self, *parts: str) -> Path:
        return self.dir.joinpath(*parts)

    def table(self, name: str, folder: str = "tables") -> pd.DataFrame:
        """A table an earlier stage wrote (empty text cells read as "", empty numbers as NaN)."""
        path = self.path(folder, f"{name}.csv")
        if not path.is_file():
            raise StoryHashError(
                f"{path} not found: run the earlier notebooks of the sequence first"
            )
        df = pd.read_csv(path)
        text = df.select_dtypes(include=["object", "string"]).columns.union(
            [c for c in df if c in TEXT_COLUMNS or c.endswith("_ci")]
        )
        for column in text:
            df[column] = df[column].astype(object).where(df[column].notna(), "")
        return df

    # A stage saves its figures before it records (the record names them for its notebook's
    # page); tests check that every figure of a run is named.
    def save_figure(self, fig: Figure, name: str) -> Path:
        """``figures/<name>.png`` and ``.pdf``; the PNG is what the notebook's page shows."""
        png = save_figure(fig, self.path("figures", name))[0]
        self._unrecorded.append(png.name)
        return png

    def save_image(self, image: np.ndarray, name: str) -> Path:
        """An RGB array as ``figures/<name>`` (JPEG or PNG by its suffix)."""
        path = save_image(image, self.path("figures", name))
        self._unrecorded.append(path.name)
        return path

    def record(self, entry: StageRecord) -> None:
        """Keep ``entry`` under ``stages.<its stage>`` in ``run.json`` (atomically), with the
        params, versions and CPU of this machine, and under ``figures.<its notebook>`` the
        figures this Run saved for that notebook (the images its page must show)."""
        shown = self._figures.setdefault(entry.notebook, [])
        shown += [name for name in self._unrecorded if name not in shown]
        self._unrecorded.clear()
        self.put_records(
            {entry.stage: entry.model_dump(mode="json")}, {entry.notebook: sorted(shown)}
        )

    def put_records(self, records: dict[str, dict], figures: dict[str, list[str]]) -> None:
        """Put stage ``records`` (by stage) and ``figures`` (by notebook) into ``run.json``, as
        :meth:`record` does (a memoised stage's, restored by :mod:`.memo`)."""
        for notebook, names in figures.items():
            self._figures[notebook] = list(names)
        if self._recorded is not None:
            self._recorded["stages"].update(records)
            self._recorded["figures"].update(figures)
        self._update_json(stages=records, figures=figures)

    @contextmanager
    def recording(self) -> Iterator[dict[str, dict]]:
        """What :meth:`put_records` puts while the block runs (``stages``, ``figures``)."""
        self._recorded = put = {"stages": {}, "figures": {}}
        try:
            yield put
        finally:
            self._recorded = None

    def put_memo(self, notebook: str, how: str) -> None:
        """Whether ``notebook``'s stage was ``computed`` or ``restored`` (:mod:`.memo`)."""
        self._update_json(memo={notebook: how})

    def _update_json(self, **parts: dict) -> None:
        """Merge ``parts`` into ``run.json`` (atomically), with this machine's params,
        versions and CPU."""
        data = self.read_json()
        for part, entries in parts.items():
            data.setdefault(part, {}).update(entries)
        data |= {
            "params": self.params.model_dump(),
            "params_file": portable(self.params_file) if self.params_file else "",
            "versions": versions(),
            "cpu": cpu(),
        }
        with atomic_path(self.path("run.json")) as tmp:
            tmp.write_text(json.dumps(data, indent=2, default=str))

    def read_json(self) -> dict:
        """``run.json`` as it is ({} before any stage recorded)."""
        path = self.path("run.json")
        return json.loads(path.read_text()) if path.is_file() else {}

    def load(self, kind: type[Record]) -> Record:
        """The record a stage left, or an error naming the notebook that writes it."""
        entry = self.read_json().get("stages", {}).get(kind.stage)
        if entry is None:
            raise StoryHashError(
                f"{self.path('run.json')} has no {kind.stage} record: run"
                f" notebooks/{kind.notebook} first"
            )
        return kind.model_validate(entry)

    def client(self) -> Workers:
        """The params' Dask cluster, started only if a task is submitted (``with`` it)."""
        return Workers(self.params.cluster)


def versions() -> dict[str, str]:
    """The versions of the libraries that shape the numbers."""
    import av
    import faiss
    import onnxruntime

    from ..opencv import cv2

    return {
        "storyhash": __version__,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "pandas": pd.__version__,
        "faiss": faiss.__version__,
        "onnxruntime": onnxruntime.__version__,
        "opencv": cv2.__version__,
        "av": av.__version__,
    }


class Stopwatch:
    """Seconds since it was made, rounded to milliseconds."""

    def __init__(self) -> None:
        self.start = time.perf_counter()

    def __call__(self) -> float:
        return round(time.perf_counter() - self.start, 3)
