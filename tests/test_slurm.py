"""The worked SLURM config (``deploy/slurm.yaml``) and connecting through a scheduler file,
checked without SLURM: building the cluster submits nothing until it is scaled."""

from __future__ import annotations

from pathlib import Path

import pytest

from storyhash_core.errors import StoryHashError
from storyhash_core.parallel import ClusterConfig, dask_client
from storyhash_core.slurm import slurm_cluster

CONFIG = Path(__file__).resolve().parents[1] / "deploy" / "slurm.yaml"


def test_worked_config_makes_single_threaded_workers_and_a_scheduler_file(tmp_path):
    scheduler_file = tmp_path / "sub" / "scheduler.json"
    with slurm_cluster(CONFIG, scheduler_file) as cluster:
        script = cluster.job_script()
        assert "#SBATCH --cpus-per-task=8" in script and "#SBATCH -p cpu" in script
        assert (
            "--nworkers 8" in script and "--nthreads 1" in script
        )  # one worker per core, as locally
        assert "export STORYHASH_MIRROR=${TMPDIR:-/tmp}/storyhash-mirror" in script
        assert scheduler_file.is_file()
        with dask_client(
            ClusterConfig(scheduler_file=str(scheduler_file))
        ) as client:  # how the study connects
            assert client.scheduler.address == cluster.scheduler_address
            assert client.scheduler_info()["workers"] == {}  # nothing submitted


def test_scheduler_settings_are_checked(tmp_path):
    with pytest.raises(ValueError, match="not both"):
        ClusterConfig(address="tcp://127.0.0.1:8786", scheduler_file=str(tmp_path / "s.json"))
    with pytest.raises(StoryHashError, match="s.json not found"):
        with dask_client(ClusterConfig(scheduler_file=str(tmp_path / "s.json"))):
            pass
    bad = tmp_path / "bad.yaml"
    bad.write_text("jobqueue: {pbs: {cores: 1}}\n")
    with pytest.raises(StoryHashError, match="no jobqueue.slurm"):
        slurm_cluster(bad, tmp_path / "s.json")
