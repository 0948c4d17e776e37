"""Every reference of a container's image, from containerd's CRI image service.

NRI names a container's image by one reference only: CRI's ``io.kubernetes.cri.image-name``
annotation, which containerd fills with the first of the image's references in its own order
(unless the client said which one it used), not necessarily the one the pod asked for. An image
tagged twice is one image: to know whether a start is one of ``nginx:prod``'s, its other names
are asked for here (``ImageStatus`` on containerd's socket: its tags, digests and ID).

gRPC by grpcio (HTTP/2 is not worth writing again). Lookups are bounded: one answer is at most
:data:`MAX_ANSWER_BYTES`, one call waits at most :data:`LOOKUP_TIMEOUT_S`. A failed lookup leaves
the start matched by its one name; the first failure is logged as a warning, later ones at debug.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nydus_top.cri import cri_image_pb2 as pb

if TYPE_CHECKING:
    import grpc

log = logging.getLogger(__name__)

IMAGE_STATUS = "/runtime.v1.ImageService/ImageStatus"  # CRI's method path (package runtime.v1)
MAX_ANSWER_BYTES = 1 << 20  # one ImageStatus answer at most (grpcio refuses a longer one)
LOOKUP_TIMEOUT_S = 0.5  # one ImageStatus call at most: it runs while containerd waits on our StartContainer answer


class ImageStore:
    """Asks containerd (its CRI socket, usually containerd's own) for an image's references.

    Thread-safe; the channel is opened on first use and closed by :meth:`close`."""

    def __init__(self, socket: Path, timeout: float = LOOKUP_TIMEOUT_S) -> None:
        self.socket = socket
        self.timeout = timeout
        self._lock = threading.Lock()
        self._channel: grpc.Channel | None = None
        self._call: Any = None
        self._warned = False

    def references(self, image: str) -> tuple[str, ...]:
        """*image*'s tags, then its digests, then its ID, as containerd knows them (*image* among
        them); () when containerd does not know it or cannot be asked."""
        import grpc  # noqa: PLC0415 - loaded at the first look-up: most runs never make one (its import costs memory)

        try:
            answer = self._status()(pb.ImageStatusRequest(image=pb.ImageSpec(image=image)), timeout=self.timeout)
        except grpc.RpcError as err:
            self._failed(f"cannot ask containerd at {self.socket} ([convert] containerd_address) for the other "
                         f"references of image {image}: {_why(err)}")
            return ()
        found = answer.image
        return tuple(dict.fromkeys([*found.repo_tags, *found.repo_digests, *([found.id] if found.id else [])]))

    def _status(self) -> Any:
        import grpc  # noqa: PLC0415 - see references

        with self._lock:
            if self._call is None:
                self._channel = grpc.insecure_channel(
                    f"unix:{self.socket}",
                    options=[("grpc.max_receive_message_length", MAX_ANSWER_BYTES), ("grpc.enable_retries", 0)])
                self._call = self._channel.unary_unary(IMAGE_STATUS,
                                                       request_serializer=pb.ImageStatusRequest.SerializeToString,
                                                       response_deserializer=pb.ImageStatusResponse.FromString)
            return self._call

    def _failed(self, line: str) -> None:
        with self._lock:
            first, self._warned = not self._warned, True
        (log.warning if first else log.debug)("%s", line)

    def close(self) -> None:
        with self._lock:
            channel, self._channel, self._call = self._channel, None, None
        if channel is not None:
            channel.close()


def _why(err: grpc.RpcError) -> str:
    import grpc  # noqa: PLC0415 - see ImageStore.references

    code = err.code() if isinstance(err, grpc.Call) else None
    details = err.details() if isinstance(err, grpc.Call) else ""
    name = code.name if code is not None else "error"
    return f"{name}: {details}" if details else name
