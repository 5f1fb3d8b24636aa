"""Shared test settings: small thread counts keep the suite fast and steady on 2 cores."""

import torch

torch.set_num_threads(2)
