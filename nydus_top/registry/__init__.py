"""Prefetch lists as OCI artifacts in the image's registry."""
