"""NodeModel: copy-on-write reads, event application and subscriptions."""

from __future__ import annotations

import logging
import threading

from nydus_top.model.node import Container, ContainerState, EventKind, NodeModel, Pod, PodState
from nydus_top.nri import to_model
from testkit.runtime_peer import container_msg, pod_msg


def pod(i: int, **kw) -> Pod:
    return to_model.pod(pod_msg(i, **kw))


def ctr(i: int, pod_i: int | None = None, **kw) -> Container:
    return to_model.container(container_msg(i, pod_i, **kw))


def test_conversion_takes_image_from_nri_field_else_cri_annotation() -> None:
    from nydus_top.nri import nri_api_pb2 as api

    assert ctr(1).image == "registry/app:1"
    newer = container_msg(2, image=api.Image(name="registry/new:2"), created_at=1_700_000_000_500_000_000)
    c = to_model.container(newer)
    assert c.image == "registry/new:2" and c.created_at == 1_700_000_000.5
    assert ctr(3).created_at is None and ctr(3).exit_code is None


def test_readers_keep_a_consistent_view_while_the_model_changes() -> None:
    model = NodeModel()
    model.replace_all([pod(1)], [ctr(1)])
    pods, containers = model.snapshot()
    model.container_event(EventKind.CONTAINER_START, pod(1), ctr(2, 1))
    model.pod_event(EventKind.POD_REMOVE, pod(1))
    assert list(pods) == ["pod0001"] and list(containers) == ["ctr0001"]  # untouched old view
    assert dict(model.pods) == {} and dict(model.containers) == {}


def test_concurrent_reader_thread_never_sees_a_dict_change_size() -> None:
    model = NodeModel()
    stop = threading.Event()
    errors: list[BaseException] = []

    def reader() -> None:
        try:
            while not stop.is_set():
                for c in model.containers.values():
                    assert c.id
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    t = threading.Thread(target=reader)
    t.start()
    for i in range(1000):
        model.container_event(EventKind.CONTAINER_START, pod(i % 7), ctr(i, i % 7))
        if i % 3 == 0:
            model.container_event(EventKind.CONTAINER_REMOVE, pod(i % 7), ctr(i - 1, i % 7))
    stop.set()
    t.join()
    assert errors == []


def test_events_apply_states_and_removal_cascades() -> None:
    model = NodeModel()
    seen = []
    unsubscribe = model.subscribe(seen.append)
    model.pod_event(EventKind.POD_RUN, pod(1))
    started = model.container_event(EventKind.CONTAINER_START, pod(1), ctr(1, 1, state=1))
    assert started.state is ContainerState.RUNNING and started.started_at is not None
    stopped = model.container_event(EventKind.CONTAINER_STOP, pod(1), ctr(1, 1))
    assert stopped.state is ContainerState.STOPPED and stopped.started_at == started.started_at
    assert stopped.finished_at is not None
    model.pod_event(EventKind.POD_STOP, pod(1, pid=0))
    assert model.pods["pod0001"].state is PodState.NOTREADY
    model.pod_event(EventKind.POD_REMOVE, pod(1))
    assert dict(model.containers) == {}  # a removed pod takes its containers along
    assert [e.kind for e in seen] == [EventKind.POD_RUN, EventKind.CONTAINER_START, EventKind.CONTAINER_STOP,
                                      EventKind.POD_STOP, EventKind.POD_REMOVE]
    unsubscribe()
    model.replace_all([], [])
    assert len(seen) == 5


def test_a_container_event_brings_its_unknown_pod_along() -> None:
    model = NodeModel()
    model.container_event(EventKind.CONTAINER_START, pod(9), ctr(1, 9))
    assert model.pods["pod0009"].name == "pod-9"


def test_failing_subscriber_is_logged_and_others_still_called(caplog) -> None:
    model = NodeModel()
    calls = []

    def broken(event) -> None:
        raise ValueError("ui bug")

    model.subscribe(broken)
    model.subscribe(calls.append)
    with caplog.at_level(logging.ERROR):
        model.replace_all([pod(1)], [])
    assert [e.kind for e in calls] == [EventKind.SYNC] and "ui bug" in caplog.text
    model.disconnected()
    assert not model.connected and "pod0001" in model.pods
