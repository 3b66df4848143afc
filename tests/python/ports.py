"""Free TCP ports for test brokers, below the kernel's ephemeral range.

Standard library only, so that shell scripts can run it with any python3:
    python3 tests/python/ports.py 4     # prints four distinct free ports, one per line
"""
import os
import random
import socket
import sys
import time

_handed_out = set()
# Ports RabbitMQ and Warren use by default: never handed to a test, so that a test's
# broker cannot collide with a broker someone runs on the defaults.
_RESERVED = {1883, 4369, 5551, 5552, 5671, 5672, 8883, 15672, 15675, 15692, 25672}


def _ephemeral_start():
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_port():
    """A port nobody listens on now, taken below the kernel's ephemeral range.

    A port from bind(0) is an ephemeral one: the kernel may hand it to any client socket
    (a pika connection of another test) before the broker binds it, and the broker then
    fails with "Address already in use". Ports below the range are never given to clients.
    Each port is handed out once per test session.
    """
    start = _ephemeral_start()
    if start > 11000:
        rng = random.Random(os.getpid() ^ time.time_ns())
        for _ in range(200):
            port = rng.randrange(10000, start)
            if port in _handed_out or port in _RESERVED:
                continue
            s = socket.socket()
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            finally:
                s.close()
            _handed_out.add(port)
            return port
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


if __name__ == "__main__":
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 1
    for _ in range(count):
        print(free_port())
