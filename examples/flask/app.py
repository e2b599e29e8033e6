"""The seed report's Flask service: /health, /cpu, /memory, /parallel and /status.

The seed names these five endpoints without their code; the semantics follow isobench's own
service (src/service/endpoints/), which implements the same five, so both answer the same
paths with the same parameters and the same work:

- GET /health                 -> 200 {"status": "ok"}
- GET /cpu?n=N                -> primes below N by trial division (default 50000, 1..5000000)
- GET /memory?mb=M            -> allocate M MiB, write every page, verify, free (default 64, 1..1024)
- GET /parallel?tasks=T&n=N   -> T prime counts of size N on a process pool (default 8, 1..64)
- GET /status                 -> version, uptime, pid, uid, hostname, kernel, cpus, memory
- GET /syscalls?n=N           -> N getppid system calls (default 1000, 1..100000)
- GET /files?kb=K&fsync=BOOL  -> a fresh K KiB file in $ISOBENCH_DATA_DIR written, fsynced when
                                 asked, read back, compared, removed (default 64, 0..4096);
                                 503 without a usable data directory

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
SYSCALLS_N = (1000, 1, 100_000)
FILE_KB = (64, 0, 4096)
DATA_DIR = os.environ.get("ISOBENCH_DATA_DIR")
_next_file = 0

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


def parse_uints(specs, flags=()):
    """Parses the query into whole numbers: specs maps name -> (default, min, max); each name
    in flags is a yes/no flag (true/1, false/0; absent: false)."""
    values = {name: spec[0] for name, spec in specs.items()}
    values.update({name: False for name in flags})
    seen = set()
    for name, raw_values in request.args.lists():
        if name in flags and len(raw_values) == 1 and name not in seen:
            seen.add(name)
            raw = raw_values[0]
            if raw not in ("true", "1", "false", "0"):
                raise BadParameter(name, f"expected true, false, 1 or 0, got {raw[:64]!r}")
            values[name] = raw in ("true", "1")
            continue
        if name not in specs and name not in flags:
            allowed = ", ".join([*specs, *flags]) or "none"
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


@app.get("/syscalls")
def syscalls():
    n = parse_uints({"n": SYSCALLS_N})["n"]
    started = time.perf_counter_ns()
    for _ in range(n):
        os.getppid()
    return jsonify(calls=n, call="getppid", elapsed_ns=time.perf_counter_ns() - started)


@app.get("/files")
def files():
    global _next_file
    params = parse_uints({"kb": FILE_KB}, flags=("fsync",))
    kb, fsync = params["kb"], params["fsync"]
    if not DATA_DIR:
        return jsonify(error="no data directory is configured (ISOBENCH_DATA_DIR)"), 503
    _next_file += 1
    path = os.path.join(DATA_DIR, f"isobench-files-{os.getpid()}-{_next_file}.tmp")
    size = kb * 1024
    # A pattern that differs from file to file (period 256), so a wrong read cannot pass.
    block = bytes((_next_file + i * 167) & 0xFF for i in range(256))
    content = (block * (size // 256 + 1))[:size]
    try:
        t0 = time.perf_counter()
        with open(path, "xb") as out:
            out.write(content)
            out.flush()
            t1 = time.perf_counter()
            if fsync:
                os.fsync(out.fileno())
            t2 = time.perf_counter()
        with open(path, "rb") as back:
            same = back.read() == content
        t3 = time.perf_counter()
        os.remove(path)
        t4 = time.perf_counter()
    except OSError as error:
        try:
            os.remove(path)
        except OSError:
            pass
        return jsonify(error=f"the data directory failed: {error.strerror}"), 503
    if not same:
        return jsonify(error="the file read back differs from what was written"), 500
    return jsonify(
        bytes=len(content),
        fsync=fsync,
        verified=True,
        write_us=micros(t1 - t0),
        fsync_us=micros(t2 - t1),
        read_us=micros(t3 - t2),
        remove_us=micros(t4 - t3),
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
