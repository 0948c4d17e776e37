"""PluginSession against a scripted runtime peer over a real UNIX socket."""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time
from pathlib import Path

import pytest

from nydus_top.model.node import ContainerState, EventKind, NodeModel, PodState
from nydus_top.nri import mux, ttrpc
from nydus_top.nri import nri_api_pb2 as api
from nydus_top.nri.session import HOOK_BUDGET, PluginSession, SessionThread, event_mask
from testkit.runtime_peer import RuntimePeer, container_msg, pod_msg

EXPECTED_MASK = sum(1 << (e - 1) for e in (1, 2, 3, 6, 10, 11))


def run(coro, timeout: float = 30.0):
    return asyncio.run(asyncio.wait_for(coro, timeout))


class Harness:
    """A session serving ``peer`` in a background task, with the model's events recorded."""

    def __init__(self, tmp_path: Path, **kw) -> None:
        self.path = tmp_path / "nri.sock"
        self.model = NodeModel()
        self.events = []
        self.model.subscribe(self.events.append)
        self.session = PluginSession(self.model, str(self.path), backoff=(0.02, 0.1), **kw)

    async def __aenter__(self):
        self.peer = await RuntimePeer(self.path).__aenter__()
        self.task = asyncio.ensure_future(self.session.run_forever())
        return self

    async def __aexit__(self, *exc):
        self.session.stop()
        await asyncio.wait_for(self.task, 5)
        await self.peer.__aexit__()

    def kinds(self) -> list[EventKind]:
        return [e.kind for e in self.events]


def test_register_configure_and_sync_fill_the_model(tmp_path: Path) -> None:
    async def main():
        async with Harness(tmp_path, idx="07") as h:
            conn = await h.peer.accept()
            reg = await conn.accept_registration()
            assert (reg.plugin_name, reg.plugin_idx) == ("nydus-top", "07")
            conf = await conn.call("Configure", api.ConfigureRequest(runtime_name="peer").SerializeToString())
            assert api.ConfigureResponse.FromString(conf.payload).events == EXPECTED_MASK == event_mask(
                (api.RUN_POD_SANDBOX, api.STOP_POD_SANDBOX, api.REMOVE_POD_SANDBOX, api.START_CONTAINER,
                 api.STOP_CONTAINER, api.REMOVE_CONTAINER))
            sync = await conn.call("Synchronize", api.SynchronizeRequest(
                pods=[pod_msg(1), pod_msg(2, pid=0)], containers=[container_msg(1)]).SerializeToString())
            assert (sync.code, sync.payload) == (0, b"")
            assert h.kinds() == [EventKind.SYNC] and h.model.connected
            pods, ctrs = h.model.snapshot()
            assert pods["pod0001"].name == "pod-1" and pods["pod0001"].state is PodState.READY
            assert pods["pod0002"].state is PodState.NOTREADY
            c = ctrs["ctr0001"]
            assert (c.pod_id, c.name, c.image, c.state, c.pid, c.args) == (
                "pod0001", "c-1", "registry/app:1", ContainerState.RUNNING, 2001, ("/bin/app", "--n=1"))

    run(main())


def test_configure_is_served_before_the_registration_reply(tmp_path: Path) -> None:
    async def main():
        async with Harness(tmp_path) as h:
            conn = await h.peer.accept()
            reg = await conn.receive(2)  # RegisterPlugin, left unanswered for now
            conf = await conn.call("Configure", api.ConfigureRequest().SerializeToString())
            assert conf.code == 0 and api.ConfigureResponse.FromString(conf.payload).events == EXPECTED_MASK
            conn.send_raw(ttrpc_response(2, reg.stream_id))
            assert (await conn.call("Synchronize", b"")).code == 0
            assert h.kinds() == [EventKind.SYNC]

    run(main())


