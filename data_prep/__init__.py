"""Dataset generation (Pascal3D+ layout) and CAD-mesh preparation for symnb.

Modules: :mod:`data_prep.shapes` (CAD sources), :mod:`data_prep.cad` (cleanup to a watertight,
symmetric, canonical mesh), :mod:`data_prep.render_views` (PyTorch3D rendering of views) and
:mod:`data_prep.make_dataset` (the CLI writing the dataset).
"""
