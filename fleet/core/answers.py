"""The Docker Engine API answers fleet reads, as typed models (pure).

Every answer is checked against its model at the boundary (fleet.docker.client) before
anything reads it: a field fleet uses that has the wrong type, or a number out of range, makes
the answer that host's error instead of a crash somewhere downstream. Strict types: Docker
sends exact JSON types, so a string where a number belongs is not "coerced", it is wrong.
Fields fleet does not read are ignored (and never built into models).

    summary = validated(ContainerSummary, item)   # raises AnswerShapeError
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from fleet.core.untrusted import describe_invalid

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1

Text = Annotated[str, Field(max_length=1024 * 1024)]
Int64 = Annotated[int, Field(ge=INT64_MIN, le=INT64_MAX)]
Port = Annotated[int, Field(ge=0, le=65535)]
ApiVersionText = Annotated[str, Field(pattern=r"^[0-9]{1,3}\.[0-9]{1,3}$")]
# OCI digest grammar (algorithm ":" encoded): a digest resolved on one host pins every host.
DIGEST_PATTERN = r"^[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]{32,256}$"
Digest = Annotated[str, Field(pattern=DIGEST_PATTERN)]
HostPortText = Annotated[str, Field(pattern=r"^[0-9]{0,5}$")]
ContainerId = Annotated[str, Field(min_length=1, max_length=256)]


class Answer(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore", frozen=True, defer_build=True)


# -- GET /containers/json -------------------------------------------------------------------


class PortSummary(Answer):
    IP: Text | None = None
    PrivatePort: Port | None = None
    PublicPort: Port | None = None
    Type: Text | None = None


class ContainerSummary(Answer):
    Id: ContainerId
    ImageID: Text | None = None
    Names: list[Text] | None = None
    State: Text | None = None
    Labels: dict[Text, Text] | None = None
    Ports: list[PortSummary] | None = None


# -- GET /containers/{id}/json --------------------------------------------------------------


class HealthLogEntry(Answer):
    ExitCode: Int64 | None = None
    Output: Text | None = None


class HealthInfo(Answer):
    Status: Text | None = None
    Log: list[HealthLogEntry] | None = None


class ContainerState(Answer):
    Status: Text | None = None
    StartedAt: Text | None = None
    ExitCode: Int64 | None = None
    Error: Text | None = None
    Health: HealthInfo | None = None


class PortBinding(Answer):
    HostIp: Text | None = None
    HostPort: HostPortText | None = None


class RestartPolicyInfo(Answer):
    Name: Text | None = None
    MaximumRetryCount: Int64 | None = None


class HostConfigInfo(Answer):
    PortBindings: dict[Text, list[PortBinding] | None] | None = None
    NanoCpus: Int64 | None = None
    Memory: Int64 | None = None
    MemorySwap: Int64 | None = None
    MemoryReservation: Int64 | None = None
    PidsLimit: Int64 | None = None
    RestartPolicy: RestartPolicyInfo | None = None


class ContainerConfig(Answer):
    Labels: dict[Text, Text] | None = None
    Env: list[Text] | None = None
    Image: Text | None = None
    Tty: bool | None = None


class ContainerInspect(Answer):
    Id: ContainerId
    Name: Text | None = None
    Created: Text | None = None
    RestartCount: Int64 | None = None
    State: ContainerState | None = None
    Config: ContainerConfig | None = None
    HostConfig: HostConfigInfo | None = None


# -- the rest -------------------------------------------------------------------------------


class ImageSummary(Answer):
    Id: Digest | None = None
    RepoDigests: list[Text] | None = None
    RepoTags: list[Text] | None = None


class RootFSInfo(Answer):
    Layers: list[Digest] | None = Field(default=None, max_length=4096)


class ImageInspect(Answer):
    """GET /images/{name}/json: the image's ID and the diff IDs of its layers."""

    Id: Digest
    RepoTags: list[Text] | None = None
    RootFS: RootFSInfo | None = None


