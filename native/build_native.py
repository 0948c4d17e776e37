"""cffi (API mode) builder for ``nydus_top._native``; run by setup.py at install."""

from pathlib import Path

from cffi import FFI

HERE = Path(__file__).resolve().parent

# The tracer core, shared with the optimizer server executable (setup.py compiles that one).
CORE_SOURCES = ["tracer.c", "json_escape.c"]
# The module also holds the range tracer (nydus_top.tracing.range_session) and the per-entry loops of
# the tally and of leave-one-out (nydus_top.runs.native_loops), which the server does not use.
MODULE_SOURCES = [*CORE_SOURCES, "range_tracer.c", "range_watchdog.c", "page_cache.c", "tally.c", "loo.c"]

ffibuilder = FFI()
ffibuilder.cdef((HERE / "native.cdef").read_text())
ffibuilder.set_source(
    "nydus_top._native",
    '#include "native.h"',
    sources=[f"native/{name}" for name in MODULE_SOURCES],
    include_dirs=[str(HERE.relative_to(HERE.parent))],
    extra_compile_args=["-O2", "-Wall", "-Wextra", "-D_GNU_SOURCE", "-ffp-contract=off"],
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
