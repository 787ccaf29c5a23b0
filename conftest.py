"""Test-session settings shared by every test module."""
import torch

# The machines this suite runs on have two cores and several processes at once; tiny
# models run many times faster on one intra-op thread than on an oversubscribed pool.
torch.set_num_threads(1)
