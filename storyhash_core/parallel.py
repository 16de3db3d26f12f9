"""One way to run per-video work in parallel: tasks on a ``dask.distributed`` client.

On one machine that is a ``LocalCluster`` sized to its cores; with a scheduler address or
scheduler file (``storyhash cluster`` writes one for a SLURM cluster) it is an existing
cluster. :class:`Workers` starts that client only when a task is first submitted, so a rerun
whose work is all cached starts no cluster. :func:`run_batch` submits one task per item,
shows a progress bar (:mod:`~storyhash_core.progress`), and returns every result and every
failure (with its error) — nothing is silently dropped."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from . import progress
from .errors import StoryHashError

if TYPE_CHECKING:
    from dask.distributed import Client


# glibc malloc in a local cluster's worker processes: arrays up to 256 MiB from the heap, and
# up to 128 MiB of freed memory kept there. Dask's default (MALLOC_TRIM_THRESHOLD_ 64 KiB, which
# also turns glibc's adaptive mmap threshold off) maps and unmaps every array over 128 KiB,
# so each one costs fresh zeroed pages: a third of a worker's CPU time went to the kernel in
# the real study. The same bytes either way; 10-15 % less time per video (README, Performance).
WORKER_MALLOC = {
    "distributed.nanny.pre-spawn-environ.MALLOC_MMAP_THRESHOLD_": 256 * 2**20,
    "distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": 128 * 2**20,
}


class ClusterConfig(BaseModel):
    """Where tasks run: the scheduler at ``address`` or named by ``scheduler_file``, or else a
    local cluster of this shape."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    address: str | None = None
    scheduler_file: str | None = None
    n_workers: int | None = Field(None, ge=1)  # None: one per core
    threads_per_worker: int = Field(1, ge=1)
    processes: bool = True

    @property
    def local(self) -> bool:
        """Whether tasks run on a local cluster of this machine (no scheduler named)."""
        return not (self.address or self.scheduler_file)

    @model_validator(mode="after")
    def _one_scheduler(self) -> ClusterConfig:
        if self.address and self.scheduler_file:
            raise ValueError("give cluster.address or cluster.scheduler_file, not both")
        return self


@dataclass(frozen=True)
class Failure:
    """An item whose task raised: its key and the one-line error."""

    key: str
    error: str


def quiet_cancellation():
    """A worker plugin: workers do not warn about tasks cancelled because the run stopped
    (Ctrl-C, a failed stage); the run itself says where it stopped."""
    from dask.distributed import WorkerPlugin

    class QuietCancellation(WorkerPlugin):
        def setup(self, worker) -> None:
            logging.getLogger("distributed.worker.state_machine").setLevel(logging.ERROR)

    return QuietCancellation()


@contextmanager
def dask_client(config: ClusterConfig = ClusterConfig()) -> Iterator[Client]:
    """A client for ``config``; a local cluster is started and closed with the block. Prints
    where the Dask dashboard (live task stream, progress, worker memory) is; Dask's own log
    lines stay off a rendered page (:func:`~storyhash_core.progress.logs_off_the_page`)."""
    import dask
    from dask.distributed import Client, LocalCluster

    progress.logs_off_the_page("distributed")
    if not config.local:
        if config.scheduler_file and not Path(config.scheduler_file).expanduser().is_file():
            raise StoryHashError(
                f"scheduler file {config.scheduler_file} not found: start the cluster first"
                " (storyhash cluster), or drop cluster.scheduler_file from the params"
            )
        where = (
            {"scheduler_file": str(Path(config.scheduler_file).expanduser())}
            if config.scheduler_file
            else {"address": config.address}
        )
        with Client(**where, timeout=30) as client:
            client.register_plugin(quiet_cancellation())
            progress.note(
                f"Dask: scheduler {client.scheduler.address},"
                f" {len(client.scheduler_info()['workers'])} worker(s) now,"
                f" dashboard {client.dashboard_link}"
            )
            yield client
        return
    n_workers = config.n_workers or os.cpu_count() or 1
    with (
        dask.config.set(WORKER_MALLOC),
        LocalCluster(
            n_workers=n_workers,
            threads_per_worker=config.threads_per_worker,
            processes=config.processes,
            dashboard_address=":0",
        ) as cluster,
        Client(cluster) as client,
    ):
        client.register_plugin(quiet_cancellation())
        progress.note(
            f"Dask: local cluster of {n_workers} worker(s)"
            f" × {config.threads_per_worker} thread(s), dashboard {client.dashboard_link}"
        )
        yield client


class Workers:
    """The Dask client of ``config``, started when a task is first submitted (use it as a
    context manager; the cluster, if one was started, closes with the block)."""

    def __init__(self, config: ClusterConfig = ClusterConfig()) -> None:
        self.config = config
        self._stack = ExitStack()
        self._client: Client | None = None

    @property
    def client(self) -> Client:
        if self._client is None:
            self._client = self._stack.enter_context(dask_client(self.config))
        return self._client

    def submit(self, fn: Callable[..., Any], *args: Any, **kwargs: Any):
        return self.client.submit(fn, *args, **kwargs)

    def run(self, fn: Callable[..., Any]) -> dict[str, Any]:
        """``fn()`` on every worker, by worker address."""
        return self.client.run(fn)

    def __enter__(self) -> Workers:
        return self

    def __exit__(self, *exc) -> None:
        self._stack.close()
        self._client = None

    @property
    def started(self) -> bool:
        return self._client is not None


def refusing(fn: Callable[..., Any], item: Any, **kwargs: Any) -> Any:
    """``fn(item, **kwargs)``, an input error returned as a :class:`Failure` (its key filled in
    by :func:`run_batch`): a bad video is a row of the run, not an error in Dask's logs."""
    try:
        return fn(item, **kwargs)
    except StoryHashError as exc:
        return Failure("", f"{type(exc).__name__}: {exc}")


def run_batch(
    client: Client | Workers,
    fn: Callable[..., Any],
    items: Sequence[Any],
    keys: Sequence[str],
    desc: str,
    cached: Callable[[Any], Any] | None = None,
    **kwargs: Any,
) -> tuple[dict[str, Any], list[Failure]]:
    """Run ``fn(item, **kwargs)`` for every item; return results by key and the failures.

    ``cached(item)``, if given, is asked first, in this process: its result (not None) answers
    an item that needs no work, so a cache hit costs no task. If it raises, the item goes to
    its task, which meets the same error and records it. An input error
    (:class:`StoryHashError`) is recorded quietly; any other exception also reaches Dask's log.
    """
    results: dict[str, Any] = {}
    todo = []
    for item, key in zip(items, keys, strict=True):
        try:
            hit = cached(item) if cached is not None else None
        except (StoryHashError, OSError):
            hit = None
        if hit is None:
            todo.append((item, key))
        else:
            results[key] = hit
    if cached is not None:
        desc = f"{desc} ({len(results)} cached)"
    failures: list[Failure] = []
    if not todo:
        progress.note(f"{desc}: nothing to compute")
        return results, failures
    from dask.distributed import as_completed

    futures = {client.submit(refusing, fn, item, pure=False, **kwargs): key for item, key in todo}
    with progress.bar(len(futures), desc, unit="task") as bar:
        for future in as_completed(futures):
            key = futures[future]
            if future.status == "error":
                exc = future.exception()
                failures.append(Failure(key, f"{type(exc).__name__}: {exc}"))
            elif isinstance(result := future.result(), Failure):
                failures.append(Failure(key, result.error))
            else:
                results[key] = result
            future.release()
            bar.update()
    return results, sorted(failures, key=lambda f: f.key)