def test_configure_hooks_get_the_text_before_the_first_event(tmp_path: Path, caplog) -> None:
    seen = []

    def configured(config, runtime_name, runtime_version):
        seen.append(("configure", config, runtime_name, runtime_version))

    def broken(config, runtime_name, runtime_version):
        raise ValueError("bad key")

    async def start(pod, container, deadline):
        seen.append(("start", container.id))

    async def main():
        async with Harness(tmp_path) as h:
            h.session.add_configure_hook(broken)
            remove = h.session.add_configure_hook(configured)
            h.session.add_start_hook(start)
            conn = await h.peer.accept()
            await conn.accept_registration()
            text = 'persist_dir = "/results"\ntimeout = 5\n'
            req = api.ConfigureRequest(config=text, runtime_name="containerd", runtime_version="v1.7.24")
            # As containerd does for a plugin it launched: Configure, then events at once, no sync.
            conf = conn.send_call("Configure", req.SerializeToString())
            conn.send_call("StateChange", start_payload(1))
            answers = [await conn.receive(1), await conn.receive(1)]
            assert [a.stream_id for a in answers] == [conf, conf + 2]
            first = ttrpc.decode_response(answers[0].data)
            assert first.status.code == 0  # a failing hook never fails Configure
            assert api.ConfigureResponse.FromString(first.payload).events == EXPECTED_MASK
            assert seen == [("configure", text, "containerd", "v1.7.24"), ("start", "ctr0001")]
            errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
            assert len(errors) == 1 and "configure hook" in errors[0] and "ValueError: bad key" in errors[0]
            remove()
            conn.close()
            conn2 = await h.peer.accept()  # reconnected: Configure again, without the removed hook
            await conn2.handshake()
            assert [s[0] for s in seen] == ["configure", "start"]

    run(main())


def ttrpc_response(conn_id: int, stream: int, body: bytes = b"", code: int = 0, message: str = "") -> bytes:
    response = ttrpc.encode_response(body, code, message)
    return mux.encode_frames(conn_id, ttrpc.encode_message(stream, ttrpc.RESPONSE, response))


def test_chunked_synchronize_is_acknowledged_with_more_and_applied_once(tmp_path: Path) -> None:
    async def main():
        async with Harness(tmp_path) as h:
            conn = await h.peer.accept()
            await conn.accept_registration()
            await conn.call("Configure", b"")
            for chunk in range(3):
                req = api.SynchronizeRequest(pods=[pod_msg(chunk)], containers=[container_msg(chunk)], more=True)
                ans = await conn.call("Synchronize", req.SerializeToString())
                assert ans.code == 0 and api.SynchronizeResponse.FromString(ans.payload).more is True
                assert ans.payload == api.SynchronizeResponse(more=True).SerializeToString()
                assert h.kinds() == []
            request = api.SynchronizeRequest(containers=[container_msg(3, pod=0)])
            last = await conn.call("Synchronize", request.SerializeToString())
            assert (last.code, last.payload) == (0, b"")
            assert h.kinds() == [EventKind.SYNC]
            assert sorted(h.model.pods) == ["pod0000", "pod0001", "pod0002"]
            assert sorted(h.model.containers) == ["ctr0000", "ctr0001", "ctr0002", "ctr0003"]

    run(main())


def state_change(event: int, pod: api.PodSandbox, container: api.Container | None = None) -> bytes:
    return api.StateChangeEvent(event=event, pod=pod, container=container).SerializeToString()


def test_lifecycle_events_update_the_model_in_order(tmp_path: Path) -> None:
    async def main():
        async with Harness(tmp_path) as h:
            conn = await h.peer.accept()
            await conn.handshake()
            pod, ctr = pod_msg(5), container_msg(5, state=api.CONTAINER_CREATED)
            for payload in (state_change(api.RUN_POD_SANDBOX, pod), state_change(api.START_CONTAINER, pod, ctr)):
                assert (await conn.call("StateChange", payload)) .payload == b""
            assert h.model.containers["ctr0005"].state is ContainerState.RUNNING
            assert h.model.containers["ctr0005"].started_at == pytest.approx(time.time(), abs=5)
            stop = api.ContainerRequest(pod=pod, container=container_msg(5)).SerializeToString()
            assert (await conn.call("StopContainer", stop)).code == 0
            assert h.model.containers["ctr0005"].state is ContainerState.STOPPED
            await conn.call("StateChange", state_change(api.REMOVE_CONTAINER, pod, ctr))
            assert "ctr0005" not in h.model.containers
            await conn.call("StateChange", state_change(api.STOP_POD_SANDBOX, pod_msg(5, pid=0)))
            assert h.model.pods["pod0005"].state is PodState.NOTREADY
            await conn.call("StateChange", state_change(api.REMOVE_POD_SANDBOX, pod))
            assert h.model.pods == {}
            assert h.kinds() == [EventKind.SYNC, EventKind.POD_RUN, EventKind.CONTAINER_START, EventKind.CONTAINER_STOP,
                                 EventKind.CONTAINER_REMOVE, EventKind.POD_STOP, EventKind.POD_REMOVE]
            start = h.events[2]
            assert start.pod.name == "pod-5" and start.container.image == "registry/app:5"

    run(main())


