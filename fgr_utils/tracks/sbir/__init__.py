"""The fine-grained sketch-based retrieval track: find the photo a sketch was drawn from.

The notebooks ``20_sbir_train`` and ``21_sbir_figures`` call what is here. A method is one of
(``shared/reference/fgsbir_arnet.md``):

* ``triplet`` — a siamese encoder shared by both modalities, triplet margin 0.3 (the Triplet-SN row);
* ``arnet`` — ARNet Basic: two encoders, four NT-Xent terms over plain and augmented views;
* ``arnet_mstr`` — ARNet + MSTR (``mstr_impl``: ``paper_intent`` or ``as_released``).

Faithful-vs-fixed switches (``fgsbir_arnet.md`` §12), default fixed: ``arnet_compat_single_digit``
(the reader), ``normalize`` (``none`` as released / ``vit``), ``batch_sampler`` (``random`` as
released / ``unique_photo``), ``mstr_impl``, ``tie_rule`` (``optimistic`` and ``pessimistic`` are
stated), and model selection (the release keeps the best test epoch; both the best and the last
epoch are recorded).
"""
from fgr_utils.tracks.sbir.data import SbirInputs, load_dataset
from fgr_utils.tracks.sbir.evaluate import KS, protocol, summary, test_queries
from fgr_utils.tracks.sbir.figures import (attention_columns, attention_probe, attention_protocol, browser_inputs,
                                          retrieval_figure, token_variance, uniformity_table)
from fgr_utils.tracks.sbir.models import METHODS, encoders, model_from_params
from fgr_utils.tracks.sbir.run import SbirRun, trained_model
from fgr_utils.tracks.sbir.train import TrainConfig, epoch_batches, train

__all__ = [
    "SbirInputs",
    "load_dataset",
    "KS",
    "protocol",
    "summary",
    "test_queries",
    "attention_columns",
    "attention_probe",
    "attention_protocol",
    "browser_inputs",
    "retrieval_figure",
    "token_variance",
    "uniformity_table",
    "METHODS",
    "encoders",
    "model_from_params",
    "SbirRun",
    "trained_model",
    "TrainConfig",
    "epoch_batches",
    "train",
]
