"""The study's stages, one module per notebook; each notebook's main cell is
``stages.<name>.run(run)``, which writes every table and figure the notebook shows:

- ``01_extract`` :mod:`.extract`: corpus, queries, features and tracks (cached);
  ``tables/references``, ``queries``, ``extraction_cost``
- ``02_fuse`` :mod:`.fuse`: ``artifacts/blocks.npz``, ``tables/block_energy``
- ``03_index`` :mod:`.index`: ``indexes/<configuration>/``, ``tables/indexes``
- ``04_robustness`` :mod:`.robustness`: ``tables/table1*``, ``detection*``
- ``05_ablation`` :mod:`.ablation`: ``tables/ablation``, ``fusion_weights``, ``fusion_heldout``,
  ``fusion_cv*``, ``fusion_calibration``
- ``06_failure_analysis`` :mod:`.failures`: ``tables/failures``, ``figures/failures_*``
- ``07_figures`` :mod:`.figures`: ``tables/flips``, ``flip_tests``, ``rotation_sweep*``
- ``08_baselines_mitigation`` :mod:`.baselines`: ``tables/baselines*``, ``flip_mitigation``,
  ``rotation_mitigation``
- ``09_hard_suite`` :mod:`.hard_suite`: ``tables/hard_suite*``, ``figures/hard_suite_*``
- ``10_partial_copies`` :mod:`.partial_copies`: ``partial/``, ``tables/partial_copies*``,
  ``figures/partial_*``

Each stage reads only what earlier ones wrote (tables, ``artifacts/``, the cache, and their
typed records in ``run.json``, :mod:`.records`), so any notebook reruns on its own from the
run folder. A :class:`Run` is a params set plus its folder ``<output_dir>/<run_name>/``.
Failures are rows with their error, never dropped. Helpers shared by several stages:
:mod:`.inputs` (corpus, queries, backbone, features) and :mod:`.scoring` (index search, the
detection gallery, method tables).
"""

import importlib

STAGES = (
    "ablation",
    "baselines",
    "extract",
    "failures",
    "figures",
    "fuse",
    "hard_suite",
    "index",
    "partial_copies",
    "robustness",
)
__all__ = ["Run", "about", *STAGES]


def __getattr__(name: str):
    """A stage module, ``Run`` or ``about``, imported when first used: a notebook pays only
    for its own stage's imports."""
    if name in STAGES:
        return importlib.import_module(f".{name}", __name__)
    if name == "Run":
        from .run import Run

        return Run
    if name == "about":
        from .inputs import about

        return about
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
