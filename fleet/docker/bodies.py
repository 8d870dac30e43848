"""Docker Engine API request bodies, built as plain values from a desired container (pure).

The executor sends what these return and decides nothing itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fleet.config.references import pinned_image
from fleet.config.secrets import SecretStore, reveal
from fleet.core import labels
from fleet.core.desired import DesiredContainer
from fleet.core.files import host_source, is_delivered, is_on_host_files
from fleet.core.host_resources import NetworkSpec, VolumeSpec, network_order
from fleet.core.labels import fleet_labels
from fleet.core.proxy import PROXY_SERVICE, REVISION_ENV
from fleet.core.resources import NS, update_body


def _healthcheck(check: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if not check:
        return None
    if check.get("disable"):
        return {"Test": ["NONE"]}
    body: dict[str, Any] = {}
    if check.get("test"):
        body["Test"] = check["test"]
    for key, field in (("Interval", "interval"), ("Timeout", "timeout"),
                       ("StartPeriod", "start_period")):
        if check.get(field) is not None:
            body[key] = int(check[field] * NS)
    if check.get("retries") is not None:
        body["Retries"] = check["retries"]
    return body


def _ports(ports: list[Mapping[str, Any]]) -> tuple[dict[str, Any], dict[str, Any]]:
    exposed: dict[str, Any] = {}
    bindings: dict[str, list[dict[str, str]]] = {}
    for port in ports:
        key = f"{port['target']}/{port['protocol']}"
        exposed[key] = {}
        bindings.setdefault(key, []).append({
            "HostIp": port.get("host_ip") or "",
            "HostPort": str(port["published"]) if port.get("published") else "",
        })
    return exposed, bindings


_RECURSIVE = {"disabled": "NonRecursive", "writable": "ReadOnlyNonRecursive",
              "readonly": "ReadOnlyForceRecursive"}


def _bind_options(bind: Mapping[str, Any]) -> dict[str, Any]:
    options: dict[str, Any] = {}
    if bind.get("propagation"):
        options["Propagation"] = bind["propagation"]
    if bind.get("recursive") in _RECURSIVE:
        options[_RECURSIVE[bind["recursive"]]] = True
    return options


def _volume_options(volume: Mapping[str, Any]) -> dict[str, Any]:
    options: dict[str, Any] = {}
    if volume.get("nocopy"):
        options["NoCopy"] = True
    if volume.get("labels"):
        options["Labels"] = dict(volume["labels"])  # for a volume this mount creates
    if volume.get("subpath"):
        options["Subpath"] = volume["subpath"]  # API 1.45: the diff blocks older hosts
    return options


def _mounts(volumes: list[Mapping[str, Any]], files_root: str | None
            ) -> tuple[list[str], list[dict[str, Any]]]:
    """Binds for bind mounts that may create their source (like `docker run -v`), else Mounts.

    Binds are the only way the Engine creates a missing bind source and relabels one for
    SELinux (z, Z): the Mounts API does neither. `consistency` is not sent (Linux ignores it).
    A delivered file (fleet.core.files) is mounted from the host's files directory
    (`files_root`) through Mounts, which never create a missing source (a directory made
    in its place would pass for the file), unless it must be relabelled."""
    binds: list[str] = []
    mounts: list[dict[str, Any]] = []
    for volume in volumes:
        bind = volume.get("bind") or {}
        source = volume.get("source")
        if volume["type"] == "bind" and is_on_host_files(source):
            if files_root is None:
                raise ValueError(f"{source} is mounted, and the host's files directory is "
                                 "not known")
            source = host_source(str(source), files_root)
        creates = bind.get("create_host_path", True) and not (
            is_delivered(volume.get("source")) and not bind.get("selinux"))
        if volume["type"] == "bind" and creates:
            modes = ["ro" if volume.get("read_only") else "rw"]
            modes += [bind[key] for key in ("propagation", "selinux") if bind.get(key)]
            binds.append(f"{source}:{volume['target']}:{','.join(modes)}")
            continue
        mount: dict[str, Any] = {"Type": volume["type"], "Target": volume["target"],
                                 "ReadOnly": bool(volume.get("read_only"))}
        if source:
            mount["Source"] = source
        if volume["type"] == "bind" and _bind_options(bind):
            mount["BindOptions"] = _bind_options(bind)
        if volume["type"] == "volume" and _volume_options(volume.get("volume") or {}):
            mount["VolumeOptions"] = _volume_options(volume.get("volume") or {})
        tmpfs = volume.get("tmpfs") or {}
        if volume["type"] == "tmpfs" and tmpfs:
            mount["TmpfsOptions"] = {k: v for k, v in (("SizeBytes", tmpfs.get("size")),
                                                       ("Mode", tmpfs.get("mode"))) if v}
        mounts.append(mount)
    return binds, mounts


def _devices(devices: list[str]) -> list[dict[str, str]]:
    result = []
    for device in devices:
        parts = device.split(":")
        host = parts[0]
        container = parts[1] if len(parts) > 1 else host
        permissions = parts[2] if len(parts) > 2 else "rwm"
        result.append({"PathOnHost": host, "PathInContainer": container,
                       "CgroupPermissions": permissions})
    return result


def endpoint_config(container: DesiredContainer, network: str) -> dict[str, Any]:
    """The container on one network: its service name (and the aliases given, and those
    other services' `links` give it) resolve to the service's containers there, as in
    Compose; its container name resolves too (Docker's)."""
    settings = container.options["networks"].get(network) or {}
    body: dict[str, Any] = {
        "Aliases": list(dict.fromkeys([container.service, *settings.get("aliases", []),
                                       *container.options.get("link_aliases", [])]))}
    addresses = {key: settings[field] for key, field in (
        ("IPv4Address", "ipv4_address"), ("IPv6Address", "ipv6_address"),
        ("LinkLocalIPs", "link_local_ips")) if settings.get(field)}
    if addresses:
        body["IPAMConfig"] = addresses
    if settings.get("driver_opts"):
        body["DriverOpts"] = dict(settings["driver_opts"])
    # API 1.44 and 1.48: the diff blocks hosts whose API is older.
    if settings.get("mac_address"):
        body["MacAddress"] = settings["mac_address"]
    if settings.get("gw_priority"):
        body["GwPriority"] = settings["gw_priority"]
    return body


def network_body(spec: NetworkSpec, project: str) -> dict[str, Any]:
    """POST /networks/create for a network fleet manages for the project (labelled with it,
    so that it is known as the project's)."""
    definition = spec.definition
    body: dict[str, Any] = {"Name": spec.name, "Driver": spec.driver, "CheckDuplicate": True,
                            "Labels": {**definition.labels, labels.PROJECT: project}}
    if definition.driver_opts:
        body["Options"] = dict(definition.driver_opts)
    for key, flag in (("Internal", definition.internal), ("Attachable", definition.attachable)):
        if flag:
            body[key] = True
    if definition.enable_ipv6 is not None:
        body["EnableIPv6"] = definition.enable_ipv6
    if definition.enable_ipv4 is False:
        body["EnableIPv4"] = False  # API 1.48: the diff blocks hosts whose API is older
    ipam = definition.ipam
    if ipam is not None:
        body["IPAM"] = {
            "Driver": ipam.driver or "default",
            "Config": [{key: value for key, value in (
                ("Subnet", pool.subnet), ("IPRange", pool.ip_range), ("Gateway", pool.gateway),
                ("AuxiliaryAddresses", dict(pool.aux_addresses))) if value}
                for pool in ipam.config],
            "Options": dict(ipam.options),
        }
    return body


def volume_body(spec: VolumeSpec, project: str) -> dict[str, Any]:
    """POST /volumes/create for a named volume of the project, labelled with it."""
    return {"Name": spec.name, "Driver": spec.driver,
            "DriverOpts": dict(spec.definition.driver_opts),
            "Labels": {**spec.definition.labels, labels.PROJECT: project}}


def create_body(container: DesiredContainer, secrets: SecretStore, image_digest: str | None,
                revision: int, files_root: str | None = None) -> dict[str, Any]:
    """The body of POST /containers/create. Secrets are revealed here and only here.
    `files_root`: the host's directory of delivered files (fleet.core.files), absolute."""
    options: dict[str, Any] = reveal(dict(container.options), secrets)
    exposed, bindings = _ports(options["ports"])
    binds, mounts = _mounts(options["volumes"], files_root)
    host_config: dict[str, Any] = {
        "PortBindings": bindings,
        "Binds": binds,
        "Mounts": mounts,
        "CapAdd": options["cap_add"],
        "CapDrop": options["cap_drop"],
        "Privileged": options["privileged"],
        "ReadonlyRootfs": options["read_only"],
        "Tmpfs": options["tmpfs"],
        "Ulimits": [{"Name": name, "Soft": u["soft"], "Hard": u["hard"]}
                    for name, u in sorted(options["ulimits"].items())],
        "Sysctls": options["sysctls"],
        "ExtraHosts": options["extra_hosts"],
        "Dns": options["dns"],
        "Devices": _devices(options["devices"]),
        **update_body(options),
    }
    if options.get("logging"):
        host_config["LogConfig"] = {"Type": options["logging"].get("driver") or "",
                                    "Config": options["logging"].get("options") or {}}
    if options.get("init") is not None:
        host_config["Init"] = options["init"]
    if options.get("shm_size"):
        host_config["ShmSize"] = options["shm_size"]
    host_config.update(_compose_host_config(options))
    networking: dict[str, Any] = {}
    if options.get("network_mode"):
        host_config["NetworkMode"] = options["network_mode"]
    elif options["networks"]:
        # API 1.41 attaches one network at create; the executor connects the others.
        first = network_order(options["networks"])[0]
        host_config["NetworkMode"] = first
        networking = {"EndpointsConfig": {first: endpoint_config(container, first)}}
    environment = dict(options["environment"])
    if container.service == PROXY_SERVICE:  # its own admin socket (fleet.core.proxy)
        environment[REVISION_ENV] = str(revision)
    body: dict[str, Any] = {
        "Image": pinned_image(options["image"], image_digest,
                              by_id=container.image_source == "controller"),
        "Env": [f"{k}={v}" for k, v in sorted(environment.items())],
        "Labels": {**options["labels"],
                   **fleet_labels(container, secrets, image_digest, revision)},
        "ExposedPorts": exposed,
        "HostConfig": host_config,
    }
    if networking:
        body["NetworkingConfig"] = networking
    optional = {
        "Cmd": options.get("command"),
        "Entrypoint": options.get("entrypoint"),
        "User": options.get("user"),
        "WorkingDir": options.get("working_dir"),
        "Hostname": options.get("hostname"),
        "StopSignal": options.get("stop_signal"),
        "StopTimeout": (int(options["stop_grace_period"])
                        if options.get("stop_grace_period") is not None else None),
        "Healthcheck": _healthcheck(options.get("healthcheck")),
        "Domainname": options.get("domainname"),
        "OpenStdin": options.get("stdin_open") or None,
        "Tty": options.get("tty") or None,
    }
    body.update({k: v for k, v in optional.items() if v is not None})
    for port in options.get("expose") or []:
        body["ExposedPorts"].setdefault(port, {})
    return body


def _device_requests(requests: list[Mapping[str, Any]]) -> list[dict[str, Any]]:
    return [{"Driver": r["driver"], "Count": r["count"], "DeviceIDs": r["device_ids"],
             "Capabilities": [r["capabilities"]], "Options": r["options"]} for r in requests]


def _blkio(config: Mapping[str, Any] | None) -> dict[str, Any]:
    if not config:
        return {}
    body: dict[str, Any] = {}
    if config.get("weight") is not None:
        body["BlkioWeight"] = config["weight"]
    if config.get("weight_device"):
        body["BlkioWeightDevice"] = [{"Path": d["path"], "Weight": d["weight"]}
                                     for d in config["weight_device"]]
    for field, key in (("device_read_bps", "BlkioDeviceReadBps"),
                       ("device_write_bps", "BlkioDeviceWriteBps"),
                       ("device_read_iops", "BlkioDeviceReadIOps"),
                       ("device_write_iops", "BlkioDeviceWriteIOps")):
        if config.get(field):
            body[key] = [{"Path": d["path"], "Rate": d["rate"]} for d in config[field]]
    return body


# Compose field -> HostConfig key, for the fields taken as they are (when set).
_AS_IS = (("security_opt", "SecurityOpt"), ("runtime", "Runtime"), ("dns_opt", "DnsOptions"),
          ("dns_search", "DnsSearch"), ("group_add", "GroupAdd"), ("cgroup", "CgroupnsMode"),
          ("cgroup_parent", "CgroupParent"), ("cpu_shares", "CpuShares"),
          ("cpu_period", "CpuPeriod"), ("cpu_quota", "CpuQuota"),
          ("cpu_rt_runtime", "CpuRealtimeRuntime"), ("cpu_rt_period", "CpuRealtimePeriod"),
          ("cpuset", "CpusetCpus"), ("device_cgroup_rules", "DeviceCgroupRules"),
          ("ipc", "IpcMode"), ("pid", "PidMode"), ("uts", "UTSMode"),
          ("userns_mode", "UsernsMode"), ("oom_kill_disable", "OomKillDisable"),
          ("oom_score_adj", "OomScoreAdj"), ("mem_swappiness", "MemorySwappiness"),
          ("storage_opt", "StorageOpt"))


def _compose_host_config(options: Mapping[str, Any]) -> dict[str, Any]:
    """HostConfig for the fields fleet took from Compose after its first ones (each only
    when set, so a container made without them is created as it was)."""
    body = {key: options[field] for field, key in _AS_IS
            if options.get(field) not in (None, [], {})}
    if options.get("volumes_from"):  # `container:NAME:MODE` (fleet.core.refs) -> NAME:MODE
        body["VolumesFrom"] = [entry.removeprefix("container:")
                               for entry in options["volumes_from"]]
    if options.get("device_requests"):
        body["DeviceRequests"] = _device_requests(options["device_requests"])
    body.update(_blkio(options.get("blkio_config")))
    return body