class IpamPoolInfo(Answer):
    Subnet: Text | None = None
    IPRange: Text | None = None
    Gateway: Text | None = None
    AuxiliaryAddresses: dict[Text, Text] | None = None


class IpamInfo(Answer):
    Driver: Text | None = None
    Options: dict[Text, Text] | None = None
    Config: Annotated[list[IpamPoolInfo], Field(max_length=256)] | None = None


class NetworkSummary(Answer):
    """GET /networks lists every network with its settings (no per-network inspect needed)."""

    Name: Text = ""
    Driver: Text | None = None
    Internal: bool | None = None
    Attachable: bool | None = None
    EnableIPv6: bool | None = None
    Options: dict[Text, Text] | None = None
    Labels: dict[Text, Text] | None = None
    IPAM: IpamInfo | None = None


class VolumeSummary(Answer):
    """A volume, as GET /volumes lists it and POST /volumes/create answers."""

    Name: Text
    Driver: Text | None = None
    Options: dict[Text, Text] | None = None
    Labels: dict[Text, Text] | None = None


class VolumeList(Answer):
    Volumes: list[VolumeSummary] | None = None
    Warnings: list[Text] | None = None


class VersionAnswer(Answer):
    ApiVersion: ApiVersionText | None = None
    MinAPIVersion: ApiVersionText | None = None


class DescriptorInfo(Answer):
    digest: Digest | None = None


class DistributionAnswer(Answer):
    Descriptor: DescriptorInfo | None = None


class CreatedAnswer(Answer):
    """POST /containers/create (no Id is the executor's to report) and POST /networks/create."""

    Id: ContainerId | None = None
    Warnings: list[Text] | None = None


class ExecCreated(Answer):
    """POST /containers/{id}/exec."""

    Id: ContainerId


class ExecInspect(Answer):
    """GET /exec/{id}/json: how the command ended (no ExitCode while it runs)."""

    ExitCode: Int64 | None = None
    Running: bool | None = None


class WarningsAnswer(Answer):
    """POST /containers/{id}/update."""

    Warnings: list[Text] | None = None


class ErrorDetail(Answer):
    message: Text | None = None


class PullEvent(Answer):
    """One line of a pull's progress stream."""

    status: Text | None = None
    error: Text | None = None
    errorDetail: ErrorDetail | None = None


_Digest = Digest  # PushAux's field has the type's name


class PushAux(Answer):
    Digest: _Digest | None = None


class PushEvent(Answer):
    """One line of `POST /images/{name}/push`'s progress stream."""

    status: Text | None = None
    aux: PushAux | None = None
    error: Text | None = None
    errorDetail: ErrorDetail | None = None


class LoadEvent(Answer):
    """One line of `POST /images/load`'s answer."""

    stream: Text | None = None
    error: Text | None = None
    errorDetail: ErrorDetail | None = None


# Built on first use (defer_build), as the models are: a command pays only for the answers it reads.
_ON_FIRST_USE = ConfigDict(defer_build=True)
CONTAINER_LIST: TypeAdapter[list[ContainerSummary]] = TypeAdapter(list[ContainerSummary],
                                                                  config=_ON_FIRST_USE)
IMAGE_LIST: TypeAdapter[list[ImageSummary]] = TypeAdapter(list[ImageSummary],
                                                          config=_ON_FIRST_USE)
NETWORK_LIST: TypeAdapter[list[NetworkSummary]] = TypeAdapter(list[NetworkSummary],
                                                              config=_ON_FIRST_USE)
API_VERSION: TypeAdapter[str] = TypeAdapter(ApiVersionText, config=_ON_FIRST_USE)


class AnswerShapeError(ValueError):
    """A Docker answer of the wrong shape: says where and what ("[0].Labels: expected an
    object, got a list")."""


def validated(model: type[BaseModel] | TypeAdapter[Any], value: Any) -> Any:
    """`value` as the model, or AnswerShapeError."""
    try:
        if isinstance(model, TypeAdapter):
            return model.validate_python(value)
        return model.model_validate(value)
    except ValidationError as exc:
        raise AnswerShapeError(describe_invalid(exc)) from None