def test_other_methods_get_empty_answers_and_unknown_ones_unimplemented(tmp_path: Path) -> None:
    async def main():
        async with Harness(tmp_path) as h:
            conn = await h.peer.accept()
            await conn.handshake()
            req = api.ContainerRequest(pod=pod_msg(1), container=container_msg(1)).SerializeToString()
            for method in ("CreateContainer", "UpdateContainer", "Shutdown"):
                ans = await conn.call(method, req if method != "Shutdown" else b"")
                assert (ans.code, ans.payload) == (0, b""), method
            ans = await conn.call("RunPodSandbox", b"")
            assert (ans.code, ans.message) == (ttrpc.UNIMPLEMENTED, "method RunPodSandbox")
            ans = await conn.call("Hello", b"", service="example.Other")
            assert (ans.code, ans.message) == (ttrpc.UNIMPLEMENTED, "service example.Other")
            assert h.kinds() == [EventKind.SYNC]  # none of these touched the model

    run(main())


def start_payload(i: int = 1) -> bytes:
    return state_change(api.START_CONTAINER, pod_msg(i), container_msg(i, state=api.CONTAINER_CREATED))


def test_start_hook_runs_before_the_reply_with_the_container_and_a_deadline(tmp_path: Path) -> None:
    seen = []

    async def hook(pod, container, deadline):
        seen.append((pod.name, container.name, container.state, deadline, time.monotonic()))
        await asyncio.sleep(0.2)  # arming takes a while; the runtime must wait for it
        seen.append("armed")

    async def main():
        async with Harness(tmp_path) as h:
            h.session.add_start_hook(hook)
            conn = await h.peer.accept()
            await conn.handshake()
            t0 = time.monotonic()
            ans = await conn.call("StateChange", start_payload())
            took = time.monotonic() - t0
            assert (ans.code, ans.payload) == (0, b"")
            assert seen[-1] == "armed" and took >= 0.2
            name, cname, state, deadline, entered = seen[0]
            assert (name, cname, state) == ("pod-1", "c-1", ContainerState.RUNNING)
            # The default budget (well under the 2 s request timeout) from the request's arrival,
            # which lies between our sending it and the hook's start: bounds no load can break.
            assert t0 + HOOK_BUDGET <= deadline <= entered + HOOK_BUDGET and HOOK_BUDGET <= 1.0

    run(main())


@pytest.mark.parametrize(("timeout_nano", "budget"), [(2_000_000_000, 0.3), (400_000_000, 5.0)])
def test_a_slow_hook_is_cut_at_its_budget_and_never_fails_the_start(tmp_path: Path, timeout_nano: int,
                                                                   budget: float, caplog) -> None:
    state = {}

    async def slow(pod, container, deadline):
        state["deadline"], state["entered"] = deadline, time.monotonic()
        try:
            await asyncio.Event().wait()  # never ends by itself: only the cut answers the runtime
        except asyncio.CancelledError:
            state["cancelled"] = True
            raise

    async def main():
        async with Harness(tmp_path, hook_budget=budget) as h:
            h.session.add_start_hook(slow)
            conn = await h.peer.accept()
            await conn.handshake()
            t0 = time.monotonic()
            ans = await conn.call("StateChange", start_payload(), timeout_nano=timeout_nano)
            took = time.monotonic() - t0
            limit = min(budget, timeout_nano / 2e9)
            assert (ans.code, ans.payload) == (0, b"")
            assert took >= limit and state["cancelled"]
            # cut at that limit from the request's arrival (between t0 and the hook's start)
            assert t0 + limit <= state["deadline"] <= state["entered"] + limit
            assert "overran" in caplog.text

    run(main())


