"""containerd's CRI image service: what containerd knows of an image beyond the name NRI gives."""
