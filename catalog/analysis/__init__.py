"""Analyses of stored circuits, above discovery: what each head does, and interventions.

- `roles`: each head's attention between roles, direct logit attribution, OV copying score and
  composition scores with upstream heads, and a role label assigned from those numbers.
- `interventions`: ablate, patch or scale components and measure metric and accuracy.
- `knockout`: ablate each task's circuit and measure every task (a damage matrix).
- `repair`: steer heads of a failing task toward a working task's attention pattern.

Importing this package is light (no torch); the measuring modules import torch when called.
"""

import os

# The analyses run many small forward passes, as discovery does: passive OpenMP waiting keeps
# idle threads from spinning on a busy machine (measured: a forward pass of the embedded model
# took 5 s instead of 0.05 s without it). Only effective before torch is imported.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
