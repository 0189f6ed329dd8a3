"""Backbones, the fabric models and the cosine triplet loss."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from fgr_utils.errors import FgrError
from fgr_utils.losses import cosine_triplet
from fgr_utils.backbones import create_backbone, set_trainable
from fgr_utils.tracks.fabric.models import GlobalModel, QGAModel


def test_backbone_tokens_and_partial_unfreeze():
    bb = create_backbone("vit-smoke")
    tokens = bb(torch.randn(2, 3, 32, 32))
    assert tokens.shape == (2, 1 + 16, 32) and bb.grid == (4, 4)
    assert bb.patches(tokens).shape == (2, 16, 32) and bb.cls(tokens).shape == (2, 32)
    n_all = sum(p.numel() for p in bb.parameters())
    n_last = set_trainable(bb, 1)
    block = sum(p.numel() for p in bb.blocks[-1].parameters()) + sum(p.numel() for p in bb.model.norm.parameters())
    assert n_last == block < n_all
    assert not any(p.requires_grad for p in bb.blocks[0].parameters())
    assert set_trainable(bb, None) == n_all
    assert create_backbone("dinov2-vitb14").grid == (16, 16)


def test_pretrained_needs_a_local_file_and_loads_it(tmp_path):
    with pytest.raises(FgrError, match="never downloads"):
        create_backbone("vit-smoke", pretrained=True)
    with pytest.raises(FgrError, match="does not exist"):
        create_backbone("vit-smoke", pretrained=True, weights_path=str(tmp_path / "nope.pth"))
    src = create_backbone("vit-smoke")
    torch.save(src.model.state_dict(), tmp_path / "w.pth")
    loaded = create_backbone("vit-smoke", pretrained=True, weights_path=str(tmp_path / "w.pth"))
    for (k, a), (_, b) in zip(src.model.state_dict().items(), loaded.model.state_dict().items()):
        assert torch.equal(a, b), k
    with pytest.raises(FgrError, match="unknown backbone"):
        create_backbone("resnet-9000")


def test_npz_weights_go_through_the_models_own_loader(tmp_path, monkeypatch):
    """Google's JAX ViT-B_16.npz (RPF's patch branch) is read by timm's custom .npz loader, a
    PyTorch checkpoint by the generic one."""
    import timm

    seen = []
    real = timm.create_model
    monkeypatch.setattr(timm, "create_model", lambda name, **kw: seen.append(kw.get("pretrained_cfg_overlay"))
                        or real(name, **{k: v for k, v in kw.items() if k not in ("pretrained", "pretrained_cfg_overlay")}))
    for name in ("ViT-B_16.npz", "w.pth"):
        (tmp_path / name).write_bytes(b"stand-in")
        create_backbone("vit-smoke", pretrained=True, weights_path=str(tmp_path / name))
    assert [o["custom_load"] for o in seen] == [True, False]
    assert seen[0]["file"].endswith("ViT-B_16.npz")


def test_cached_rerank_equals_per_pair_forward():
    torch.manual_seed(0)
    model = QGAModel(create_backbone("vit-smoke"), heads=8).eval()
    query = torch.randn(1, 3, 32, 32)
    cands = torch.randn(7, 3, 32, 32)
    with torch.no_grad():
        naive = torch.stack([model(query, c[None])[0][0] for c in cands])  # re-encodes both, per pair
        cached, maps = model.score_cached(model.encode_query(query)[0], model.encode_candidates(cands))
    assert torch.allclose(naive, cached, atol=1e-5)
    assert maps.shape == (7, 16) and torch.allclose(maps.sum(-1), torch.ones(7), atol=1e-5)


@pytest.mark.parametrize("backbone", ["vit-smoke", "vit-demo"])  # projection wider / narrower than 2 x width
def test_matching_init_finds_the_copied_patch(backbone):
    """attention_init="matching": before training, a candidate holding the query's token scores highest
    and the attention sits on that patch; a candidate holding its negation does not score like it."""
    torch.manual_seed(0)
    model = QGAModel(create_backbone(backbone), heads=8 if backbone == "vit-demo" else 4,
                     attention_init="matching").eval()
    d = model.backbone.dim
    tokens = F.layer_norm(torch.randn(5, 16, d), (d,))  # LayerNorm-scaled, as the backbone's output
    query = tokens[2, 9].clone()
    tokens[4, 3] = -query
    with torch.no_grad():
        scores, maps = model.score_cached(query, tokens)
    assert int(scores.argmax()) == 2 and scores[2] > 0.9
    assert int(maps[2].argmax()) == 9 and maps[2, 9] > 0.5
    assert scores[4] < scores[2] - 0.3
    with pytest.raises(FgrError, match="attention_init"):
        QGAModel(create_backbone("vit-smoke"), attention_init="xavier")


def test_global_model_output():
    m = GlobalModel(create_backbone("vit-smoke"), out_dim=256)
    assert m(torch.randn(3, 3, 32, 32)).shape == (3, 256)


def test_cosine_triplet_and_the_anchor_broadcast_defect():
    torch.manual_seed(1)
    a, p, n = torch.randn(4, 8), torch.randn(4, 8), torch.randn(4, 8)
    expected = torch.clamp(0.2 - F.cosine_similarity(a, p) + F.cosine_similarity(a, n), min=0).mean()
    assert torch.allclose(cosine_triplet(a, p, n), expected)
    # the released stage-2 code: anchor[0] (shape (8,)) broadcasts against every positive and negative
    faithful = cosine_triplet(a[0], p, n)
    by_hand = torch.clamp(0.2 - F.cosine_similarity(a[0].expand(4, 8), p) + F.cosine_similarity(a[0].expand(4, 8), n),
                          min=0).mean()
    assert torch.allclose(faithful, by_hand) and not torch.allclose(faithful, expected)


def test_cosine_schedule_climbs_back_after_t_max():
    """The paper's CosineAnnealingLR(T_max=80) over 100 epochs: the rate rises again after epoch 80."""
    opt = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=1e-5)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=80, eta_min=1e-7)
    lrs = []
    for _ in range(100):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs[80] == pytest.approx(1e-7, rel=1e-3)
    assert lrs[99] > lrs[90] > lrs[81] > lrs[80]


