"""Plain text of what the app shows (for assertions on visible content)."""

from textual.app import App


def screen_text(app: App) -> str:
    return "\n".join(strip.text.rstrip() for strip in app.screen._compositor.render_strips())
