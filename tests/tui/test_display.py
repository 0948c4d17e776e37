"""What reaches the operator's terminal: container names and paths inert, sizes short, dialogs whole."""

from __future__ import annotations

from nydus_top.model.node import Container, ContainerState, NodeModel, Pod
from nydus_top.text import human_size, printable
from testkit.replay import ReplayBackend
from testkit.replay_data import NOW, make_config
from tests.tui.conftest import running
from tests.tui.screentext import screen_text


def test_controls_undecodable_bytes_and_bidi_overrides_are_escaped() -> None:
    hostile = "a\nb\x1b]0;owned\x07c\x9b2Jd\u202eevil\udcffe"
    assert printable(hostile) == "a\\nb\\x1b]0;owned\\x07c\\x9b2Jd\\u202eevil\\xffe"
    assert printable("/usr/lib/ünï côdé [bold]x[/]") == "/usr/lib/ünï côdé [bold]x[/]"


def test_sizes_are_short_binary_units() -> None:
    assert [human_size(n) for n in (None, 0, 1023, 1536, 5 * 2**20, 3 * 2**40, 2**52)] == [
        "-", "0B", "1023B", "1.5K", "5.0M", "3.0T", "4096.0T"]


async def test_containers_screen_shows_runtime_names_literally() -> None:
    node = NodeModel()
    node.replace_all([Pod("p1", "[b]web[/b]", "ns\x1b[2J", "u1")],
                     [Container("c1", "p1", "app[red]", "img:1", ContainerState.RUNNING, 0, NOW - 5, NOW - 5)])
    async with running(ReplayBackend(node, make_config(), recordings={}, created={}, clock=NOW)) as (app, pilot):
        text = screen_text(app)
        assert "ns\\x1b[2J/[b]web[/b]" in text
        assert "app[red]" in text
        await pilot.press("a")  # the arm dialog names the container too
        await pilot.pause()
        assert "container ns\\x1b[2J/[b]web[/b]/app[red]" in screen_text(app)


async def test_help_taller_than_the_screen_scrolls_and_keeps_its_keys_line() -> None:
    async with running() as (app, pilot):
        await pilot.press("enter", "question_mark")
        await pilot.pause()
        assert "esc close" in screen_text(app) and "Command palette" not in screen_text(app)
        await pilot.press("end")
        await pilot.pause()
        assert "esc close" in screen_text(app) and "Command palette" in screen_text(app)


async def test_marks_have_their_own_column_and_never_shift_a_row() -> None:
    from tests.tui.conftest import on_trace

    async with on_trace() as (app, pilot, screen):
        await pilot.press("space", "r")  # select the first row, flag the runtime-created files
        await pilot.pause()
        screen.view.move_cursor(screen.run.items.paths().index("/var/cache/nginx/client_temp/0001"))
        await pilot.press("space")  # selected and flagged: both marks
        await pilot.pause()
        lines = screen_text(app).splitlines()
        header = next(line for line in lines if line.lstrip().startswith("#"))
        rows = {line.split()[-1]: line for line in lines if line.rstrip().endswith(("/usr/sbin/nginx", "/run/nginx.pid",
                                                                                   "/etc/passwd", "/0001"))}
        column = header.index("path")
        assert {line.index("/", column - 1) for line in rows.values()} == {column}
        assert rows["/usr/sbin/nginx"].startswith("* ") and rows["/run/nginx.pid"].startswith(" !")
        assert rows["/etc/passwd"].startswith("  ") and rows["/var/cache/nginx/client_temp/0001"].startswith("*!")


async def test_a_narrow_trace_keeps_the_path_and_l_shows_the_whole_row() -> None:
    from nydus_top.screens.app import NydusTopApp
    from nydus_top.screens.dialogs import MessageDialog
    from testkit.replay_data import make_backend

    app = NydusTopApp(make_backend())
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("enter", "home", "down", "down")
        await pilot.pause()
        text = screen_text(app)
        # the path column keeps its room: the row's path is whole, pid and the read bar hide
        assert "       3     275.5 nginx           /lib/x86_64-linux-gnu/libpcre2-8.so.0" in text
        assert " /lib/x86_64-linux-gnu/libpcre2-8.so.0 · pid 4242 · size 614.6K" in text  # the detail line
        await pilot.press("l")
        await pilot.pause()
        assert isinstance(app.screen, MessageDialog)
        text = screen_text(app)
        assert "path   /lib/x86_64-linux-gnu/libpcre2-8.so.0" in text and "pid    4242" in text
        assert "size   614.6K" in text and "kind   open" in text


async def test_containers_fit_80_columns_names_whole_image_cut_age_and_trace_in_view() -> None:
    from nydus_top.screens.app import NydusTopApp
    from testkit.replay_data import make_backend

    app = NydusTopApp(make_backend())
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("down", "a", "enter")  # arm the next start of default/web-7d9f's sidecar
        await pilot.pause()
        await pilot.press("escape")
        await pilot.pause()
        lines = screen_text(app).splitlines()
        header = next(line for line in lines if "NAMESPACE/POD" in line)
        assert header.split() == ["NAMESPACE/POD", "CONTAINER", "IMAGE", "STATE", "PID", "AGE", "TRACE"]
        sidecar = next(line for line in lines if " sidecar " in line)
        assert sidecar.split() == ["default/web-7d9f", "sidecar", "…00/tools/envoy:v1", "running", "4300", "6m28s",
                                   "armed"]
        assert max(len(line) for line in lines) <= 80
        assert "nginx:1.25 " in next(line for line in lines if " nginx " in line)  # Docker Hub's prefix dropped
        await pilot.press("l")  # the whole row
        await pilot.pause()
        text = screen_text(app)
        assert "image         registry.local:5000/tools/envoy:v1" in text and "trace         armed" in text


async def test_counts_of_one_are_singular() -> None:
    """'(1 file)', '1 run': the diff's list labels and the waterfall's stall count (issue 19 item 13)."""
    from nydus_top.model.records import ListedFile
    from nydus_top.runs import evaluate as ev
    from nydus_top.screens.app import NydusTopApp
    from nydus_top.screens.diff import DiffScreen
    from nydus_top.screens.waterfall import WaterfallScreen
    from testkit.replay_data import make_backend

    app = NydusTopApp(make_backend())
    async with app.run_test(size=(100, 30)) as pilot:
        one, two = [ListedFile("/bin/app", 10, 0)], [ListedFile("/bin/app", 10, 0), ListedFile("/etc/app", 5, 1)]
        app.push_screen(DiffScreen(("one", one), ("two", two)))
        await pilot.pause()
        text = screen_text(app)
        assert "A = one (1 file)" in text and "B = two (2 files)" in text
        table = ev.Table()
        table.add("run", [ListedFile("/bin/app", 1 << 20, 0)], None)
        link = ev.Link(chunk=1 << 20)
        steps, score = ev.waterfall(table, 0, [], None, link)
        app.push_screen(WaterfallScreen("cold", steps, score, link))
        await pilot.pause()
        assert "(1 file) · start" in screen_text(app)
