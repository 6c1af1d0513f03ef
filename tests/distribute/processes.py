"""Processes started together (the workers of a cluster, the ranks of a
group), each with its log, bounded in time; and free ports for them."""

import os
import signal
import socket
import subprocess
import time

from tests import ROOT


def free_ports(count):
    """`count` distinct free ports on 127.0.0.1."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def python_path():
    """PYTHONPATH for a child that imports `tests` and `examples`."""
    return os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])


def run_together(commands, output, timeout, name="child", tail=3000):
    """Runs each `(argv, env)` of `commands` at once from the repository root,
    its output in `output/<name><index>.log`, and waits for all. When one
    fails the others are stopped (one left alone waits forever in a
    collective; JAX catches SIGTERM, hence SIGKILL), and so is every one
    still running after `timeout` seconds. Returns the exit codes and the
    logs' last `tail` characters, each under a header."""
    processes = []
    for index, (argv, env) in enumerate(commands):
        log = open(output / f"{name}{index}.log", "w")  # noqa: SIM115
        processes.append(
            subprocess.Popen(
                argv, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT
            )
        )
        log.close()
    deadline = time.monotonic() + timeout
    while any(p.poll() is None for p in processes):
        failed = any(p.returncode not in (None, 0) for p in processes)
        if failed or time.monotonic() > deadline:
            for p in processes:
                if p.poll() is None:
                    p.send_signal(signal.SIGKILL)
                    p.wait()
            break
        time.sleep(0.2)
    codes = [p.returncode for p in processes]
    logs = "\n".join(
        f"--- {name} {index} (exit {code}) ---\n"
        + (output / f"{name}{index}.log").read_text()[-tail:]
        for index, code in enumerate(codes)
    )
    return codes, logs