def test_failing_and_removed_hooks(tmp_path: Path, caplog) -> None:
    calls = []

    async def broken(pod, container, deadline):
        raise RuntimeError("tracer could not arm")

    async def counting(pod, container, deadline):
        calls.append(container.id)

    def not_async(pod, container, deadline):
        return None  # a plain function: calling it gives nothing to await

    async def main():
        async with Harness(tmp_path) as h:
            h.session.add_start_hook(broken)
            h.session.add_start_hook(not_async)  # type: ignore[arg-type]
            remove = h.session.add_start_hook(counting)
            conn = await h.peer.accept()
            await conn.handshake()
            assert (await conn.call("StateChange", start_payload(1))).code == 0
            remove()
            assert (await conn.call("StateChange", start_payload(2))).code == 0
            assert calls == ["ctr0001"]
            assert "tracer could not arm" in caplog.text and "not_async failed" in caplog.text

    run(main())


def test_a_hook_running_when_the_connection_drops_is_cancelled(tmp_path: Path) -> None:
    async def main():
        started, cancelled = asyncio.Event(), asyncio.Event()

        async def arming(pod, container, deadline):
            started.set()
            try:
                await asyncio.sleep(30)
            except asyncio.CancelledError:
                cancelled.set()
                raise

        async with Harness(tmp_path, hook_budget=20.0) as h:
            h.session.add_start_hook(arming)
            conn = await h.peer.accept()
            await conn.handshake()
            conn.send_call("StateChange", start_payload(), timeout_nano=60 * 10**9)
            await asyncio.wait_for(started.wait(), 5)
            conn.close()  # the runtime goes away while the hook arms
            await asyncio.wait_for(cancelled.wait(), 5)
            await h.peer.accept()  # and the session reconnects

    run(main())


@pytest.mark.parametrize("garbage", [
    b"\x00\x00\x00\x09\x00\x00\x00\x00",  # frame for connection 9
    b"\x00\x00\x00\x01\x00\x00\x00\x0c" + b"\x00\x00\x00\x02\x00\x00\x00\x01\x01\x00\xff\xff",  # bad Request
    ttrpc_response(1, 1),  # a response where only requests may come
])
def test_malformed_frames_log_one_line_drop_and_resync(tmp_path: Path, garbage: bytes, caplog) -> None:
    async def main():
        async with Harness(tmp_path) as h:
            conn = await h.peer.accept()
            await conn.handshake(pods=[pod_msg(1)])
            caplog.clear()
            conn.send_raw(garbage)
            assert await conn.closed()
            conn2 = await h.peer.accept()
            await conn2.handshake(pods=[pod_msg(2)])
            assert h.kinds() == [EventKind.SYNC, EventKind.DISCONNECTED, EventKind.SYNC]
            assert list(h.model.pods) == ["pod0002"]
            errors = [r for r in caplog.records if r.levelno >= logging.WARNING]
            assert len(errors) == 1 and "protocol error" in errors[0].getMessage()

    with caplog.at_level(logging.INFO):
        run(main())


