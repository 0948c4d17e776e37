"""Image conversion with a prefetch list."""
