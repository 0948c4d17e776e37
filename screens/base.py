"""Base of the screens the app's tick repaints."""

from __future__ import annotations

from textual.screen import Screen


class LiveScreen(Screen):
    """Gets ``on_tick(changed_runs, node_dirty) -> consumed_node`` calls, only while mounted."""

    live = False

    def on_mount(self) -> None:  # Textual calls each class's on_mount along the MRO
        self.live = True

    def on_unmount(self) -> None:
        self.live = False

    def on_tick(self, changed: set[int], node_dirty: bool) -> bool:
        """Repaint what changed; return True if the node changes were shown."""
        return False