def test_socket_loss_reconnects_with_one_log_line_and_resyncs(tmp_path: Path, caplog) -> None:
    async def main():
        async with Harness(tmp_path) as h:
            run_once = h.session.run_once
            attempted = asyncio.Queue()
            disconnected = asyncio.Event()
            h.model.subscribe(lambda ev: ev.kind is EventKind.DISCONNECTED and disconnected.set())

            async def counted():
                attempted.put_nowait(None)
                return await run_once()

            h.session.run_once = counted
            conn = await h.peer.accept()
            await conn.handshake(pods=[pod_msg(1)])
            caplog.clear()
            await h.peer.close()  # containerd dies: connection and socket gone
            conn.close()
            await asyncio.wait_for(disconnected.wait(), 5)
            assert not h.model.connected and "pod0001" in h.model.pods  # stale until the resync
            while not attempted.empty():
                attempted.get_nowait()
            for _ in range(3):  # several reconnect attempts fail meanwhile
                await asyncio.wait_for(attempted.get(), 5)
            await h.peer.__aenter__()  # containerd is back
            conn2 = await h.peer.accept()
            await conn2.handshake(pods=[pod_msg(2)])
            assert list(h.model.pods) == ["pod0002"] and h.model.connected
            warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
            assert len(warnings) == 2, warnings  # the closed connection, then one for the outage
            assert "closed the connection" in warnings[0] and "cannot use" in warnings[1]

    run(main())


def test_inherited_socket_fd_is_used_and_not_reopened(tmp_path: Path, monkeypatch) -> None:
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    monkeypatch.setenv("NRI_PLUGIN_SOCKET", str(ours.detach()))

    async def main():
        model = NodeModel()
        session = PluginSession(model)
        assert session.target.startswith("fd ")
        task = asyncio.ensure_future(session.run_forever())
        from testkit.runtime_peer import PeerConn

        reader, writer = await asyncio.open_unix_connection(sock=theirs)
        conn = PeerConn(reader, writer)
        await conn.handshake(pods=[pod_msg(3)])
        assert list(model.pods) == ["pod0003"]
        conn.close()
        await asyncio.wait_for(task, 5)  # returns: an inherited socket cannot be reopened

    run(main())


def test_session_thread_serves_beside_another_loop(tmp_path: Path) -> None:
    path = tmp_path / "nri.sock"
    model = NodeModel()
    synced = []
    sync_seen = threading.Event()
    model.subscribe(lambda ev: (synced.append(ev.kind), sync_seen.set()))

    async def main():
        async with RuntimePeer(path) as peer:
            thread = SessionThread(PluginSession(model, str(path)))
            thread.start()
            conn = await peer.accept()
            await conn.handshake(containers=[container_msg(4)])
            assert await asyncio.to_thread(sync_seen.wait, 5)  # the model changes after the answer
            assert list(model.containers) == ["ctr0004"]  # read from this (another) thread
            await asyncio.to_thread(thread.stop)
            assert not thread._thread.is_alive()
            assert await conn.closed()

    run(main())
    assert synced == [EventKind.SYNC, EventKind.DISCONNECTED]


def test_invalid_name_index_or_socket_fd_is_refused_up_front(monkeypatch) -> None:
    with pytest.raises(ValueError, match="two digits"):
        PluginSession(NodeModel(), "/x", idx="7")
    with pytest.raises(ValueError, match="plugin name"):
        PluginSession(NodeModel(), "/x", name="no spaces")
    monkeypatch.setenv("NRI_PLUGIN_SOCKET", "three")
    with pytest.raises(ValueError, match=r"^\$NRI_PLUGIN_SOCKET must be a file descriptor number, got 'three'$"):
        PluginSession(NodeModel())
    assert PluginSession(NodeModel(), "/x").target == "/x"  # an explicit socket wins over the variable


def test_answers_go_out_before_a_blocked_subscriber_runs(tmp_path: Path) -> None:
    """A subscriber that blocks (a stalled UI or pipe) never holds containerd's calls."""
    path = tmp_path / "nri.sock"
    model = NodeModel()
    entered, release, done = threading.Event(), threading.Event(), threading.Event()
    seen: list[EventKind] = []

    def blocking(event) -> None:
        entered.set()
        release.wait(10)
        seen.append(event.kind)
        done.set()

    model.subscribe(blocking)
    pod, ctr = pod_msg(1), container_msg(1)
    calls = [
        ("Synchronize", api.SynchronizeRequest(pods=[pod]).SerializeToString(), EventKind.SYNC),
        ("StateChange", state_change(api.START_CONTAINER, pod, ctr), EventKind.CONTAINER_START),
        ("StopContainer", api.ContainerRequest(pod=pod, container=ctr).SerializeToString(), EventKind.CONTAINER_STOP),
        ("StateChange", state_change(api.REMOVE_POD_SANDBOX, pod), EventKind.POD_REMOVE),
    ]

    async def main():
        async with RuntimePeer(path) as peer:
            thread = SessionThread(PluginSession(model, str(path)))
            thread.start()
            try:
                conn = await peer.accept()
                await conn.accept_registration()
                await conn.call("Configure", b"")
                for method, payload, kind in calls:
                    for ev in (entered, release, done):
                        ev.clear()
                    ans = await conn.call(method, payload, timeout=2.0)  # within containerd's timeout
                    assert (ans.code, ans.payload) == (0, b""), method
                    assert await asyncio.to_thread(entered.wait, 5)  # the subscriber is still held ...
                    assert kind not in seen
                    release.set()  # ... and sees the change once let go
                    assert await asyncio.to_thread(done.wait, 5)
                    assert seen[-1] is kind
            finally:
                release.set()
                await asyncio.to_thread(thread.stop)

    run(main())


