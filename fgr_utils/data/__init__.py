"""Datasets: the registry (``registry``), downloads and checks (``download``), synthetic stand-ins (``synth``).

Nothing is imported here, so ``import fgr_utils.data`` stays cheap; import the submodule you need.
"""
