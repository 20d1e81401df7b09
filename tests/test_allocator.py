import subprocess
import sys

import pytest

SCRIPT = """
import resource, torch
import torch.nn.functional as F
from audiomnist import models
from audiomnist.allocator import retain_freed_memory
from audiomnist.features import FeatureConfig, LogMel
applied = retain_freed_memory()
torch.set_num_threads(1)
frontend, net = LogMel(FeatureConfig(), 8000), models.create("seed-cnn", 10)
wave, y = torch.randn(64, 8000), torch.zeros(64, dtype=torch.long)
F.cross_entropy(net(frontend(wave)), y).backward()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(40):  # training steps: the same few-MB blocks allocated and freed every time
    F.cross_entropy(net(frontend(wave)), y).backward()
print(applied, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _faults(env_value: str) -> tuple[bool, int]:
    import os

    env = {**os.environ, "AUDIOMNIST_MALLOC": env_value}
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env, check=True
    ).stdout.split()
    return out[0] == "True", int(out[1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc malloc tuning is Linux-only")
def test_freed_blocks_are_reused_instead_of_faulted_back_in():
    applied, tuned = _faults("")
    if not applied:
        pytest.skip("this libc has no mallopt (not glibc)")
    kept, default = _faults("default")
    assert not kept
    assert tuned * 4 < default, (tuned, default)
