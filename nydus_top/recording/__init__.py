"""Headless recording (the optimizer plugin drop-in) and its registry pusher."""
