"""Losses shared by the tracks."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def cosine_triplet(anchor: torch.Tensor, positive: torch.Tensor, negative: torch.Tensor,
                   margin: float = 0.2) -> torch.Tensor:
    """mean(max(0, margin - cos(a, p) + cos(a, n))) over the batch (the fabric paper's loss).

    ``F.cosine_similarity`` broadcasts, so a single anchor row of shape (D,) is compared with every
    positive and negative of the batch: that is exactly the released stage-2 defect
    (``anchor_index_bug``), reproduced by passing ``anchor[0]``.
    """
    pos = F.cosine_similarity(anchor, positive, dim=-1)
    neg = F.cosine_similarity(anchor, negative, dim=-1)
    return F.relu(margin - pos + neg).mean()
