"""The kernel tracers: fanotify file and byte-range tracing, their helper process, arming at StartContainer."""
