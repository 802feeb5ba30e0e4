"""Grading on a Dask cluster: the client side (runs in the `dlcourse grade` process) and the task
(`grade_on_worker`, runs in a `dask worker` process, which is then the grader process of `engine`).

The task carries everything it needs as data: the submission and the source notebook as JSON, the
assignment's files as bytes with their sha256, the client's dlcourse version and the source's sha256.
The worker grades with the same engine as the local path (`engine.grade_notebook`: template fork,
sandbox, guard, limits) and returns the result and the executed notebook as JSON-safe data; it writes
nothing the client keeps. Only the client writes the gradebook, autograded notebooks and feedback.
Each worker forks its kernels from one template process: the worker's own, started with the worker
when it runs with ``--preload dlcourse.instructor.grading.cluster`` (`dask_setup`), else one for the whole batch,
which a worker plugin the client registers when it connects (`TemplatePlugin`) starts, and
unregistering it when the client closes stops.

A worker whose dlcourse version or assignment release differs from the client's refuses the task with
a message naming the worker. A worker killed mid-task: the scheduler gives the task to another worker. The scheduler gone: the
batch stops with one message; the grades saved so far stay, and the same command grades the rest.
A submission that crashes its kernel is a normal result ("crashed"), never an exception, so it is not
retried.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import hashlib
import json
import os
import tempfile
import uuid
from pathlib import Path
from urllib.parse import urlparse

import nbformat

from dlcourse.instructor.course import CourseError
from dlcourse.instructor.grading.engine import CellScore, GradeResult
from dlcourse.instructor.grading.template import Template

try:
    from distributed import WorkerPlugin
except ImportError:  # the cluster extra is not installed: ClusterGrader says so when used
    WorkerPlugin = object

SCHEDULER_ENV = "DLCOURSE_SCHEDULER"


class ClusterError(CourseError):
    """The cluster cannot grade (scheduler unreachable or gone, worker refused): one-line message."""


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def notebook_data(nb) -> dict:
    """A notebook as plain JSON data (what travels to the worker)."""
    return json.loads(nbformat.writes(nb))


def notebook_from_data(data: dict) -> nbformat.NotebookNode:
    return nbformat.reads(json.dumps(data), as_version=4)


def source_sha256(data: dict) -> str:
    """The release's identity: the sha256 of the source notebook's JSON data."""
    return _sha256(json.dumps(data, sort_keys=True).encode())


def result_to_data(result: GradeResult) -> dict:
    return dataclasses.asdict(result)


def result_from_data(data: dict) -> GradeResult:
    return GradeResult(**{**data, "cells": [CellScore(**c) for c in data["cells"]]})


# `dask worker ... --preload dlcourse.instructor.grading.cluster` gives the worker one template for its whole life
# (`dask_setup` starts it with the worker, `dask_teardown` closes it), kept here on the worker: every batch
# then forks its kernels at once instead of waiting seconds for torch to import in a template of its own.
WORKER_TEMPLATE = "dlcourse_template"


def dask_setup(worker) -> None:
    template = Template()
    template.start()
    setattr(worker, WORKER_TEMPLATE, template)


def dask_teardown(worker) -> None:
    template = getattr(worker, WORKER_TEMPLATE, None)
    if template is not None:
        template.close()


class TemplatePlugin(WorkerPlugin):
    """The template each worker forks kernels from, for every task of one batch (its name is the batch's):
    the worker's own when it was started with the preload, else one started for the batch and closed
    with it."""

    def __init__(self, name: str, preload: list[str] | None = None):
        self.name, self.preload, self.template, self.owned = name, preload, None, False

    def setup(self, worker) -> None:
        self.template = getattr(worker, WORKER_TEMPLATE, None)
        if self.template is None:
            self.template, self.owned = Template(self.preload), True
            self.template.start()  # its imports overlap the client's start (gradebook, reading the batch)

    def teardown(self, worker) -> None:
        if self.owned and self.template is not None:
            self.template.close()


def _host(address: str) -> str:
    return urlparse(address).hostname or address


def kernel_threads(worker_address: str, slots_by_host: dict[str, int]) -> int:
    """Torch and BLAS threads for one kernel: this machine's cores shared among the gradings its workers run
    at once (every thread of every worker on the host), as the local pool shares them among its workers.
    A worker the client did not see when it connected counts its own threads only."""
    slots = slots_by_host.get(_host(worker_address))
    if not slots:
        try:
            from distributed import get_worker

            slots = get_worker().state.nthreads
        except Exception:
            slots = 1
    return max(1, (os.cpu_count() or 1) // max(1, slots))


def grade_on_worker(task: dict) -> dict:
    """Runs on a Dask worker: check versions and file hashes, grade, return JSON-safe data."""
    import dlcourse
    from dlcourse.instructor.grading.engine import grade_notebook

    template = None  # without the batch's plugin (a task sent by hand): one template for this task
    try:
        from distributed import get_worker

        worker = get_worker()
        where = worker.address
        plugin = worker.plugins.get(task.get("template", ""))
        template = plugin.template if isinstance(plugin, TemplatePlugin) else None
    except Exception:  # called outside a worker (tests, local use)
        where = "this process"
    if task["dlcourse_version"] != dlcourse.__version__:
        raise ClusterError(f"worker {where} runs dlcourse {dlcourse.__version__}, the client "
                           f"{task['dlcourse_version']}: install the same version on every worker")
    if source_sha256(task["source"]) != task["source_sha256"]:
        raise ClusterError(f"worker {where} received a different release of {task['assignment']}")
    with tempfile.TemporaryDirectory(prefix="dlcourse-task-") as folder:
        files = {}
        for name, (digest, data) in task["files"].items():
            if _sha256(data) != digest:
                raise ClusterError(f"worker {where}: file {name} of {task['assignment']} does not match its hash")
            path = Path(folder) / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            files[name] = path
        options = task["options"]
        result, executed = grade_notebook(
            notebook_from_data(task["submission"]), notebook_from_data(task["source"]), files=files,
            threads=options.get("threads") or kernel_threads(where, options.get("slots_by_host", {})),
            cell_timeout=options["cell_timeout"], timeout=options["timeout"], memory_mb=options["memory_mb"],
            isolate=options["isolate"], notebook_name=f"{task['assignment']}.ipynb", template=template,
            native_code=options.get("native_code", False))
    return {"result": result_to_data(result), "executed": notebook_data(executed), "worker": where}


class ClusterGrader:
    """The client: connects to a scheduler, ships one grading task per submission, waits for the data."""

    def __init__(self, scheduler: str, assignment: str, source, options: dict, connect_timeout: float = 10):
        from distributed import Client

        try:
            self.client = Client(scheduler, timeout=connect_timeout, set_as_default=False)
        except (OSError, TimeoutError) as error:
            raise ClusterError(f"cannot reach the Dask scheduler at {scheduler}: {error}") from None
        self.scheduler = scheduler
        self.assignment = assignment
        self.source = source
        self.options = options
        self.source_data = notebook_data(source)
        self.sha = source_sha256(self.source_data)
        self.template_plugin = f"dlcourse-template-{uuid.uuid4().hex[:12]}"
        try:
            self.client.register_plugin(TemplatePlugin(self.template_plugin), name=self.template_plugin)
        except (OSError, TimeoutError) as error:
            self.client.close()
            raise ClusterError(f"the Dask scheduler at {scheduler} stopped answering: {error}") from None

    def slots(self) -> int:
        """Gradings the cluster runs at once: one per worker thread (a worker offers one per core)."""
        return max(1, sum(self.slots_by_host().values()))

    def slots_by_host(self) -> dict[str, int]:
        """Worker threads per machine: the gradings that share its cores."""
        hosts: dict[str, int] = {}
        for address, info in self.client.scheduler_info()["workers"].items():
            host = info.get("host") or _host(address)
            hosts[host] = hosts.get(host, 0) + int(info.get("nthreads", 1))
        return hosts

    def grade(self, submission, files: dict[str, Path]) -> tuple[GradeResult, nbformat.NotebookNode]:
        import dlcourse

        if "slots_by_host" not in self.options:
            self.options = {**self.options, "slots_by_host": self.slots_by_host()}
        task = {"assignment": self.assignment, "dlcourse_version": dlcourse.__version__,
                "source": self.source_data, "source_sha256": self.sha, "submission": notebook_data(submission),
                "options": self.options, "template": self.template_plugin,
                "files": {name: (_sha256(data), data) for name, data in
                          ((n, Path(p).read_bytes()) for n, p in files.items())}}
        future = self.client.submit(grade_on_worker, task, pure=False)
        try:
            data = future.result()
        except ClusterError:
            raise
        except (OSError, TimeoutError, concurrent.futures.CancelledError, asyncio.CancelledError) as error:
            # The client lost the scheduler: Dask cancels every future it had; what was saved stays saved.
            raise ClusterError(f"the Dask scheduler at {self.scheduler} is gone ({type(error).__name__}); run the "
                               f"same command again to grade what is missing") from None
        return result_from_data(data["result"]), notebook_from_data(data["executed"])

    def close(self) -> None:
        try:
            self.client.unregister_worker_plugin(self.template_plugin)  # stops the workers' templates
        except Exception:
            pass
        try:
            self.client.close(timeout=5)
        except Exception:
            pass