def test_demo_backbone_stem_cache_gives_the_same_tokens(tmp_path):
    """The hybrid demo backbone: frozen wheel-weight stem, and training from cached stem features is exact."""
    import numpy as np
    from PIL import Image

    from fgr_utils.data.transforms import Preprocess
    from fgr_utils.embed import StemCache

    torch.manual_seed(0)
    bb = create_backbone("vit-demo")
    assert bb.frozen_stem is not None and bb.grid == (8, 8)
    trainable = set_trainable(bb, None)
    assert trainable == sum(p.numel() for n, p in bb.named_parameters() if ".backbone." not in n)
    # in eval mode from construction on: caching stem features from a fresh model must neither use
    # batch statistics nor move the running ones
    assert not any(m.training for m in bb.frozen_stem.modules())
    stem_state = {k: v.clone() for k, v in bb.frozen_stem.state_dict().items()}
    rng = np.random.default_rng(0)
    paths = []
    for i in range(3):
        paths.append(tmp_path / f"{i}.png")
        Image.fromarray(rng.integers(0, 255, (50, 70, 3), dtype=np.uint8)).save(paths[-1])
    for size, grid in ((256, 8), (64, 2)):  # the fabric size, and a query at print scale (smaller grid)
        pre = Preprocess(size=size)
        cache = StemCache(bb, lambda m, x: m.stem_features(x))
        for view, transform in ((0, pre), (1, pre.mirrored())):
            assert cache.fill([(view, p) for p in paths], paths, transform, batch_size=2) == len(paths)
        assert cache.fill([(0, p) for p in paths], paths, pre) == 0  # held rows are never computed again
        bb.eval()
        with torch.no_grad():
            images = torch.stack([pre(p) for p in paths])
            direct = bb(images)
            flipped = bb(images.flip(-1))
            with bb.stem_inputs():
                from_cache = bb(cache.stack([(0, p) for p in paths]))
                from_cache_flip = bb(cache.stack([(1, p) for p in paths]))
        assert direct.shape == (3, 1 + grid * grid, bb.dim)
        assert torch.allclose(direct, from_cache, atol=2e-2)  # the cache stores float16
        assert torch.allclose(flipped, from_cache_flip, atol=2e-2)
    assert all(torch.equal(v, bb.frozen_stem.state_dict()[k]) for k, v in stem_state.items())
    bb.train()
    assert not any(m.training for m in bb.frozen_stem.modules())


def test_demo_backbone_starts_from_the_stem_features():
    """identity_init: the blocks pass the stem features through unchanged; the image token is the mean."""
    bb = create_backbone("vit-demo").eval()
    stem = torch.randn(2, 192, 8, 8)
    with torch.no_grad():
        x = bb.model.patch_embed.proj(stem)
        assert torch.equal(x, stem)
        tokens = torch.randn(2, 65, 192)
        assert torch.equal(bb.model.blocks(tokens), tokens)
        assert torch.allclose(bb.cls(tokens), tokens[:, 1:].mean(1))
    assert torch.equal(create_backbone("vit-smoke").cls(tokens), tokens[:, 0])  # a class-token ViT


def test_fabric_inputs_query_size():
    from fgr_utils.tracks import fabric

    same = fabric.fabric_inputs(64)
    assert same.fabric.size == same.query.size == 64  # None: as released
    scaled = fabric.fabric_inputs(256, 64, resize="squash", rgba_background="black")
    assert (scaled.fabric.size, scaled.query.size) == (256, 64)
    assert scaled.query.resize == "squash" and scaled.query.rgba_background == "black"
    assert scaled.describe()["query"]["size"] == 64


def test_sbir_demo_backbone_has_a_trainable_conv_stem():
    """vit-sbir-demo: trained from scratch, a 3-convolution stride-8 stem instead of a linear patchify."""
    bb = create_backbone("vit-sbir-demo")
    assert bb.grid == (8, 8) and bb.frozen_stem is None
    stem = bb.model.patch_embed.backbone
    assert sum(isinstance(m, torch.nn.Conv2d) for m in stem.modules()) == 3
    assert set_trainable(bb, None) == sum(p.numel() for p in bb.parameters())
    assert bb(torch.randn(2, 3, 64, 64)).shape == (2, 65, 128)
