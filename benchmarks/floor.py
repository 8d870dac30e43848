"""The floor as a process: asyncssh alone connects to every host and makes one Engine API
call on each (GET /containers/json over the host's Docker socket), at most FORKS at once.

    python benchmarks/floor.py HOSTS.json [--forks 50]

HOSTS.json is a list of {"address", "port", "user", "key", "known_hosts"} (scale.py writes
it from the lab's inventory). Nothing of fleet is imported: this is what any tool that reads
every host must at least spend, interpreter start-up included. Prints hosts answered and
containers seen; exits 1 if a host did not answer.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

import asyncssh

REQUEST = b"GET /v1.41/containers/json?all=1 HTTP/1.1\r\nHost: docker\r\nConnection: close\r\n\r\n"


async def one(host: dict[str, object], limit: asyncio.Semaphore) -> int:
    async with limit, asyncssh.connect(
            str(host["address"]), port=int(str(host["port"])), username=str(host["user"]),
            client_keys=[str(host["key"])], known_hosts=str(host["known_hosts"]),
            config=None) as connection:
        reader, writer = await connection.open_unix_connection("/var/run/docker.sock")
        writer.write(REQUEST)
        data = await reader.read()
        writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    if b" 200 " not in head.split(b"\r\n", 1)[0]:
        raise RuntimeError(head.split(b"\r\n", 1)[0].decode(errors="replace"))
    if b"chunked" in head.lower():  # a chunked body: the JSON sits between chunk sizes
        body = b"".join(body.split(b"\r\n")[1::2])
    return len(json.loads(body))


async def main(hosts: list[dict[str, object]], forks: int) -> int:
    limit = asyncio.Semaphore(forks)
    results = await asyncio.gather(*(one(h, limit) for h in hosts), return_exceptions=True)
    failed = [r for r in results if isinstance(r, BaseException)]
    for error in failed[:5]:
        print(f"  {type(error).__name__}: {error}", file=sys.stderr)
    seen = sum(r for r in results if isinstance(r, int))
    print(f"floor: {len(hosts) - len(failed)}/{len(hosts)} hosts, {seen} containers")
    return 1 if failed else 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("hosts")
    parser.add_argument("--forks", type=int, default=50)
    args = parser.parse_args()
    with open(args.hosts) as file:
        raise SystemExit(asyncio.run(main(json.load(file), args.forks)))
