"""NRI protobuf messages to node-model records (Pod, Container)."""

from __future__ import annotations

from nydus_top.model.node import Container, ContainerState, Pod, PodState
from nydus_top.nri import nri_api_pb2 as api

IMAGE_ANNOTATION = "io.kubernetes.cri.image-name"
LOG_DIRECTORY_ANNOTATION = "io.kubernetes.cri.sandbox-log-directory"

_STATES = {
    api.CONTAINER_UNKNOWN: ContainerState.UNKNOWN,
    api.CONTAINER_CREATED: ContainerState.CREATED,
    api.CONTAINER_PAUSED: ContainerState.PAUSED,
    api.CONTAINER_RUNNING: ContainerState.RUNNING,
    api.CONTAINER_STOPPED: ContainerState.STOPPED,
}


def _seconds(unix_nano: int) -> float | None:
    return unix_nano / 1e9 if unix_nano else None


def pod(msg: api.PodSandbox) -> Pod:
    """NRI carries no pod state: a pod whose sandbox process is gone (pid 0) is not ready."""
    state = PodState.READY if msg.pid else PodState.NOTREADY
    return Pod(id=msg.id, name=msg.name, namespace=msg.namespace, uid=msg.uid, state=state, pid=msg.pid,
               log_directory=msg.annotations.get(LOG_DIRECTORY_ANNOTATION, ""))


def container(msg: api.Container) -> Container:
    """The image comes from NRI's own field when the runtime sends it, else from CRI's annotation."""
    image = msg.image.name or msg.annotations.get(IMAGE_ANNOTATION, "")
    return Container(
        id=msg.id,
        pod_id=msg.pod_sandbox_id,
        name=msg.name,
        image=image,
        state=_STATES.get(msg.state, ContainerState.UNKNOWN),
        pid=msg.pid,
        created_at=_seconds(msg.created_at),
        started_at=_seconds(msg.started_at),
        args=tuple(msg.args),
        finished_at=_seconds(msg.finished_at),
        exit_code=msg.exit_code if msg.finished_at else None,
    )
