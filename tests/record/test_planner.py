"""Which starts the recorder records, and where: filters, existing results, concurrent containers."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from nydus_top.commands.record import with_layer
from nydus_top.config import ConfigError, default_config
from nydus_top.model.node import Container, ContainerState, Pod
from nydus_top.recording.recorder import Planner, Recorder, RecordSettings
from nydus_top.tracing.arming import image_matches, next_start_of, starts_of_image

POD = Pod("p1", "web", "prod", "uid-1")


def _container(cid: str, image: str = "docker.io/library/nginx:1.25") -> Container:
    return Container(cid, POD.id, "nginx", image, ContainerState.CREATED, pid=42)


@pytest.mark.parametrize(("image", "pattern", "expected"), [
    ("docker.io/library/nginx:1.25", "nginx", True),
    ("docker.io/library/nginx:1.25", "nginx:1.25", True),
    ("docker.io/library/nginx:1.25", "nginx:1.24", False),
    ("docker.io/library/nginx:1.25", "docker.io/library/nginx", True),
    ("docker.io/library/nginx:1.25", "quay.io/library/nginx", False),
    ("registry.local:5000/team/app:v2", "registry.local:5000/team/app:v2", True),
    ("registry.local:5000/team/app:v2", "registry.local:5000/team/*", True),
    ("docker.io/library/nginx:1.25", "*/library/nginx:*", True),
    ("docker.io/library/nginx:1.25", "*redis*", False),
    ("docker.io/library/nginx:1.25", "Not A Reference", False),
])
def test_image_patterns(image: str, pattern: str, expected: bool) -> None:
    assert image_matches(image, pattern) is expected


def test_results_go_where_the_optimizer_puts_them(tmp_path: Path) -> None:
    planner = Planner(RecordSettings(tmp_path, timeout=30))
    plan, reason = planner.plan(POD, _container("c1"))
    assert reason == "" and plan is not None
    assert plan.paths.list == tmp_path / "library" / "nginx:1.25.timeout30s"
    assert plan.paths.csv == tmp_path / "library" / "nginx:1.25.timeout30s.csv"


def test_filters_select_silently(tmp_path: Path) -> None:
    planner = Planner(RecordSettings(tmp_path, images=("redis",), namespaces=("prod",)))
    assert planner.plan(POD, _container("c1")) == (None, "")
    planner = Planner(RecordSettings(tmp_path, images=("nginx",), namespaces=("dev",)))
    assert planner.plan(POD, _container("c1")) == (None, "")
    planner = Planner(RecordSettings(tmp_path, images=("nginx",), namespaces=("dev", "prod")))
    assert planner.plan(POD, _container("c1"))[0] is not None


def test_one_pair_per_image_unless_overwriting(tmp_path: Path) -> None:
    once = Planner(RecordSettings(tmp_path, keep_runs=0))
    assert once.plan(POD, _container("c1"))[0] is not None
    plan, reason = once.plan(POD, _container("c2"))
    assert plan is None and reason == f"container c1 is recording {tmp_path}/library/nginx:1.25 already"
    once.done("c1")
    assert once.plan(POD, _container("c2"))[0] is not None

    again = Planner(RecordSettings(tmp_path, overwrite=True))
    assert again.plan(POD, _container("c1"))[0] is not None
    assert again.plan(POD, _container("c2"))[0] is not None  # each saved on its own stop


def test_without_overwrite_later_starts_are_runs_until_keep_runs(tmp_path: Path) -> None:
    planner = Planner(RecordSettings(tmp_path, keep_runs=2))
    first = planner.plan(POD, _container("c1"))[0]
    second = planner.plan(POD, _container("c2"))[0]
    assert first is not None and first.pair and second is not None and not second.pair
    plan, reason = planner.plan(POD, _container("c3"))  # two runs on their way: enough
    assert plan is None and reason == (f"container c1 is recording {tmp_path}/library/nginx:1.25 already; "
                                       "2 runs of it kept (keep_runs = 2)")


def test_existing_results_are_kept_unless_overwriting(tmp_path: Path) -> None:
    (tmp_path / "library").mkdir()
    (tmp_path / "library" / "nginx:1.25").write_text("/etc/nginx/nginx.conf\n")
    plan, reason = Planner(RecordSettings(tmp_path, keep_runs=0)).plan(POD, _container("c1"))
    assert plan is None and reason == f"{tmp_path}/library/nginx:1.25 exists (overwrite = false)"
    run_only = Planner(RecordSettings(tmp_path)).plan(POD, _container("c1"))[0]
    assert run_only is not None and not run_only.pair  # the pair stays; the start adds a run
    assert Planner(RecordSettings(tmp_path, overwrite=True)).plan(POD, _container("c1"))[0] is not None


def test_an_image_without_a_usable_name_is_reported(tmp_path: Path) -> None:
    for image in ("", "Upper/Case:1"):  # no image annotation; a name containerd would refuse
        plan, reason = Planner(RecordSettings(tmp_path)).plan(POD, _container("c1", image=image))
        assert plan is None and reason.startswith(f"image {image!r}: ")


def test_bad_configuration_is_one_line_and_exit_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('persist_dir = "relative/dir"\n')
    done = subprocess.run([sys.executable, "-m", "nydus_top", "record", "--config", str(bad)],
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "persist_dir" in done.stderr and str(bad) in done.stderr


def test_reconfigure_applies_to_later_starts_only(tmp_path: Path) -> None:
    logged: list[str] = []
    recorder = Recorder(RecordSettings(tmp_path / "a"), log=logged.append)
    first = recorder.select(POD, _container("c1"))
    recorder.reconfigure(RecordSettings(tmp_path / "b", readable=True, timeout=5))
    second = recorder.select(POD, _container("c2", image="docker.io/library/redis:7"))
    assert first is not None and second is not None
    assert first.paths.list == tmp_path / "a" / "library" / "nginx:1.25" and first.settings.timeout == 0
    assert second.paths.list == tmp_path / "b" / "library" / "redis:7.timeout5s" and second.settings.readable
    assert logged == []


def test_nri_configure_text_is_the_last_layer() -> None:
    base = default_config()
    text = ('persist_dir = "/srv/lists"\nreadable = true\nserver_path = "/usr/bin/optimizer-server"\n'
            'timeout = 10\noverwrite = true\nevents = ["StartContainer", "StopContainer"]\n')
    config, notes = with_layer(base, text)
    assert (config.persist_dir, config.readable, config.timeout, config.overwrite) == (Path("/srv/lists"), True, 10,
                                                                                       True)
    assert config.nri_socket == base.nri_socket and config.sources == (*base.sources, "NRI Configure")
    assert notes == ("NRI Configure: server_path is ignored: nydus-top traces with its own tracer",)
    assert with_layer(base, "")[0] == replace(base, sources=(*base.sources, "NRI Configure"))


@pytest.mark.parametrize(("text", "message"), [
    ('timeout = -1', "NRI Configure: key 'timeout' must be an integer >= 0, got -1"),
    ('persist_dir = "results"', "NRI Configure: key 'persist_dir' must be an absolute path, got 'results'"),
    ('events = ["Start"]', "NRI Configure: key 'events' unknown NRI event 'Start'"),
    ('persist_dirr = "/x"', "NRI Configure: unknown key 'persist_dirr'"),
    ('readable = yes', "NRI Configure: invalid TOML: "),
])
def test_a_bad_nri_configure_text_is_one_line_naming_the_key(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        with_layer(default_config(), text)
    assert str(err.value).startswith(message) and "\n" not in str(err.value)


def test_selectors_for_arming() -> None:
    nginx = _container("c1")
    assert starts_of_image("nginx")(POD, nginx) is nginx
    assert starts_of_image("redis")(POD, nginx) is None
    assert next_start_of("prod", "web", "nginx")(POD, nginx) is nginx
    assert next_start_of("prod", "web", "sidecar")(POD, nginx) is None
    assert next_start_of("dev", "web", "nginx")(POD, nginx) is None
    assert next_start_of("prod", "web", "nginx")(None, nginx) is None


def test_an_image_is_armed_by_any_of_its_references() -> None:
    """CRI names a start's image by one reference; the image's other ones (from containerd) match too,
    and the start is named by the one that matched. Its ID stands for the name CRI gave."""
    image_id = "sha256:" + "cd" * 32
    names = {"docker.io/library/nginx:1.25": ("docker.io/library/nginx:1.25", "registry.local/web:prod",
                                              f"docker.io/library/nginx@sha256:{'ab' * 32}", image_id)}
    asked: list[str] = []

    def references(image: str) -> tuple[str, ...]:
        asked.append(image)
        return names.get(image, ())

    nginx = _container("c1")
    assert starts_of_image("registry.local/web:prod", references)(POD, nginx) == replace(
        nginx, image="registry.local/web:prod")
    assert starts_of_image(image_id, references)(POD, nginx) is nginx
    assert starts_of_image("registry.local/web:canary", references)(POD, nginx) is None
    assert starts_of_image("nginx", references)(POD, nginx) is nginx
    assert asked == ["docker.io/library/nginx:1.25"] * 3  # not asked when CRI's name matches


def test_a_recordings_identity_keeps_the_full_reference_and_its_digest() -> None:
    from nydus_top.recording.recorder import _identity
    from nydus_top.tracing.arming import StartTrace

    digest = "sha256:" + "ab" * 32
    pinned = _container("c1", image=f"registry.local:5000/team/app@{digest}")
    meta = _identity(StartTrace(pinned, POD, None, True, 1), pinned.image)
    assert (meta.image, meta.digest) == (f"registry.local:5000/team/app@{digest}", digest)
    assert (meta.container, meta.container_id, meta.pod) == ("nginx", "c1", "prod/web")
    assert _identity(StartTrace(_container("c2"), None, None, True, 1), "nginx").pod == ""


def test_at_most_max_recordings_at_once(tmp_path: Path) -> None:
    planner = Planner(RecordSettings(tmp_path, overwrite=True, max_recordings=2))
    assert planner.plan(POD, _container("c1"))[0] is not None
    assert planner.plan(POD, _container("c2"))[0] is not None
    plan, reason = planner.plan(POD, _container("c3"))
    assert plan is None and reason == "2 recordings in progress, the most at once (MAX_RECORDINGS)"
    planner.done("c1")
    assert planner.plan(POD, _container("c3"))[0] is not None
