"""Load generator for `codemode-bench bridge`: calls news.get_article through the
generated mcp_tools.py, the way a script in a sandbox would, and prints one JSON
object on stdout. The bench computes every statistic from what this prints, so
the Rust and Python figures share one method.

argv: LATENCY_CALLS CALLS_PER_WORKER REPEATS THREAD_COUNTS PROCESS_COUNTS
(counts comma-separated, e.g. 1,8,32)
"""

import json
import multiprocessing
import sys
import threading
import time

from mcp_tools import news

ARTICLE = "tech-001"


def call():
    article = news.get_article(id=ARTICLE)
    if article.get("id") != ARTICLE:
        raise SystemExit(f"get_article returned {article!r}")


def latency(calls):
    samples = []
    for _ in range(calls):
        started = time.perf_counter_ns()
        call()
        samples.append((time.perf_counter_ns() - started) / 1000.0)
    return samples


def work(calls, barrier):
    # The first call opens this worker's keep-alive connection, so the timed
    # span measures steady calls, not connects.
    call()
    barrier.wait()
    started = time.monotonic_ns()
    for _ in range(calls):
        call()
    return started, time.monotonic_ns()


def threads(count, calls):
    barrier = threading.Barrier(count)
    spans = [None] * count
    errors = []

    def run(i):
        try:
            spans[i] = work(calls, barrier)
        except BaseException as exc:
            errors.append(repr(exc))
            barrier.abort()

    pool = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    if errors:
        raise SystemExit(f"a thread failed: {errors[0]}")
    return spans


def process_main(calls, barrier, results):
    try:
        results.put(("ok", work(calls, barrier)))
    except BaseException as exc:
        barrier.abort()
        results.put(("error", repr(exc)))


def processes(count, calls):
    # fork: the children inherit the imported module instead of re-importing it,
    # and mcp_tools opens a fresh connection in each child by itself.
    ctx = multiprocessing.get_context("fork")
    barrier = ctx.Barrier(count)
    results = ctx.Queue()
    pool = [ctx.Process(target=process_main, args=(calls, barrier, results)) for _ in range(count)]
    for p in pool:
        p.start()
    # Drain before joining: a child blocks on exit until its queued item is read.
    outcomes = [results.get(timeout=600) for _ in range(count)]
    for p in pool:
        p.join()
    failed = [detail for status, detail in outcomes if status != "ok"]
    if failed:
        raise SystemExit(f"a process failed: {failed[0]}")
    return [detail for _, detail in outcomes]


def throughput(spans, total_calls):
    # monotonic_ns is one system-wide clock on Linux, so spans from different
    # processes compare directly.
    started = min(s for s, _ in spans)
    ended = max(e for _, e in spans)
    return total_calls / ((ended - started) / 1e9)


def counts(text):
    return [int(x) for x in text.split(",") if x]


def main():
    latency_calls, per_worker, repeats = (int(x) for x in sys.argv[1:4])
    thread_counts, process_counts = counts(sys.argv[4]), counts(sys.argv[5])

    for _ in range(20):
        call()
    result = {
        "python": sys.version.split()[0],
        "latency_us": latency(latency_calls),
        "calls_per_worker": per_worker,
        "threads": {},
        "processes": {},
    }
    for n in thread_counts:
        result["threads"][str(n)] = [
            throughput(threads(n, per_worker), n * per_worker) for _ in range(repeats)
        ]
    for n in process_counts:
        result["processes"][str(n)] = [
            throughput(processes(n, per_worker), n * per_worker) for _ in range(repeats)
        ]
    json.dump(result, sys.stdout)


if __name__ == "__main__":
    main()
