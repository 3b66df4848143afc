"""The soak's short form (tests/cluster/soak.py; the long form is scripts/cluster-soak.sh)."""
import os

import pytest

import soak


@pytest.mark.timeout(600)
def test_definitions_survive_cycling_faults():
    seconds = int(os.environ.get("CLUSTER_SOAK_SECONDS", "30"))
    report = soak.run(seconds)
    assert not report["findings"], report
    # The run did something: changes were acknowledged and faults were injected.
    assert report["operations"]["ok"] > 0, report
    assert report["faults"] > 0, report
