"""The seed report's Flask service: /health, /cpu, /memory, /parallel and /status.

The seed names these five endpoints without their code; the semantics follow isobench's own
service (src/service/endpoints/), which implements the same five, so both answer the same
paths with the same parameters and the same work:

- GET /health                 -> 200 {"status": "ok"}
- GET /cpu?n=N                -> primes below N by trial division (default 50000, 1..5000000)
- GET /memory?mb=M            -> allocate M MiB, write every page, verify, free (default 64, 1..1024)
- GET /parallel?tasks=T&n=N   -> T prime counts of size N on a process pool (default 8, 1..64)
- GET /status                 -> version, uptime, pid, uid, hostname, kernel, cpus, memory

Every bad parameter (unknown, repeated, empty, not a whole number, out of bounds) is a 400
naming it, as in isobench-server. Only the standard library and Flask are used, so the image
needs nothing beyond Debian's python3-flask and gunicorn packages.
"""

import mmap
import os
import platform
import resource
import time
from concurrent.futures import ProcessPoolExecutor

from flask import Flask, jsonify, request

VERSION = "1.0.0"
STARTED = time.monotonic()
MIB = 1024 * 1024

# (default, minimum, maximum) of every numeric parameter, as isobench-server's defaults.
CPU_N = (50_000, 1, 5_000_000)
MEMORY_MB = (64, 1, 1024)
PARALLEL_TASKS = (8, 1, 64)

app = Flask(__name__)
_pool = None


class BadParameter(Exception):
    """A query parameter the endpoint cannot use; answered with a 400 naming it."""

    def __init__(self, param, problem):
        super().__init__(f"parameter `{param}`: {problem}")
        self.param = param


@app.errorhandler(BadParameter)
def bad_parameter(error):
    return jsonify(error=str(error), param=error.param), 400


@app.errorhandler(404)
def not_found(_error):
    return jsonify(error=f"no such endpoint: {request.path[:64]}"), 404


@app.errorhandler(405)
def not_allowed(_error):
    return jsonify(error=f"method {request.method} not allowed (endpoints answer GET)"), 405


def parse_uints(specs):
    """Parses the query into whole numbers: specs maps name -> (default, min, max)."""
    values = {name: spec[0] for name, spec in specs.items()}
    seen = set()
    for name, raw_values in request.args.lists():
        if name not in specs:
            allowed = ", ".join(specs) or "none"
            raise BadParameter(name[:64], f"unknown parameter (accepted: {allowed})")
        if name in seen or len(raw_values) > 1:
            raise BadParameter(name, "given more than once")
        seen.add(name)
        raw = raw_values[0]
        if raw == "":
            raise BadParameter(name, "empty value (expected a whole number)")
        if raw.startswith("-") and raw[1:].isdigit():
            raise BadParameter(name, "must not be negative")
        if not (raw.isascii() and raw.isdigit()):
            raise BadParameter(name, f"expected a decimal whole number, got {raw[:64]!r}")
        value = int(raw)
        _, minimum, maximum = specs[name]
        if value < minimum:
            raise BadParameter(name, f"must be at least {minimum}")
        if value > maximum:
            raise BadParameter(name, f"must be at most {maximum}")
        values[name] = value
    return values


def count_primes_below(n):
    """Primes below n by trial division with odd divisors, as isobench-server counts them."""
    if n <= 2:
        return 0
    count = 1  # 2
    for candidate in range(3, n, 2):
        divisor = 3
        prime = True
        while divisor * divisor <= candidate:
            if candidate % divisor == 0:
                prime = False
                break
            divisor += 2
        if prime:
            count += 1
    return count


def micros(seconds):
    return int(seconds * 1e6)


def usable_cpus():
    """CPUs this process may run on (its affinity, as a container's cpuset sets it)."""
    return len(os.sched_getaffinity(0))


def pool():
    """One process pool per gunicorn worker, made on first use: the GIL would serialise
    threads, so /parallel needs processes to run in parallel at all."""
    global _pool
    if _pool is None:
        _pool = ProcessPoolExecutor(max_workers=usable_cpus())
    return _pool


@app.get("/health")
def health():
    parse_uints({})
    return jsonify(status="ok")


@app.get("/cpu")
def cpu():
    n = parse_uints({"n": CPU_N})["n"]
    started = time.perf_counter()
    primes = count_primes_below(n)
    return jsonify(n=n, primes_below_n=primes, elapsed_us=micros(time.perf_counter() - started))


@app.get("/memory")
def memory():
    mb = parse_uints({"mb": MEMORY_MB})["mb"]
    page = mmap.PAGESIZE
    size = mb * MIB
    t0 = time.perf_counter()
    buffer = bytearray(size)  # calloc: pages are not touched yet
    t1 = time.perf_counter()
    pages = size // page
    buffer[::page] = b"\x01" * pages  # one write per page: the page faults
    t2 = time.perf_counter()
    touched = buffer.count(1)
    t3 = time.perf_counter()
    del buffer
    t4 = time.perf_counter()
    if touched != pages:
        return jsonify(error=f"verified {touched} of {pages} pages"), 500
    return jsonify(
        mb=mb,
        pages_touched=pages,
        page_bytes=page,
        elapsed_us=micros(t4 - t0),
        alloc_us=micros(t1 - t0),
        write_us=micros(t2 - t1),
        verify_us=micros(t3 - t2),
        free_us=micros(t4 - t3),
    )


@app.get("/parallel")
def parallel():
    params = parse_uints({"tasks": PARALLEL_TASKS, "n": CPU_N})
    tasks, n = params["tasks"], params["n"]
    started = time.perf_counter()
    results = list(pool().map(count_primes_below, [n] * tasks))
    return jsonify(
        tasks=tasks,
        n=n,
        results=results,
        pool_processes=usable_cpus(),
        elapsed_us=micros(time.perf_counter() - started),
    )


@app.get("/status")
def status():
    parse_uints({})
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return jsonify(
        version=VERSION,
        uptime_s=time.monotonic() - STARTED,
        pid=os.getpid(),
        uid=os.getuid(),
        hostname=platform.node(),
        kernel=platform.release(),
        cpus=usable_cpus(),
        memory={"process_max_rss_bytes": usage.ru_maxrss * 1024},
        server="gunicorn + Flask",
    )


if __name__ == "__main__":
    app.run(host="0.0.0.0", port=5000)
