"""Typed, validated parameter sets read from YAML; unknown keys and wrong types are errors.

Paths may use environment variables (``$STORYHASH_SHARED`` defaults to the ``shared``
folder beside the project checkout) and, when relative, are taken from the project root.
``cache_dir`` and ``output_dir`` may also be fsspec URLs (``s3://bucket/prefix``), for a
cluster whose nodes share no filesystem.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .augment import check_variant
from .backbones import BackboneSpec
from .cache import is_url, mirror_root
from .errors import ParamsError, TransformError, problems
from .fusion import CONFIGURATIONS
from .index import IndexSpec
from .parallel import ClusterConfig
from .synthetic import SyntheticSpec
from .tracking import TrackerSpec
from .transforms import HARD_EDITS, resolve

PROJECT_ROOT = Path(__file__).resolve().parents[1]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CorpusParams(_Strict):
    """Which videos are references, and which of them are transformed into queries."""

    kind: Literal["synthetic", "manifest", "davis", "directory"] = "synthetic"
    path: str | None = None  # manifest CSV, DAVIS root or folder of clips
    folder_fps: float = Field(24.0, gt=0)  # playback rate of frame folders found by a scan
    query_collections: list[str] | None = None  # None: every reference gets the transforms
    limit: int | None = Field(None, ge=1)  # keep only the first N videos (quick runs)
    synthetic: SyntheticSpec = SyntheticSpec()


class SamplingParams(_Strict):
    fps: float = Field(2.0, gt=0)


class EvaluationParams(_Strict):
    """Which vector configurations are evaluated (the first one is saved as the run's index)."""

    configurations: list[str] = Field(
        default_factory=lambda: ["fusion", "visual_padded", "action_padded"], min_length=1
    )
    weights: dict[str, float] | None = None  # per-block weights for the ``weighted`` configuration
    k: int = Field(10, ge=3)  # retrieved list length per query

    @field_validator("configurations")
    @classmethod
    def _known(cls, value: list[str]) -> list[str]:
        known = [*CONFIGURATIONS, "weighted"]
        unknown = [c for c in value if c not in known]
        if unknown:
            raise ValueError(f"unknown configuration(s) {unknown} (known: {', '.join(known)})")
        return value


class MotionParams(_Strict):
    """Object tracking and the action / graph blocks (off: visual configurations only)."""

    enabled: bool = True
    tracker: TrackerSpec = TrackerSpec()
    figures: int = Field(3, ge=0)  # references drawn with their tracks in figures/


class FigureParams(_Strict):
    rotation_angles: list[float] = Field(
        default_factory=lambda: [0, 15, 30, 45, 60, 75, 90], min_length=2
    )


class DetectionParams(_Strict):
    """Pair-level detection with distractor queries: a seeded share of the query sources is
    held out of the gallery, so their transformed copies are queries without a match."""

    distractor_fraction: float = Field(0.25, ge=0, lt=1)
    seed: int = 0  # the split every table shows; its next ``splits - 1`` seeds give the spread
    splits: int = Field(5, ge=1)
    # resamples of the source videos for every interval (0: none); the Bonferroni-level
    # intervals of a family of 8 sit ~30 resamples into each tail at 10 000
    bootstrap: int = Field(10_000, ge=0)


class BaselineParams(_Strict):
    """Methods compared with the configurations on the same queries."""

    poolings: list[Literal["median", "mean", "max"]] = Field(
        default_factory=lambda: ["mean", "max"]
    )
    chamfer_k: int = Field(10, ge=1)  # frame-level Chamfer re-ranks this many index candidates
    frame_hash: Literal["pdq"] | None = "pdq"  # classical per-frame perceptual hash (None: skip)


def _regions() -> list[str]:
    """A 3 x 3 grid of half-size crops (the 2 x 2 cells, the centre and the four edge
    middles) and the centre at 70 %: a picture-in-picture at 30-40 % of the width lies mostly
    inside one of them wherever it sits."""
    grid = [f"crop0.5@{x:g},{y:g}" for y in (0, 0.5, 1) for x in (0, 0.5, 1)]
    return [*grid, "crop0.7@0.5,0.5"]


class MitigationParams(_Strict):
    """Frame variants (storyhash_core.augment) for flip and rotation test-time augmentation
    and the region descriptors tried on the hard suite."""

    flips: list[str] = Field(default_factory=lambda: ["hflip", "vflip", "hvflip"])
    rotations: list[str] = Field(default_factory=lambda: ["rot90", "rot-90", "rot45", "rot-45"])
    regions: list[str] = Field(default_factory=_regions)

    @field_validator("flips", "rotations", "regions")
    @classmethod
    def _variants(cls, value: list[str]) -> list[str]:
        return [check_variant(v) for v in value]


def _weights() -> list[float]:
    return [0, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 1]


class FusionWeightParams(_Strict):
    """The fusion-weight study of notebook 05 (:mod:`storyhash_core.weighting`): every
    weighting of the grid scored, the choice made by k-fold cross-validation over query
    sources on ``criterion``, and its held-out result."""

    folds: int = Field(5, ge=2)
    seed: int = 0
    criterion: Literal["micro_ap", "recall_at_1"] = "micro_ap"
    kinds: list[Literal["early", "late", "rerank"]] = Field(
        default_factory=lambda: ["early", "late", "rerank"], min_length=1
    )
    scalings: list[Literal["minmax", "zscore", "rank"]] = Field(
        default_factory=lambda: ["minmax", "zscore", "rank"], min_length=1
    )
    action_weights: list[Annotated[float, Field(ge=0)]] = Field(
        default_factory=_weights, min_length=1
    )
    graph_weights: list[Annotated[float, Field(ge=0)]] = Field(
        default_factory=_weights, min_length=1
    )
    rerank_k: int = Field(10, ge=1)  # the visual candidates the ``rerank`` kind re-scores


HARD_BACKGROUNDS = SyntheticSpec(n_videos=12, width=640, height=360, max_duration_s=8.0, seed=2026)


class HardSuiteParams(_Strict):
    """The hard edit suite (:data:`~storyhash_core.transforms.HARD_EDITS`) applied to the
    query sources beside the paper's transforms; its picture-in-picture, blend and grid
    compose background videos drawn by the synthetic generator (in no gallery)."""

    edits: list[str] | Literal["all"] = Field(default_factory=list)  # [] : no hard suite
    backgrounds: SyntheticSpec = HARD_BACKGROUNDS

    @field_validator("edits")
    @classmethod
    def _known_edits(cls, value: list[str] | str) -> list[str] | str:
        unknown = [e for e in value if e not in HARD_EDITS] if value != "all" else []
        if unknown:
            raise ValueError(f"unknown hard edit(s) {unknown} (known: {', '.join(HARD_EDITS)})")
        return value

    @property
    def names(self) -> list[str]:
        """The selected edits, in the registry's order."""
        return [e for e in HARD_EDITS if self.edits == "all" or e in self.edits]


class PartialCopyParams(_Strict):
    """Partial-copy queries and their matching (notebook 10, :mod:`storyhash_core.partial`,
    :mod:`storyhash_core.frame_matching`): seeded queries that splice stretches of gallery
    references (``edits``: ``none``, paper transforms or hard edits without backgrounds)
    into footage in no gallery (the detection's held-out sources and the hard suite's
    synthetic backgrounds)."""

    single: int = Field(0, ge=0)  # queries copying one stretch; all three 0: no notebook-10 work
    double: int = Field(0, ge=0)  # queries copying stretches of two references
    negative: int = Field(0, ge=0)  # queries of footage in no gallery only
    query_s: list[float] = Field(default_factory=lambda: [8.0, 20.0], min_length=2, max_length=2)
    edits: list[str] = Field(
        default_factory=lambda: [
            "none",
            "flip_h",
            "rotate_10",
            "brightness_40",
            "compress_25",
            "speed_1.1",
            "crop_20",
            "grayscale",
            "blur_5",
            "caption_50",
        ],
        min_length=1,
    )
    seed: int = 0
    width: int = Field(480, ge=16)
    height: int = Field(270, ge=16)
    fps: float = Field(24.0, gt=0)
    frame_k: int = Field(5, ge=1)  # nearest reference frames per query frame
    max_refs: int = Field(5, ge=1)  # candidate references per query, per method
    threshold_quantile: float = Field(0.999, gt=0, lt=1)  # of frame similarities across refs
    bootstrap: int = Field(200, ge=0)

    @property
    def enabled(self) -> bool:
        return self.single + self.double + self.negative > 0


# where runs and caches live, how many workers run them, whether stages are memoised: none
# shapes a number (the memo's key and check-reproducible leave them out)
NOT_RESULTS = ("run_name", "cache_dir", "output_dir", "cluster", "memo")


class StudyParams(_Strict):
    run_name: str = "default"
    corpus: CorpusParams = CorpusParams()
    sampling: SamplingParams = SamplingParams()
    transforms: list[str] | Literal["paper"] = "paper"
    hard_suite: HardSuiteParams = HardSuiteParams()
    backbone: BackboneSpec = BackboneSpec()
    models_dir: str = (
        "${STORYHASH_SHARED}/models"  # where backbone ``auto`` looks for the ONNX file
    )
    pooling: Literal["median", "mean", "max"] = "median"
    motion: MotionParams = MotionParams()
    index: IndexSpec = IndexSpec()
    evaluation: EvaluationParams = EvaluationParams()
    figures: FigureParams = FigureParams()
    detection: DetectionParams = DetectionParams()
    baselines: BaselineParams = BaselineParams()
    mitigation: MitigationParams = MitigationParams()
    fusion_weights: FusionWeightParams = FusionWeightParams()
    partial_copies: PartialCopyParams = PartialCopyParams()
    paper_results: str = "${STORYHASH_SHARED}/reference/paper_results.json"
    cache_dir: str = ".cache/storyhash"  # a folder or an fsspec URL
    output_dir: str = (
        "outputs"  # a folder or an fsspec URL (the run is written locally, then uploaded)
    )
    cluster: ClusterConfig = ClusterConfig()
    memo: bool = True  # restore a stage's results when nothing it reads changed (stages/memo.py)

    @field_validator("transforms", mode="before")
    @classmethod
    def _known_transforms(cls, value: object) -> object:
        if not (
            value == "paper" or isinstance(value, list) and all(isinstance(v, str) for v in value)
        ):
            raise ValueError(f"give 'paper' or a list of transform names (got {value!r})")
        try:
            resolve(value)
        except TransformError as exc:
            raise ValueError(str(exc)) from None
        return value

    @model_validator(mode="after")
    def _motion_for_motion_blocks(self) -> StudyParams:
        if not self.motion.enabled:
            needy = [
                c
                for c in self.evaluation.configurations
                if c == "weighted" or set(CONFIGURATIONS[c]) - {"visual"}
            ]
            if needy:
                raise ValueError(
                    f"configuration(s) {needy} need motion features, but motion.enabled is false"
                )
        return self


def resolve_path(value: str) -> Path:
    """Expand ``$VARS`` (``STORYHASH_SHARED`` has a default); a relative path is taken from the
    project root, so notebooks (run from ``notebooks/``) and ``make`` agree."""
    os.environ.setdefault("STORYHASH_SHARED", str(PROJECT_ROOT.parent / "shared"))
    path = Path(os.path.expandvars(value)).expanduser()
    return (path if path.is_absolute() else PROJECT_ROOT / path).resolve()


def portable(path: str | Path) -> str:
    """The inverse of :func:`resolve_path` for records other machines read: ``$STORYHASH_SHARED/…``
    for the shared data, project-relative inside the project, else the path unchanged."""
    path = Path(path).resolve()
    shared = resolve_path("${STORYHASH_SHARED}")
    if path.is_relative_to(shared):
        return f"$STORYHASH_SHARED/{path.relative_to(shared).as_posix()}"
    return (
        path.relative_to(PROJECT_ROOT).as_posix()
        if path.is_relative_to(PROJECT_ROOT)
        else str(path)
    )


def resolve_location(value: str) -> str:
    """A folder or fsspec URL from params: a URL is kept (``$VARS`` expanded), a path is
    resolved as :func:`resolve_path` does."""
    expanded = os.path.expandvars(value)
    if is_url(expanded):
        return expanded.rstrip("/")
    return str(resolve_path(expanded.removeprefix("file://")))


def run_location(params: StudyParams) -> tuple[Path, str | None]:
    """The local folder a run is written to, and the URL it is uploaded to (None: the folder
    is the destination): with ``output_dir`` at a URL, the folder is in this machine's mirror."""
    output = resolve_location(params.output_dir)
    if is_url(output):
        return mirror_root(output) / params.run_name, f"{output}/{params.run_name}"
    return Path(output) / params.run_name, None


def load_params(path: str | Path) -> StudyParams:
    """Read and validate a YAML parameter file; raise :class:`ParamsError` with every problem."""
    path = Path(path)
    if not path.is_file():
        raise ParamsError(f"params file {path} not found (see params/ for examples)")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ParamsError(
            f"params file {path} is not valid YAML: {str(exc).splitlines()[0]}"
        ) from exc
    if not isinstance(raw, dict):
        raise ParamsError(f"params file {path} must hold a mapping of keys to values")
    try:
        return StudyParams.model_validate(raw)
    except ValidationError as exc:
        found = "; ".join(f"{where or '<top>'}: {message}" for where, message in problems(exc))
        raise ParamsError(f"params file {path}: {found}") from None


def portable_backbone(spec: BackboneSpec) -> BackboneSpec:
    """``spec`` for run.json and index metadata, its weights path portable
    (:func:`local_backbone` turns it back)."""
    weights = spec.weights and Path(spec.weights).exists() and portable(spec.weights)
    return spec.model_copy(update={"weights": weights}) if weights else spec


def local_backbone(spec: BackboneSpec) -> BackboneSpec:
    """The backbone a :func:`portable_backbone` spec describes, its weights path on this machine."""
    if spec.weights and (spec.weights.startswith("$") or (PROJECT_ROOT / spec.weights).exists()):
        spec = spec.model_copy(update={"weights": str(resolve_path(spec.weights))})
    return spec