def test_registration_refused_or_unanswered_is_one_line_then_retried(tmp_path: Path, caplog, monkeypatch) -> None:
    monkeypatch.setattr("nydus_top.nri.session.REGISTRATION_TIMEOUT", 0.3)

    async def main():
        async with Harness(tmp_path) as h:
            conn = await h.peer.accept()
            reg = await conn.receive(2)
            conn.send_raw(ttrpc_response(2, reg.stream_id, code=6, message="plugin 90-nydus-top already exists"))
            assert await conn.closed()
            for _ in range(2):  # refused once more: the same line is not logged again
                conn = await h.peer.accept()
                reg = await conn.receive(2)
                conn.send_raw(ttrpc_response(2, reg.stream_id, code=6, message="plugin 90-nydus-top already exists"))
                assert await conn.closed()
            conn = await h.peer.accept()
            await conn.receive(2)  # never answered: the session gives up on this connection
            assert await conn.closed()
            conn = await h.peer.accept()
            await conn.handshake(pods=[pod_msg(1)])
            assert list(h.model.pods) == ["pod0001"]

    with caplog.at_level(logging.INFO):
        run(main())
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 3, warnings  # one line per distinct cause, not one per attempt
    assert warnings[0].endswith("RegisterPlugin refused: plugin 90-nydus-top already exists; retrying")
    assert warnings[1].endswith("no answer to RegisterPlugin; retrying")
    # at the end (stop): the count of the held-back repeats
    assert warnings[2].endswith(
        "RegisterPlugin refused: plugin 90-nydus-top already exists; retrying (repeated 2 times)")


def test_stop_while_registering_ends_quietly(tmp_path: Path, caplog) -> None:
    async def main():
        async with Harness(tmp_path) as h:
            conn = await h.peer.accept()
            await conn.receive(2)  # RegisterPlugin, never answered
            h.session.stop()
            await asyncio.wait_for(h.task, 5)
            assert await conn.closed()

    run(main())
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []


def test_hook_deadline_counts_from_the_request_not_from_slow_subscribers(tmp_path: Path, caplog) -> None:
    ran = []

    def slow_subscriber(event) -> None:
        if event.kind is EventKind.CONTAINER_START:
            time.sleep(1.0)  # a subscriber doing 1 s of work before the hooks get their turn

    async def hook(pod, container, deadline):
        ran.append(deadline - time.monotonic())
        await asyncio.Event().wait()  # never ends by itself

    async def main():
        async with Harness(tmp_path, hook_budget=0.9) as h:
            h.model.subscribe(slow_subscriber)
            h.session.add_start_hook(hook)
            conn = await h.peer.accept()
            await conn.handshake()
            t0 = time.monotonic()
            ans = await conn.call("StateChange", start_payload())
            took = time.monotonic() - t0
            assert (ans.code, ans.payload) == (0, b"")
            assert took >= 1.0
            # not 1.0 + 0.9: the budget was spent while the subscriber ran, the hook got a deadline
            # already past (by which it was cut: it never ends by itself)
            assert ran and all(left <= 0 for left in ran)

    run(main())
    assert "overran its deadline" in caplog.text
