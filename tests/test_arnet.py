"""ARNet, MSTR, the triplet baseline, NT-Xent and the attention-distance metrics."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from fgr_utils.attention import capture_attention, mean_attention_distance, token_similarity_variance
from fgr_utils.errors import FgrError
from fgr_utils.losses import nt_xent
from fgr_utils.tracks.sbir.models import (ARNet, Encoder, MSTR, Siamese, model_from_params, relation_target_paper,
                                    relation_target_released)
from fgr_utils.backbones import create_backbone


def test_uniform_attention_distances_match_the_reference_values():
    n = 197
    uniform = torch.full((2, 3, n, n), 1.0 / n)
    token = mean_attention_distance(uniform, mode="token_index_arnet")
    assert token.shape == (3,)
    assert np.allclose(token, (n * n - 1) / (3 * n)) and round(float(token[0]), 2) == 65.66
    pixel = mean_attention_distance(uniform, mode="pixel_euclidean", grid=(14, 14), patch=16)
    assert np.allclose(pixel, 116.49, atol=0.01)  # rows renormalised after dropping CLS
    raw = mean_attention_distance(uniform, mode="pixel_euclidean", grid=(14, 14), patch=16, renormalise=False)
    assert np.allclose(raw, 116.49 * 196 / 197, atol=0.01) and 115.5 < raw[0] < 116.2


def test_attention_distance_of_local_attention_and_bad_input():
    eye = torch.eye(17).expand(1, 2, 17, 17)  # every token attends to itself
    assert np.allclose(mean_attention_distance(eye, mode="token_index_arnet"), 0)
    assert np.allclose(mean_attention_distance(eye, mode="pixel_euclidean", grid=(4, 4), patch=8), 0)
    right = torch.zeros(1, 1, 5, 5)  # grid 2 x 2 after CLS: token 0 -> its right neighbour (8 px)
    right[0, 0, 1, 2] = 1
    right[0, 0, 2:, 2:] = torch.eye(3)
    assert mean_attention_distance(right, mode="pixel_euclidean", grid=(2, 2), patch=8)[0] == pytest.approx(2.0)
    with pytest.raises(FgrError, match="grid"):
        mean_attention_distance(eye, mode="pixel_euclidean", grid=(3, 3))
    with pytest.raises(FgrError, match="mode"):
        mean_attention_distance(eye, mode="euclid")


def test_captured_attention_is_each_blocks_softmax():
    torch.manual_seed(0)
    bb = create_backbone("vit-smoke").eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        plain = bb(x)
        with capture_attention(bb) as maps:
            captured = bb(x)
    assert len(maps) == len(bb.blocks) and maps[0].shape == (2, 2, 17, 17)
    assert torch.allclose(maps[0].sum(-1), torch.ones(2, 2, 17), atol=1e-5)
    assert torch.allclose(plain, captured, atol=1e-5)
    assert all(b.attn.fused_attn == bb.blocks[0].attn.fused_attn for b in bb.blocks)  # restored


def test_nt_xent_prefers_aligned_views_and_counts_same_modality_negatives():
    torch.manual_seed(0)
    a = torch.randn(8, 16)
    aligned = nt_xent(a, a + 0.01 * torch.randn(8, 16))
    shuffled = nt_xent(a, a[torch.randperm(8)])
    assert aligned < shuffled
    # two identical views of orthogonal rows: each row's partner has similarity 1, the other 2B - 2 rows 0
    e = torch.eye(4)
    assert nt_xent(e, e, tau=1.0).item() == pytest.approx(-math.log(math.e / (math.e + 6)), rel=1e-5)


def test_relation_targets():
    t = relation_target_paper((14, 7, 2))
    assert t.shape == (249, 249) and torch.equal(t, t.T) and torch.all(t.diagonal() == 1)
    # patch (0, 0) lies in 2 x 2 cell 0 of the middle scale and in quadrant 0 of the coarsest
    assert t[0, 196] == 0.5 and t[0, 196 + 49] == 0.5 and t[0, 197] == 0
    # the middle grid's centre row (3) goes to the lower coarse cells by centre containment
    assert t[196 + 3 * 7, 196 + 49 + 2] == 0.5
    assert int((t[:196, 196:245] == 0.5).sum()) == 196 and int((t[:196, 245:] == 0.5).sum()) == 196
    r = relation_target_released((196, 49, 4))
    assert torch.all(r[:196, 245:] == 0)  # the never-filled block
    assert int((r[196:245, 245:] == 0.5).sum()) > 49  # overlapping slices: some middle tokens have two parents


@pytest.mark.parametrize("impl", ["paper_intent", "as_released"])
def test_mstr_registration_and_batch_independence(impl):
    torch.manual_seed(0)
    m = MSTR(32, 4, impl=impl, heads=4, ffn=64)
    named = {n.split(".")[0] for n, _ in m.named_parameters()}
    assert ("encoders" in named) == (impl == "paper_intent")  # as released: never trained or saved
    m.eval()
    cls, patches = torch.randn(3, 32), torch.randn(3, 16, 32)
    with torch.no_grad():
        torch.manual_seed(1)
        together = m(cls, patches)[0]
        torch.manual_seed(1)
        alone = m(cls[:1], patches[:1])[0]
    # paper intent: an item's embedding does not depend on the rest of the batch; as released it does
    assert torch.allclose(together[:1], alone, atol=1e-5) == (impl == "paper_intent")


@pytest.mark.parametrize("mstr", [None, "paper_intent"])
def test_arnet_loss_trains_both_encoders(mstr):
    torch.manual_seed(0)
    model = ARNet(Encoder(create_backbone("vit-smoke")), Encoder(create_backbone("vit-smoke")), mstr=mstr,
                  mstr_ffn=64)
    x = [torch.randn(4, 3, 32, 32) for _ in range(4)]
    loss, parts = model.loss(*x)
    assert set(parts) >= {"l1", "l2", "l3", "l4"} and ("rec_sketch" in parts) == (mstr is not None)
    assert loss.item() == pytest.approx(sum(parts.values()), rel=1e-5)
    loss.backward()
    assert model.sketch.head.weight.grad is not None and model.photo.head.weight.grad is not None
    assert not torch.equal(model.sketch.head.weight, model.photo.head.weight)  # no weight sharing
    e = model.embed_sketch(x[0])
    assert e.shape == (4, 512) and torch.allclose(e.norm(dim=-1), torch.ones(4), atol=1e-5)


def test_arnet_ablations_keep_their_loss_terms_or_share_one_encoder():
    torch.manual_seed(0)
    x = [torch.randn(4, 3, 32, 32) for _ in range(4)]
    model = ARNet(Encoder(create_backbone("vit-smoke")), Encoder(create_backbone("vit-smoke")), losses=("l1", "l4"))
    loss, parts = model.loss(*x)
    assert set(parts) == {"l1", "l4"} and loss.item() == pytest.approx(parts["l1"] + parts["l4"], rel=1e-5)
    params = {"method": "arnet", "backbone": "vit-smoke", "pretrained": False, "weights_path": "", "img_size": 32,
              "trainable_blocks": None, "embed_dim": 64, "mstr_impl": "paper_intent", "mstr_ffn": 64,
              "arnet_shared": True, "arnet_losses": ["l1"]}
    shared = model_from_params(params)
    assert shared.sketch is shared.photo and shared.losses == ("l1",)
    assert torch.equal(shared.embed_sketch(x[0]), shared.embed_photo(x[0]))
    separate = model_from_params({**params, "arnet_shared": False})
    assert sum(p.numel() for p in separate.parameters()) == 2 * sum(p.numel() for p in shared.parameters())
    with pytest.raises(FgrError, match="non-empty subset of"):
        model_from_params({**params, "arnet_losses": ["l5"]})


def test_siamese_shares_one_encoder():
    torch.manual_seed(0)
    model = Siamese(Encoder(create_backbone("vit-smoke")))
    x = torch.randn(2, 3, 32, 32)
    assert torch.equal(model.embed_sketch(x), model.embed_photo(x))
    loss, parts = model.loss(x, x, torch.randn(2, 3, 32, 32))
    assert 0 <= loss.item() <= 0.3 + 2 and "triplet" in parts


def test_token_similarity_variance():
    same = torch.ones(5, 8)
    assert token_similarity_variance(same)[1] == pytest.approx(0, abs=1e-10)
    sim, var = token_similarity_variance(F.normalize(torch.randn(10, 8), dim=-1))
    assert sim.shape == (10, 10) and var > 0.01
