"""nydus-top: a terminal profiler for container nodes, producing nydus prefetch lists."""

__version__ = "0.1.0"
