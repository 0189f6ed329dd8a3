"""Attribute-specific retrieval models (ASENet_V2, AG-MAN, RPF, global floor), their trunks, the
attention-guided crop, β fusion and the losses E-InfoNCE / AutomaticWeightedLoss."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from fgr_utils.errors import FgrError
from fgr_utils.losses import AutomaticWeightedLoss, cosine_triplet, e_infonce
from fgr_utils.tracks.asfr.heads import AGMAN, RPF, ASENv2, GlobalEmbedding, build_model, crop_boxes, fuse, to_original
from fgr_utils.tracks.asfr.trunks import create_trunk
from fgr_utils.backbones import BACKBONES, create_backbone

N_ATTR = 3
DIMS = {"attr_dim": 16, "hidden": 16, "embed_dim": 32}


@pytest.fixture(scope="module")
def effnet():
    torch.manual_seed(0)
    return create_trunk("effnet-demo", width=32)


@pytest.fixture(scope="module")
def effnet_feats(effnet):
    torch.manual_seed(1)
    return effnet.stem(torch.randn(4, 3, 64, 64))


@pytest.fixture(scope="module")
def patch_backbone():
    torch.manual_seed(2)
    return create_backbone("vit-asfr-demo")


def _model(method, trunk, **extra):
    torch.manual_seed(3)
    return build_model(method, trunk, N_ATTR, **DIMS, **extra)


# --------------------------------------------------------------------------------------------
# trunks
# --------------------------------------------------------------------------------------------

def test_effnet_demo_trunk_shapes_and_frozen_stem(effnet, effnet_feats):
    assert effnet.frozen_stem and effnet.channels == {"layer2": 40, "layer3": 32}
    assert effnet_feats["layer2"].shape == (4, 40, 8, 8) and effnet_feats["layer3"].shape == (4, 112, 4, 4)
    assert not effnet_feats["layer3"].requires_grad
    effnet.train()
    assert not effnet.stem_net.training and effnet.layer3.training  # the stem's BatchNorm stays in eval mode
    assert not any(p.requires_grad for p in effnet.stem_net.parameters())
    assert all(p.requires_grad for p in effnet.layer3.parameters())
    before = {k: v.clone() for k, v in effnet.stem_net.state_dict().items()}
    effnet.stem(torch.randn(2, 3, 64, 64))  # in train mode: no running-statistics update
    assert all(torch.equal(before[k], v) for k, v in effnet.stem_net.state_dict().items())
    out = effnet.top(effnet_feats)
    assert out["layer2"].shape == (4, 40, 8, 8) and out["layer3"].shape == (4, 32, 4, 4)
    assert effnet(torch.randn(2, 3, 160, 160))["layer3"].shape == (2, 32, 10, 10)
    layer4, c4 = effnet.make_layer4()
    assert c4 == 64 and layer4(out["layer3"]).shape == (4, 64, 2, 2)


@pytest.fixture(scope="module")
def resnet():
    torch.manual_seed(0)
    return create_trunk("resnet50")


def test_resnet50_trunk_and_heads(resnet):
    assert not resnet.frozen_stem and resnet.channels == {"layer2": 512, "layer3": 1024}
    assert all(p.requires_grad for p in resnet.parameters())
    x = torch.randn(2, 3, 64, 64)
    feats = resnet.stem(x)
    assert torch.equal(feats["image"], x)
    maps = resnet.top(feats)
    assert maps["layer2"].shape == (2, 512, 8, 8) and maps["layer3"].shape == (2, 1024, 4, 4)
    assert not any("layer4" in k for k in resnet.state_dict())  # only AG-MAN's own copy holds layer4
    attr = torch.tensor([0, 2])
    asen = ASENv2(resnet, N_ATTR, attr_dim=16, hidden=16)
    out = asen(feats, attr)
    assert out.embedding.shape == (2, 1024) and out.attention.shape == (2, 4, 4)
    agman = AGMAN(resnet, N_ATTR, attr_dim=16, hidden=16, embed_dim=32)
    out = agman(feats, attr)
    assert out.embedding.shape == (2, 32) and out.logits.shape == (2, N_ATTR)
    assert torch.allclose(out.embedding.norm(dim=1), torch.ones(2), atol=1e-5)
    assert agman.layer4 is not resnet._layer4[0]
    assert torch.equal(agman.layer4.state_dict()["0.conv1.weight"], resnet._layer4[0].state_dict()["0.conv1.weight"])


def test_resnet50_pretrained_weights(tmp_path):
    with pytest.raises(FgrError, match="never downloads") as e:
        create_trunk("resnet50", pretrained=True)
    assert "\n" not in str(e.value)
    with pytest.raises(FgrError, match="does not exist") as e:
        create_trunk("resnet50", pretrained=True, weights_path=str(tmp_path / "resnet50-19c8e357.pth"))
    assert "\n" not in str(e.value)
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(FgrError, match="cannot load") as e:
        create_trunk("resnet50", pretrained=True, weights_path=str(tmp_path / "junk.pth"))
    assert "\n" not in str(e.value)
    import torchvision

    torch.manual_seed(5)
    src = torchvision.models.resnet50()
    torch.save(src.state_dict(), tmp_path / "w.pth")
    trunk = create_trunk("resnet50", pretrained=True, weights_path=str(tmp_path / "w.pth"))
    assert torch.equal(trunk.layer3[0].conv1.weight, src.layer3[0].conv1.weight)
    assert torch.equal(trunk.make_layer4()[0][2].conv3.weight, src.layer4[2].conv3.weight)
    with pytest.raises(FgrError, match="unknown trunk"):
        create_trunk("resnet18")


# --------------------------------------------------------------------------------------------
# heads
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("method", ["global", "asen_v2", "agman", "rpf"])
def test_heads_shapes_norms_attention_and_gradients(method, effnet, effnet_feats):
    model = _model(method, effnet)
    attr = torch.tensor([0, 1, 2, 1])
    out = model(effnet_feats, attr)
    dim = 32
    assert out.embedding.shape == (4, dim) and model.embed_dim == dim
    assert torch.allclose(out.embedding.norm(dim=1), torch.ones(4), atol=1e-5)
    if method == "global":
        assert out.attention is None
    else:
        assert out.attention.shape == (4, 4, 4)
        assert (out.attention >= 0).all() and torch.allclose(out.attention.sum((1, 2)), torch.ones(4), atol=1e-5)
    assert (out.logits is not None) == (method == "agman")
    assert (out.background is not None) == (method == "rpf")
    if method == "rpf":
        assert torch.allclose(out.background.norm(dim=1), torch.ones(4), atol=1e-5)
    model.zero_grad()
    loss = cosine_triplet(out.embedding[0:1], out.embedding[1:2], out.embedding[2:3], margin=2.0)
    if out.logits is not None:
        loss = loss + model.type_loss(out.logits, attr)
    loss.backward()
    assert effnet.layer3[0].weight.grad is not None and effnet.layer3[0].weight.grad.abs().sum() > 0


def test_embeddings_depend_on_the_attribute_except_global(effnet, effnet_feats):
    a0, a1 = torch.zeros(4, dtype=torch.long), torch.ones(4, dtype=torch.long)
    for method in ("global", "asen_v2", "agman", "rpf"):
        model = _model(method, effnet).eval()
        with torch.no_grad():
            e0, e1 = model(effnet_feats, a0).embedding, model(effnet_feats, a1).embedding
        if method == "global":
            assert torch.equal(e0, e1)
        else:
            assert (e0 - e1).abs().max() > 1e-3, method


def test_agman_mask_init_and_type_loss(effnet, effnet_feats):
    model = _model("agman", effnet)
    block = 32 // N_ATTR  # 10; dims 30, 31 belong to no attribute
    w = model.masks.weight
    for a in range(N_ATTR):
        expected = torch.full((32,), 0.1)
        expected[a * block:(a + 1) * block] = 1.0
        assert torch.equal(w[a], expected)
    assert w.requires_grad
    logits = torch.tensor([[2.0, -1.0, 0.5], [0.0, 3.0, -2.0]])
    attr = torch.tensor([0, 2])
    target = torch.tensor([[1.0, 0, 0], [0, 0, 1.0]])
    manual = -(target * F.logsigmoid(logits) + (1 - target) * F.logsigmoid(-logits)).mean()
    assert torch.allclose(model.type_loss(logits, attr), manual)
    assert model(effnet_feats, torch.tensor([0, 1, 2, 0])).logits.shape == (4, N_ATTR)


def test_agman_ablation_switches_drop_their_component(effnet, effnet_feats):
    full = _model("agman", effnet)
    flat = _model("agman", effnet, multilevel=False)
    bare = _model("agman", effnet, mask=False)
    assert flat.lateral is None and flat.reduce.in_channels == 32 and full.reduce.in_channels == 64
    assert bare.masks is None and full.masks is not None
    attr = torch.tensor([0, 1, 2, 0])
    for model in (flat, bare):
        out = model(effnet_feats, attr)
        assert out.embedding.shape == (4, 32) and out.logits.shape == (4, N_ATTR)
        assert torch.allclose(out.embedding.norm(dim=-1), torch.ones(4))
    # without the mask every dimension carries every attribute; with it, 0.1 off the attribute's block
    with torch.no_grad():
        bare.load_state_dict({k: v for k, v in full.state_dict().items() if not k.startswith("masks")})
        e_full, e_bare = full.eval()(effnet_feats, attr).embedding, bare.eval()(effnet_feats, attr).embedding
    assert not torch.allclose(e_full, e_bare)
    assert torch.allclose(F.normalize(F.normalize(e_bare, dim=-1) * F.relu(full.masks(attr)), dim=-1), e_full, atol=1e-5)


def test_rpf_needs_c3_equal_to_embed_dim(effnet):
    with pytest.raises(FgrError, match="layer3 channels") as e:
        RPF(effnet, N_ATTR, attr_dim=16, hidden=16, embed_dim=64)
    assert "\n" not in str(e.value)


def test_rpf_background_goes_through_the_same_mlp(effnet, effnet_feats):
    model = _model("rpf", effnet).eval()
    attr = torch.tensor([0, 1, 2, 0])
    with torch.no_grad():
        out = model(effnet_feats, attr)
        f, b, att = model.region_features(effnet_feats, attr)
        assert torch.allclose(out.background, F.normalize(model.head(b, foreground=False), dim=-1), atol=1e-6)
        assert torch.allclose(out.attention, att)
        # with the foreground Linear made the identity, both paths are one function
        model.fg_proj.weight.copy_(torch.eye(32))
        model.fg_proj.bias.zero_()
        assert torch.allclose(model.head(b), model.head(b, foreground=False), atol=1e-6)
        # and changing the MLP changes the background embedding too
        model.mlp.net[1].weight.mul_(3.0)
        assert (model(effnet_feats, attr).background - out.background).abs().max() > 1e-4


def test_rpf_patch_branch_from_images_and_from_stem(effnet, patch_backbone):
    model = _model("rpf", effnet, patch_backbone=patch_backbone)
    assert model.has_patch_branch and not _model("rpf", effnet).has_patch_branch
    assert model.cross_encoder.attention.num_heads == 4
    model.eval()
    torch.manual_seed(4)
    crops = torch.randn(3, 3, 128, 128)
    attr = torch.tensor([2, 0, 1])
    with torch.no_grad():
        from_images = model.patch(crops, attr)
        from_stem = model.patch(patch_backbone.stem_features(crops), attr, from_stem=True)
        other_attr = model.patch(crops, torch.tensor([0, 1, 2]))
    assert from_images.shape == (3, 32)
    assert torch.allclose(from_images.norm(dim=1), torch.ones(3), atol=1e-5)
    assert torch.allclose(from_images, from_stem, atol=1e-5)
    assert (from_images - other_attr).abs().max() > 1e-4
    with pytest.raises(FgrError, match="no patch branch"):
        _model("rpf", effnet).patch(crops, attr)


def test_rpf_param_groups(effnet, patch_backbone):
    model = _model("rpf", effnet, patch_backbone=patch_backbone)
    region, patch = model.param_groups(1e-5, 5.5e-5)
    assert (region["lr"], patch["lr"]) == (1e-5, 5.5e-5)
    ids_r, ids_p = {id(p) for p in region["params"]}, {id(p) for p in patch["params"]}
    trainable = {id(p) for p in model.parameters() if p.requires_grad}
    assert not ids_r & ids_p and ids_r | ids_p == trainable
    assert len(ids_r) == len(region["params"]) and len(ids_p) == len(patch["params"])
    assert id(model.attr_embedding.weight) in ids_r and id(effnet.layer3[0].weight) in ids_r
    assert id(model.cross_encoder.type_embedding) in ids_p and id(patch_backbone.blocks[0].attn.qkv.weight) in ids_p
    assert not any(id(p) in trainable for p in patch_backbone.frozen_stem.parameters())


def test_fuse_dot_product_identity():
    torch.manual_seed(6)
    r, p = torch.randn(5, 8), torch.randn(5, 12)
    beta = 0.3
    z = fuse(r, p, beta)
    assert z.shape == (5, 20) and torch.allclose(z.norm(dim=1), torch.ones(5), atol=1e-6)
    cos_r = F.normalize(r, dim=1) @ F.normalize(r, dim=1).T
    cos_p = F.normalize(p, dim=1) @ F.normalize(p, dim=1).T
    assert torch.allclose(z @ z.T, beta * cos_r + (1 - beta) * cos_p, atol=1e-6)
    with pytest.raises(FgrError, match="beta"):
        fuse(r, p, 1.5)


# --------------------------------------------------------------------------------------------
# attention-guided crop
# --------------------------------------------------------------------------------------------

def _map(size, *regions):
    a = torch.zeros(size, size)
    for (r0, r1, c0, c1, v) in regions:
        a[r0:r1, c0:c1] = v
    return a


def test_crop_boxes_on_hand_made_maps():
    # attention at the input resolution: the bilinear upsample is the identity, the boxes are exact
    maps = torch.stack([
        _map(16, (0, 2, 10, 16, 1.0)),      # wide strip in the top-right corner: square grows down, stays inside
        _map(16, (12, 16, 15, 16, 1.0)),    # tall strip at the right edge: square shifted left into the image
        _map(16, (5, 7, 4, 10, 1.0)),       # interior: square centred on the box
        torch.ones(16, 16),                 # flat: whole image
    ])
    boxes = crop_boxes(maps, 16)
    assert boxes.dtype == torch.long
    assert boxes.tolist() == [[10, 0, 16, 6], [12, 12, 16, 16], [4, 3, 10, 9], [0, 0, 16, 16]]
    # min-max normalisation: an offset and a scale change nothing; a flat zero map is the whole image too
    assert torch.equal(crop_boxes(maps[:3] * 0.01 + 5.0, 16), boxes[:3])
    assert crop_boxes(torch.zeros(1, 16, 16), 16).tolist() == [[0, 0, 16, 16]]


def test_crop_boxes_threshold_and_low_resolution():
    two_peaks = _map(16, (2, 3, 2, 3, 1.0), (10, 11, 12, 13, 0.3))[None]
    assert crop_boxes(two_peaks, 16, threshold=0.1).tolist() == [[2, 1, 13, 12]]  # both peaks: 11 x 9 -> 11
    assert crop_boxes(two_peaks, 16, threshold=0.5).tolist() == [[2, 2, 3, 3]]    # only the strong one
    # a 7 x 7 softmax map with its peak in the bottom-left corner, upsampled to 224
    logits = torch.zeros(7, 7)
    logits[6, 0] = 6.0
    att = torch.softmax(logits.flatten(), 0).reshape(1, 7, 7)
    x0, y0, x1, y1 = crop_boxes(att, 224).tolist()[0]
    assert x1 - x0 == y1 - y0 and 0 < x1 - x0 < 224
    assert x0 == 0 and y1 == 224


def test_to_original_undoes_resize_and_center_crop():
    # landscape 300 x 200 at size 100: Resize -> 150 x 100, CenterCrop offset 25 px = 50 original px
    assert to_original((0, 0, 100, 100), (300, 200), 100) == (50, 0, 250, 200)
    assert to_original((10, 20, 60, 70), (300, 200), 100) == (70, 40, 170, 140)
    # portrait 200 x 400: vertical offset 100 original px
    assert to_original(torch.tensor([10, 20, 60, 70]), (200, 400), 100) == (20, 140, 120, 240)


# --------------------------------------------------------------------------------------------
# losses
# --------------------------------------------------------------------------------------------

def _e_infonce_reference(r, p, b, attrs, values, tau, alpha):
    """The formula of reference §4.3, transcribed term by term in float64."""
    r, p, b = (F.normalize(x.double(), dim=1) for x in (r, p, b))
    n = r.shape[0]
    total = []
    for i in range(n):
        pos = sum(math.exp(float(r[i] @ p[j]) / tau) for j in range(n)
                  if attrs[j] == attrs[i] and values[j] == values[i])
        n1 = sum(math.exp(float(r[i] @ p[j]) / tau) for j in range(n)
                 if not (attrs[j] == attrs[i] and values[j] == values[i]))
        n2 = sum(math.exp(float(r[i] @ b[j]) / tau) for j in range(n) if attrs[j] == attrs[i])
        total.append(math.log(pos + n1 + alpha * n2) - math.log(pos))
    return total


def test_e_infonce_matches_the_formula():
    torch.manual_seed(7)
    n = 12
    r, p, b = torch.randn(n, 16), torch.randn(n, 16), torch.randn(n, 16)
    attrs = torch.tensor([0, 0, 0, 1, 1, 1, 2, 2, 2, 0, 1, 2])
    values = torch.tensor([0, 0, 1, 3, 3, 2, 1, 0, 1, 1, 3, 0])
    ref = _e_infonce_reference(r, p, b, attrs.tolist(), values.tolist(), 0.07, 12.0)
    per_item = e_infonce(r, p, b, attrs, values, reduction="none")
    assert torch.allclose(per_item.double(), torch.tensor(ref, dtype=torch.float64), rtol=1e-5, atol=1e-5)
    assert math.isclose(float(e_infonce(r, p, b, attrs, values)), sum(ref) / n, rel_tol=1e-5)
    ref_t = _e_infonce_reference(r, p, b, attrs.tolist(), values.tolist(), 0.5, 3.0)
    assert math.isclose(float(e_infonce(r, p, b, attrs, values, tau=0.5, alpha=3.0)), sum(ref_t) / n, rel_tol=1e-5)
    # stable at a small temperature where exp overflows float32
    assert torch.isfinite(e_infonce(r, p, b, attrs, values, tau=1e-3))


def test_e_infonce_masks():
    torch.manual_seed(8)
    n = 9
    r, p, b = torch.randn(n, 8), torch.randn(n, 8), torch.randn(n, 8)
    attrs = torch.tensor([0, 0, 0, 1, 1, 1, 2, 2, 2])
    values = torch.tensor([0, 1, 0, 0, 1, 1, 0, 0, 1])
    base = e_infonce(r, p, b, attrs, values, reduction="none")
    b2 = b.clone()
    b2[4] = torch.randn(8)  # a background of attribute 1: only rows of attribute 1 see it (N2)
    changed = (e_infonce(r, p, b2, attrs, values, reduction="none") - base).abs() > 1e-6
    assert changed.tolist() == [a == 1 for a in attrs.tolist()]
    # every (attr, value) distinct and alpha = 0: P(i) = {i}, so each row is a cross-entropy with target i
    s = F.normalize(r, dim=1) @ F.normalize(p, dim=1).T / 0.07
    distinct = e_infonce(r, p, b, torch.arange(n), torch.zeros(n, dtype=torch.long), alpha=0.0)
    assert torch.allclose(distinct, F.cross_entropy(s, torch.arange(n)), atol=1e-5)


def test_cosine_triplet_is_margin_ranking_on_unit_vectors():
    torch.manual_seed(9)
    a, p, n = (F.normalize(torch.randn(16, 32), dim=1) for _ in range(3))
    sp, sn = (a * p).sum(1), (a * n).sum(1)
    expected = nn.MarginRankingLoss(margin=0.2)(sp, sn, torch.ones(16))
    assert torch.allclose(cosine_triplet(a, p, n, margin=0.2), expected, atol=1e-6)


def test_automatic_weighted_loss_at_init_is_equal_weighting():
    awl = AutomaticWeightedLoss(2)
    l1, l2 = torch.tensor(1.5), torch.tensor(2.5)
    assert torch.allclose(awl(l1, l2), torch.tensor(0.5 * 4.0 + 2 * math.log(2)))
    awl(l1, l2).backward()
    assert awl.params.grad is not None and awl.params.grad.abs().sum() > 0  # trainable when given to an optimiser
    with pytest.raises(ValueError):
        awl(l1)


# --------------------------------------------------------------------------------------------
# factory and backbone spec
# --------------------------------------------------------------------------------------------

def test_build_model_dispatch_and_errors(effnet):
    assert isinstance(build_model("global", effnet, N_ATTR, **DIMS), GlobalEmbedding)
    assert isinstance(build_model("asen_v2", effnet, N_ATTR, **DIMS), ASENv2)
    assert isinstance(build_model("agman", effnet, N_ATTR, **DIMS), AGMAN)
    assert isinstance(build_model("rpf", effnet, N_ATTR, **DIMS), RPF)
    with pytest.raises(FgrError, match="global, asen_v2, agman, rpf") as e:
        build_model("asen++", effnet, N_ATTR)
    assert "\n" not in str(e.value)
    with pytest.raises(FgrError, match="unknown model dimension"):
        build_model("agman", effnet, N_ATTR, embedding_dim=32)
    with pytest.raises(FgrError, match="layer3 width"):
        build_model("asen_v2", effnet, N_ATTR, embed_dim=64)


def test_vit_asfr_demo_spec(patch_backbone):
    assert patch_backbone.grid == (8, 8) and patch_backbone.dim == 112
    assert BACKBONES["vit-demo"].stem == "efficientnet-lite0" and BACKBONES["vit-demo"].kwargs["embed_dim"] == 192
    stem = patch_backbone.frozen_stem
    assert stem is not None and not any(p.requires_grad for p in stem.parameters())
    assert patch_backbone.stem_features(torch.randn(1, 3, 128, 128)).shape == (1, 112, 8, 8)
