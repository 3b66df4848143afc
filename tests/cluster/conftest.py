"""tests/cluster: multi-node tests and their tools (proxy.py, the partition proxy).

Ports come from tests/python/ports.py (below the kernel's ephemeral range; never bind(0) for a
port a broker or proxy listens on)."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
