"""The printed-fabric track: find the fabrics that contain a query motif (a sub-element).

Stage 1 learns *category-level* similarity (a motif and the fabrics that contain a motif of its
category) and ranks the whole database by a global descriptor; stage 2 learns *instance-level* "this
fabric contains this very motif" and re-ranks the stage-1 shortlist with query-guided attention over
cached candidate tokens. The notebooks ``10_fabric_global``, ``11_fabric_rerank`` and
``12_landmarks`` call what is here (``shared/reference/fabric_qga.md``).

Faithful-vs-fixed switches (``fabric_qga.md`` §5), default fixed: ``anchor_index_bug`` (the released
stage-2 loss compares sample 0's anchor with the whole batch), ``rgba_background`` (``raw`` drops
alpha as ``convert('RGB')`` did; ``white`` composites), ``resize`` (``squash`` as released, or
``keep_aspect``), ``fuse_global`` (None ranks the shortlist by the stage-2 score alone, as released; a
weight λ fuses λ·s_global + (1-λ)·s_qga), ``query_size`` (None: the query squashed to the fabric's size,
as released).
"""
from fgr_utils.tracks.fabric.data import fabric_inputs, inputs_from_params, load_dataset, load_landmark_set
from fgr_utils.tracks.fabric.figures import browser_inputs, encoder_attention, retrieval_figure
from fgr_utils.tracks.fabric.landmarks import (landmark_aps, landmark_global, landmark_protocol, landmark_query_ids,
                                               landmark_rerank, landmark_table)
from fgr_utils.tracks.fabric.models import backbone_state, global_from_params, qga_from_params
from fgr_utils.tracks.fabric.retrieval import (candidate_tokens, evaluate_rankings, global_descriptors, id_rankings,
                                               load_stage1, protocol_of, query_cls, query_values, rerank_queries,
                                               rerank_rankings,
                                               rerank_stage1, save_stage1, search_index)
from fgr_utils.tracks.fabric.run import FabricRun, stage1_attention, trained_global, trained_qga
from fgr_utils.tracks.fabric.train import TrainConfig, train_global, train_qga

__all__ = [
    "fabric_inputs",
    "inputs_from_params",
    "load_dataset",
    "load_landmark_set",
    "browser_inputs",
    "encoder_attention",
    "retrieval_figure",
    "landmark_aps",
    "landmark_global",
    "landmark_protocol",
    "landmark_query_ids",
    "landmark_rerank",
    "landmark_table",
    "backbone_state",
    "global_from_params",
    "qga_from_params",
    "candidate_tokens",
    "evaluate_rankings",
    "global_descriptors",
    "id_rankings",
    "load_stage1",
    "protocol_of",
    "query_cls",
    "query_values",
    "rerank_queries",
    "rerank_rankings",
    "rerank_stage1",
    "save_stage1",
    "search_index",
    "FabricRun",
    "stage1_attention",
    "trained_global",
    "trained_qga",
    "TrainConfig",
    "train_global",
    "train_qga",
]
