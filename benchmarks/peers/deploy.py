"""The job of benchmarks/scale.py's PLAYBOOK, for pyinfra (run.py runs it with inventory.py).

pyinfra's own docker operations express it all: image pulls, a published port, one
environment variable per host and the restart policy.
"""

from pyinfra import host
from pyinfra.operations import docker

registry = host.data.registry
web_image = f"{registry}/demo/web:v1"
worker_image = f"{registry}/demo/worker:v1"

docker.image(name="Pull the web image", image=web_image)
docker.container(
    name="Run web",
    container="web",
    image=web_image,
    ports=["8080:8080"],
    env_vars=[f"HOST_NAME={host.name}"],
    restart_policy="unless-stopped",
)

if host.data.get("cloud") == "hetzner":
    docker.image(name="Pull the worker image", image=worker_image)
    for replica in (1, 2):
        docker.container(
            name=f"Run worker-{replica}",
            container=f"worker-{replica}",
            image=worker_image,
            restart_policy="unless-stopped",
        )
