"""Running `secret_commands:` on the controller (fleet.config.secret_commands declares them:
the config layer does no process I/O): no shell, stdin closed, the controller's environment,
output and time bounded."""

from __future__ import annotations

import contextlib
import os
import selectors
import signal
import subprocess
import time

from fleet.config.secret_commands import SecretCommand, SecretCommandFailed
from fleet.text import one_line

MAX_OUTPUT = 1024 * 1024  # a secret's value, as printed
MAX_ERROR_SHOWN = 300  # characters of its error output quoted in the message


def _kill(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)  # its children too (a wrapper script's)


def _read_bounded(proc: subprocess.Popen[bytes], timeout: float) -> tuple[bytes, bytes]:
    """stdout (at most MAX_OUTPUT) and the start of stderr, within `timeout`."""
    assert proc.stdout is not None and proc.stderr is not None
    out, err = bytearray(), bytearray()
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as selector:
        selector.register(proc.stdout, selectors.EVENT_READ, out)
        selector.register(proc.stderr, selectors.EVENT_READ, err)
        while selector.get_map():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise SecretCommandFailed(f"did not finish within {timeout:g}s")
            for key, _ in selector.select(remaining):
                chunk = os.read(key.fd, 65536)
                if not chunk:
                    selector.unregister(key.fileobj)
                    continue
                buffer: bytearray = key.data
                if buffer is err:
                    buffer += chunk[:max(0, 4 * MAX_ERROR_SHOWN - len(err))]
                    continue
                buffer += chunk
                if len(out) > MAX_OUTPUT:
                    raise SecretCommandFailed(f"printed more than {MAX_OUTPUT // 1024} KiB")
    try:
        proc.wait(max(0.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        raise SecretCommandFailed(f"did not finish within {timeout:g}s") from None
    return bytes(out), bytes(err)


def _error_text(err: bytes) -> str:
    text = one_line(err.decode("utf-8", "replace").strip())
    return text if len(text) <= MAX_ERROR_SHOWN else text[:MAX_ERROR_SHOWN] + "…"


def run_secret_command(command: SecretCommand) -> str:
    """Run it (no shell, stdin closed, the controller's environment) and return what it
    printed, less one final newline. Raises SecretCommandFailed naming the program, its
    exit status and the start of its error output, never what it printed."""
    argv = command.spec.command
    program = one_line(argv[0])
    try:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, cwd=command.cwd,
                                start_new_session=True)
    except OSError as exc:
        raise SecretCommandFailed(f"cannot run {program}: {exc.strerror or exc}") from None
    with proc:
        try:
            out, err = _read_bounded(proc, command.spec.timeout)
        except SecretCommandFailed as exc:
            _kill(proc)
            raise SecretCommandFailed(f"{program} {exc}") from None
        finally:
            if proc.returncode is None:
                _kill(proc)
    if proc.returncode != 0:
        said = _error_text(err)
        raise SecretCommandFailed(f"{program} exited with status {proc.returncode}"
                                  + (f": {said}" if said else ""))
    if out.endswith(b"\r\n"):
        out = out[:-2]
    elif out.endswith(b"\n"):
        out = out[:-1]
    if not out:
        raise SecretCommandFailed(f"{program} printed nothing")
    return out.decode("utf-8", "surrogateescape")
