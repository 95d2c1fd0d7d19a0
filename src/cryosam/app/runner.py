"""Running jobs in this process or on a dask.distributed cluster, and the two-round schedule
that ``cryosam batch`` and ``cryosam copick`` share (queries from prompted tomograms search
the others)."""

from __future__ import annotations

import logging
import signal

from cryosam.errors import CryosamError
from cryosam.method.queries import ClassQuery


class Runner:
    """Runs jobs in this process (``workers=0``) or on a dask.distributed cluster."""

    def __init__(self, scheduler: str | None, workers: int, threads: int):
        self.client = self.cluster = None
        if scheduler is None and workers == 0:
            return
        # dask.distributed takes ~1 s to import: only runs that use a cluster pay for it
        import dask
        from dask.distributed import Client, LocalCluster

        try:
            if scheduler is not None:
                self.client = Client(scheduler, timeout="20s")
            else:
                # The worker processes ignore Ctrl-C (they inherit the ignored SIGINT): this
                # process catches it and closes the cluster, so a user sees one line, not a
                # traceback from every worker.
                previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
                try:
                    # a tomogram that kills its worker (out of memory) is tried once more,
                    # not three times, before it is reported as failed
                    dask.config.set({"distributed.scheduler.allowed-failures": 1})
                    self.cluster = LocalCluster(
                        n_workers=workers,
                        threads_per_worker=threads,
                        processes=True,
                        dashboard_address=None,
                        silence_logs=logging.ERROR,
                    )
                finally:
                    signal.signal(signal.SIGINT, previous)
                self.client = Client(self.cluster)
        except OSError as exc:
            raise CryosamError(f"cannot reach the dask scheduler {scheduler}: {exc}") from exc

    def map(self, calls, on_crash):
        """Yield each call's result as it finishes; ``calls`` are ``(fn, args)`` pairs.
        A call whose worker died is answered by ``on_crash(args, message)``."""
        if self.client is None:
            for fn, args in calls:
                yield fn(*args)
            return
        from dask.distributed import as_completed  # a cluster exists: dask is imported

        futures = {self.client.submit(fn, *args, pure=False): args for fn, args in calls}
        for fut in as_completed(futures):
            try:
                yield fut.result()
            except Exception as exc:  # the worker died (killed, out of memory)
                yield on_crash(
                    futures[fut],
                    f"the worker running it died ({exc}); if it ran "
                    "out of memory, use fewer --workers",
                )

    def close(self):
        if self.client is not None:
            self.client.close()
        if self.cluster is not None:
            self.cluster.close()


def pick_in_two_rounds(runner, items, classes_of, item_name, row_name, call, no_query, crashed):
    """Yield ``(item, row)`` as items finish, for ``batch`` and ``copick`` alike.

    Round 1: items prompted for every class are picked outright, the other prompted ones
    only have their queries computed. Round 2: every other item is picked with the
    queries pooled (weighted by prompts) over the prompted ones; a prompted item whose
    first round failed or was skipped is not run again, and an unprompted one with no
    query at all gets ``no_query(item)``. ``call(item, queries, query_only)`` gives the
    ``(fn, args)`` to run; a row has ``status`` and, when it holds them, ``queries``;
    ``crashed(args, message)`` answers a call whose worker died."""
    all_classes = list(dict.fromkeys(c for i in items for c in classes_of(i)))
    complete = {
        item_name(i) for i in items if classes_of(i) and set(classes_of(i)) >= set(all_classes)
    }
    by_name = {item_name(i): i for i in items}
    first = [call(i, {}, item_name(i) not in complete) for i in items if classes_of(i)]
    found: dict[str, list] = {c: [] for c in all_classes}
    ended = set(complete)
    for row in runner.map(first, crashed):
        item = by_name[row_name(row)]
        for c, q in row.get("queries", {}).items():
            if c in classes_of(item):
                found[c].append(ClassQuery.from_dict(q))
        if row["status"] in ("failed", "skipped"):
            ended.add(item_name(item))
        yield item, row
    pooled = {c: ClassQuery.pool(qs).to_dict() for c, qs in found.items() if qs}
    second = []
    for i in items:
        if item_name(i) in ended:
            continue
        if not classes_of(i) and not pooled:
            yield i, no_query(i)
        else:
            second.append(call(i, pooled, False))
    for row in runner.map(second, crashed):
        yield by_name[row_name(row)], row
