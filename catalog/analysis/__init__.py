"""Analyses of stored circuits, above discovery: what each head does, and interventions.

- `roles`: each head's attention between roles, direct logit attribution, OV copying score and
  composition scores with upstream heads, and a role label assigned from those numbers.
- `interventions`: ablate, patch or scale components and measure metric and accuracy.
- `knockout`: ablate each task's circuit and measure every task (a damage matrix).
- `repair`: steer heads of a failing task toward a working task's attention pattern.

Importing this package is light (no torch); the measuring modules import torch when called.
"""
