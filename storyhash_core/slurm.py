"""Start the study's Dask cluster on SLURM with ``dask-jobqueue`` (``storyhash cluster``).

The scheduler runs in this process (a login node, or a small SLURM job of its own); workers
are SLURM jobs shaped by a jobqueue YAML (``deploy/slurm.yaml``). The scheduler writes its
address to a *scheduler file*; every client — ``storyhash study`` with
``cluster: {scheduler_file: …}`` in the params, the notebooks, a JupyterLab session — connects
through that file, so the address never has to be copied by hand.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from .errors import StoryHashError


def slurm_cluster(config: Path, scheduler_file: Path):
    """A ``SLURMCluster`` configured by the jobqueue YAML ``config``, its scheduler's address
    written to ``scheduler_file``. No job is submitted until it is scaled."""
    import dask

    try:
        from dask_jobqueue import SLURMCluster
    except ImportError:
        raise StoryHashError(
            "storyhash cluster needs dask-jobqueue: pip install dask-jobqueue"
        ) from None
    if not config.is_file():
        raise StoryHashError(f"jobqueue config {config} not found (start from deploy/slurm.yaml)")
    settings = yaml.safe_load(config.read_text()) or {}
    if "slurm" not in settings.get("jobqueue", {}):
        raise StoryHashError(f"{config} has no jobqueue.slurm section (see deploy/slurm.yaml)")
    dask.config.update(dask.config.config, settings, priority="new")
    scheduler_file.parent.mkdir(parents=True, exist_ok=True)
    options = dask.config.get("jobqueue.slurm.scheduler-options", {}) | {
        "scheduler_file": str(scheduler_file)
    }
    return SLURMCluster(scheduler_options=options)
