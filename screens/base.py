"""Base of the screens the app's tick repaints."""

from __future__ import annotations

from textual.screen import Screen


class LiveScreen(Screen[None]):
    """Gets ``on_tick(changed_run_ids, node_dirty) -> consumed_node`` calls while it is the top
    screen; ``resync()`` when it becomes the top screen again (ticks it missed meanwhile)."""

    live = False

    def on_mount(self) -> None:  # Textual calls each class's on_mount along the MRO
        self.live = True

    def on_unmount(self) -> None:
        self.live = False

    def on_screen_resume(self) -> None:
        self.resync()

    def resync(self) -> None:
        """Show the model as it is now (it changed while another screen was on top)."""

    def on_tick(self, changed: set[int], node_dirty: bool) -> bool:
        """Repaint what changed; return True if the node changes were shown."""
        return False
