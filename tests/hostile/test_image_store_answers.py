"""A CRI image service that answers too much or never: the look-up of an image's other references
stays bounded (MAX_ANSWER_BYTES, LOOKUP_TIMEOUT_S) and says so once; the start keeps its one name."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from concurrent import futures
from pathlib import Path

import grpc
import pytest

from nydus_top.cri import cri_image_pb2 as pb
from nydus_top.cri.image_store import IMAGE_STATUS, MAX_ANSWER_BYTES, ImageStore

Answer = Callable[[pb.ImageStatusRequest], pb.ImageStatusResponse]


@pytest.fixture
def image_service(tmp_path: Path) -> Iterator[Callable[[Answer], Path]]:
    """Serve ImageStatus on a unix socket with a given answer; returns the socket."""
    servers: list[grpc.Server] = []

    def serve(answer: Answer) -> Path:
        socket = tmp_path / f"cri{len(servers)}.sock"
        handler = grpc.method_handlers_generic_handler("runtime.v1.ImageService", {
            IMAGE_STATUS.rsplit("/", 1)[1]: grpc.unary_unary_rpc_method_handler(
                lambda request, context: answer(request),
                request_deserializer=pb.ImageStatusRequest.FromString,
                response_serializer=pb.ImageStatusResponse.SerializeToString)})
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=2), handlers=[handler])
        server.add_insecure_port(f"unix:{socket}")
        server.start()
        servers.append(server)
        return socket

    yield serve
    for server in servers:
        server.stop(None)


def _tags(total: int) -> list[str]:
    """Tags of about *total* bytes on the wire."""
    tag = "registry.local/team/app:" + "v" * 1000
    return [f"{tag}{n}" for n in range(total // (len(tag) + 8))]


def test_an_answer_at_the_limit_is_read_and_one_past_it_is_refused_with_one_warning(
        image_service, caplog: pytest.LogCaptureFixture) -> None:
    fits = _tags(MAX_ANSWER_BYTES - 16 * 1024)
    too_many = _tags(MAX_ANSWER_BYTES + 16 * 1024)
    at_limit = ImageStore(image_service(lambda r: pb.ImageStatusResponse(image=pb.Image(id="sha256:1",
                                                                                        repo_tags=fits))))
    past = ImageStore(image_service(lambda r: pb.ImageStatusResponse(image=pb.Image(repo_tags=too_many))))
    try:
        assert at_limit.references("app:1") == (*fits, "sha256:1")
        with caplog.at_level(logging.DEBUG, logger="nydus_top.cri.image_store"):
            assert past.references("app:1") == ()
            assert past.references("app:1") == ()
    finally:
        at_limit.close()
        past.close()
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and len(caplog.records) == 2  # the second failure at debug
    assert "RESOURCE_EXHAUSTED" in warnings[0].getMessage()
    assert "([convert] containerd_address) for the other references of image app:1" in warnings[0].getMessage()


def test_a_service_that_never_answers_costs_one_timeout(image_service, caplog: pytest.LogCaptureFixture) -> None:
    release = threading.Event()

    def never(request: pb.ImageStatusRequest) -> pb.ImageStatusResponse:
        release.wait()
        return pb.ImageStatusResponse()

    store = ImageStore(image_service(never), timeout=0.2)
    try:
        assert store.references("app:1") == ()
    finally:
        release.set()
        store.close()
    assert "DEADLINE_EXCEEDED" in caplog.text


def test_an_unknown_image_has_no_other_references(image_service) -> None:
    store = ImageStore(image_service(lambda r: pb.ImageStatusResponse()))  # CRI's answer: no image
    try:
        assert store.references("app:1") == ()
    finally:
        store.close()
