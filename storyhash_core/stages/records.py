"""The typed records the stages leave in ``run.json``, one per stage (``stages.<stage>``).

A record holds what a stage measured that is not a table: counts, choices (the backbone and
why), seconds and the run's CPUs. Stages read each other's records through
:meth:`~storyhash_core.stages.run.Run.load`, e.g. ``run.load(ExtractRecord).transforms``.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from ..backbones import BackboneSpec
from ..tracking import TrackerSpec
from .run import StageRecord

TableRows = list[dict[str, Any]]  # a small table kept beside its CSV (e.g. the overall rows)


class TrackingScore(BaseModel):
    """Tracked vs true trajectories on the synthetic corpus, over every reference."""

    recall: float
    precision: float
    centroid_error_px: float


class ExtractRecord(StageRecord):
    stage = "extract"
    notebook = "01_extract"
    run_only = ("seconds", "queries_cached", "worker_cpus")

    backbone: BackboneSpec  # concrete (``auto`` resolved), its weights path portable
    backbone_reason: str
    worker_cpus: list[dict[str, Any]]
    tracker: TrackerSpec | None
    references: int
    references_failed: int
    queries: int
    queries_failed: int
    queries_cached: int
    transforms: list[str]  # in the order of every per-transform table
    hard_edits: list[str] = []  # the hard suite's, in the order of its tables
    hard_queries: int = 0  # of ``queries``
    seconds: dict[str, float]
    seconds_per_video_median: dict[str, float]
    tracking_share_of_extraction: float | None = None
    tracking_vs_truth: TrackingScore | None = None


class FuseRecord(StageRecord):
    stage = "fuse"
    notebook = "02_fuse"

    references: int
    queries: int
    widths: dict[str, int]
    # the action block's mean share of a reference's squared fused norm (tables/block_energy)
    action_share_mean: float | None = None


class IndexEntry(BaseModel):
    configuration: str
    kind: str
    vectors: int
    dim: int
    build_s: float
    bytes: int


class IndexRecord(StageRecord):
    stage = "index"
    notebook = "03_index"

    indexes: list[IndexEntry]


class Latency(BaseModel):
    median_ms: float
    p99_ms: float
    queries: int


class RobustnessRecord(StageRecord):
    stage = "robustness"
    notebook = "04_robustness"

    overall: TableRows
    search_latency: dict[str, Latency]


class DetectionRecord(StageRecord):
    """Methods scored against the detection gallery, with distractor queries."""

    stage = "detection"
    notebook = "04_robustness"

    gallery: int
    held_out: list[str]
    queries: int
    distractor_queries: int
    sources: int  # the clusters of every interval and test
    bootstrap: int  # resamples of the sources
    seed: int  # the distractor split of every table (and the bootstrap's seed)
    splits: int  # distractor splits in tables/<stage>_splits (seeds seed, seed + 1, ...)
    overall: TableRows
    significance: TableRows


class AblationRecord(StageRecord):
    stage = "ablation"
    notebook = "05_ablation"

    configurations: list[str]
    paper_compared: bool
    # the fusion-weight study (None: a run without motion features)
    fusion_candidates: int | None = None
    fusion_folds: int | None = None
    fusion_criterion: str | None = None
    fusion_oracle: bool = False  # the study repeated with oracle tracks (synthetic corpus)
    fusion_heldout: TableRows = []


class FailuresRecord(StageRecord):
    stage = "failures"
    notebook = "06_failure_analysis"

    configuration: str
    queries: int  # of the paper's transforms
    failures: int
    per_transform: dict[str, int]  # the paper's transforms and the hard edits
    hard_queries: int = 0
    hard_failures: int = 0
    sheet_rows: int = 16  # a sheet shows at most this many failures, the most confident first


class RotationSweepRecord(StageRecord):
    stage = "rotation_sweep"
    notebook = "07_figures"

    angles: list[float]
    queries: int
    failed: int


class BaselinesRecord(DetectionRecord):
    stage = "baselines"
    notebook = "08_baselines_mitigation"

    methods: list[str]
    costs: dict[str, float]


class RotationMitigationRecord(StageRecord):
    stage = "rotation_mitigation"
    notebook = "08_baselines_mitigation"

    variants: list[str]
    queries: int


class HardSuiteRecord(DetectionRecord):
    """Every method on the hard suite against the detection gallery (its fields: the same
    protocol as notebook 08's)."""

    stage = "hard_suite"
    notebook = "09_hard_suite"

    edits: list[str]
    methods: list[str]
    regions: list[str]  # the crops of ``visual_regions``
    costs: dict[str, float]  # median seconds per query: the full frame's and the variants'
    contact_source: str  # the source of figures/hard_suite_contact.jpg


class PartialCopiesRecord(StageRecord):
    """The partial-copy queries and each method's matching-track result."""

    stage = "partial_copies"
    notebook = "10_partial_copies"

    queries: int
    failed: int
    negatives: int
    copied_pairs: int
    threshold: float  # the frame method's chain threshold, fitted on the gallery
    reference_frames: int
    bytes_per_frame: int
    methods: list[dict[str, Any]]  # tables/partial_copies rows


# per stage, the fields of its record about how the run went (see StageRecord.run_only)
RUN_ONLY = {kind.stage: kind.run_only for kind in StageRecord.__subclasses__() if kind.run_only}
