"""Test infrastructure shared by tests/ and bench/: a fake NRI runtime peer and captured frames,
the start-up workload and its recorder harness, replay data for the app, the DaemonSet pod.

It lives beside ``scripts/sandbox`` (the sandbox node) so that benchmarks never import from
``tests/``; both put ``scripts/`` on their import path.
"""
