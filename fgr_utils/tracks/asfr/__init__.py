"""The attribute-specific fashion retrieval track: rank items by one named attribute of the query.

The notebooks ``30_asfr_train`` and ``31_asfr_eval`` call what is here. The task: given an image and
a named attribute (sleeve length, collar design...), rank the candidates by that attribute alone. A
method is one of (``shared/reference/asfr_rpf_agman.md``):

* ``global`` -- an attribute-agnostic embedding trained on the same triplets: the floor;
* ``asen_v2`` -- ASENet_V2, attribute-aware spatial and channel attention (the AG-MAN baseline);
* ``agman`` -- AG-MAN: multi-level features, the improved attention, a learned mask and the
  attribute-type classification loss;
* ``rpf`` -- RPF: a region branch (stage s1), then a patch branch on an attention-guided crop,
  trained jointly with E-InfoNCE (stage s2), fused with weight beta at test time.

Faithful-vs-fixed switches, default fixed: ``loss_weighting`` (AG-MAN: ``equal`` as released, where
the uncertainty weights never reach the optimiser, or ``learned``), ``val_flip`` (RPF s1 as
released: validation images randomly flipped), ``agman_cls`` (the released Zappos script builds the
attribute-type loss and never uses it).

When the trunk's lower part is a frozen pretrained network (the demo), its outputs are computed once
per image (and per mirror image for training) and cached on disk, shared by every method's run; an
epoch then costs only the trainable layers. RPF's crops are cut from the current region attention at
every step, as the paper does; their frozen-stem features are kept per (image, box), so a crop is
re-encoded only when its box moves.
"""
from fgr_utils.tracks.asfr.data import load_dataset
from fgr_utils.tracks.asfr.evaluate import evaluate_split, log_metrics, summary, zappos_metrics
from fgr_utils.tracks.asfr.features import Crops, Features, asfr_inputs, cache_dir
from fgr_utils.tracks.asfr.figures import attention_maps, browser_inputs, query_picks, retrieval_figure
from fgr_utils.tracks.asfr.heads import METHODS
from fgr_utils.tracks.asfr.models import ModelConfig, build
from fgr_utils.tracks.asfr.run import AsfrRun, trained_model
from fgr_utils.tracks.asfr.train import TrainConfig, fixed_triplets, sample_triplets, selection_metric, train

__all__ = [
    "load_dataset",
    "evaluate_split",
    "log_metrics",
    "summary",
    "zappos_metrics",
    "Crops",
    "Features",
    "asfr_inputs",
    "cache_dir",
    "attention_maps",
    "browser_inputs",
    "query_picks",
    "retrieval_figure",
    "METHODS",
    "ModelConfig",
    "build",
    "AsfrRun",
    "trained_model",
    "TrainConfig",
    "fixed_triplets",
    "sample_triplets",
    "selection_metric",
    "train",
]
