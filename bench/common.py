"""Helpers shared by the bench scripts (ab.py, polled.py, mqtt.py): a free loopback port, and
stopping a broker process and removing its scratch directory."""
import shutil
import signal
import socket
import subprocess


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def stop(proc, scratch=None, timeout=20):
    """SIGTERM, then SIGKILL after `timeout` s; removes `scratch` if given."""
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    if scratch:
        shutil.rmtree(scratch, ignore_errors=True)
