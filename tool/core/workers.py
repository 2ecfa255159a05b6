"""The process pool behind every `--workers` flag (CRFs, pseudo-label fusion, COCO label
maps): results in input order, items pulled lazily, workers that end with their parent."""
import multiprocessing
import os
import threading
from collections import deque
from concurrent.futures import ProcessPoolExecutor

ITEMS_IN_FLIGHT_PER_WORKER = 2  # map_with_workers: items submitted ahead of the results
PARENT_GONE_EXIT = 1  # exit code of a pool worker whose parent process has ended
# what the stage scripts import that takes seconds; CPython's forkserver does not preload
# the main script itself, so each worker would import these again
FORKSERVER_PRELOAD = ("torch", "numpy", "cv2", "PIL.Image", "pydensecrf.densecrf", "tool.core.io")


def _exit_with_parent():
    """Pool worker initializer: a daemon thread waits on the parent's sentinel (a pipe
    that closes when the parent process ends, even by kill -9) and ends the worker then.
    Without it an orphaned worker waits for work forever, and the forkserver and resource
    tracker, which live as long as a worker holds their pipes, stay with it."""
    parent = multiprocessing.parent_process()
    if parent is not None:
        threading.Thread(target=_exit_when_ended, args=(parent,), daemon=True).start()


def _exit_when_ended(parent):
    parent.join()
    os._exit(PARENT_GONE_EXIT)


def _pool_context():
    """forkserver where available (no inherited torch/OpenMP state), else spawn. The
    forkserver imports the heavy modules once (FORKSERVER_PRELOAD), so that a worker, which
    re-runs the main script's imports, starts in milliseconds instead of seconds: it is
    unprotected by _exit_with_parent until it starts."""
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(list(FORKSERVER_PRELOAD))
    return context


def map_with_workers(fn, items, workers=1):
    """fn over items, results in input order, as an iterator. workers=1 runs inline;
    more runs a process pool (fn and items must be picklable: module-level functions)
    whose workers end with the calling process, however it ends.
    Items are pulled from `items` lazily, at most ITEMS_IN_FLIGHT_PER_WORKER per worker
    ahead of the results (Executor.map would submit the whole iterator at once), so a
    generator producing large arrays runs alongside the pool and memory stays bounded."""
    if workers <= 1:
        yield from map(fn, items)
        return
    limit = workers * ITEMS_IN_FLIGHT_PER_WORKER
    with ProcessPoolExecutor(max_workers=workers, mp_context=_pool_context(),
                             initializer=_exit_with_parent) as pool:
        pending = deque()
        for item in items:
            pending.append(pool.submit(fn, item))
            if len(pending) >= limit:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
