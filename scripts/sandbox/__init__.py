"""A private containerd (1.7 or 2.1) + NRI node for development, CI and demos (``scripts/sandbox-node``).

Test and sandbox tooling only: nothing in the ``nydus_top`` runtime package imports it.
Modules: ``aptfetch`` (Debian packages into a shared cache), ``images`` (local OCI images),
``cri`` (a small CRI client), ``node`` (start/stop the containerd node).
"""
