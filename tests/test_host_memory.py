"""glibc's mmap threshold: freed tensors go back to the system (crslab_mscrs.host_memory)."""
import os
import subprocess
import sys

import pytest

from crslab_mscrs import host_memory

FREED = """
import importlib.util, sys, torch
spec = importlib.util.spec_from_file_location("host_memory", sys.argv[2])  # without the package's imports
host_memory = importlib.util.module_from_spec(spec); spec.loader.exec_module(host_memory)
if sys.argv[1] == "set":
    assert host_memory.set_mmap_threshold(65536) is None
t = torch.ones(8 << 20, dtype=torch.uint8); del t   # freeing a mapping raises glibc's own threshold
kept, temporaries = [], []
for _ in range(200):  # 1 MiB temporaries between small tensors that stay alive (like a step's activations)
    temporaries.append(torch.ones(1 << 20, dtype=torch.uint8)); kept.append(torch.ones(8192))
before = host_memory.resident_bytes()
del temporaries
print((before - host_memory.resident_bytes()) / 2**20)
"""


def returned_mib(mode: str) -> float:
    env = {k: v for k, v in os.environ.items() if k != host_memory.ENV_THRESHOLD}
    out = subprocess.run([sys.executable, "-c", FREED, mode, host_memory.__file__], env=env, capture_output=True, text=True, check=True)
    return float(out.stdout.split()[-1])


glibc = pytest.mark.skipif(not hasattr(host_memory._libc(), "gnu_get_libc_version"), reason="glibc only")


@glibc
def test_freed_temporaries_return_to_the_system_once_the_threshold_is_set():
    assert returned_mib("set") > 150          # 200 MiB freed: their pages leave the RSS
    assert returned_mib("default") < 50       # glibc's drifting threshold keeps them in the heap


def test_the_environment_variable_wins(monkeypatch):
    monkeypatch.setenv(host_memory.ENV_THRESHOLD, "131072")
    assert "MALLOC_MMAP_THRESHOLD_=131072" in host_memory.set_mmap_threshold(65536)
