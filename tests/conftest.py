"""Shared test settings.

One torch thread: the tests use tiny tensors, where thread start-up and contention on a
busy 2-core machine cost far more than they gain (a judge forward: 18 ms on one thread,
500 ms on two under load).
"""

import torch

torch.set_num_threads(1)
