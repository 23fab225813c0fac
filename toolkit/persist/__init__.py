"""Saving and loading what the stages train: one module per kind of saved thing.

- :mod:`~toolkit.persist.components`: the trained speech tokenizer and decoder.
- :mod:`~toolkit.persist.split_model`: an LM stage's split model.
- :mod:`~toolkit.persist.tensor_checks`: tensor names, shapes and dtypes against the model.

Folder completeness (``COMPLETE.json``) is :mod:`toolkit.run_folder`'s; Lightning training
checkpoints are :mod:`toolkit.training.checkpoint_io`'s; the whole model (export folders, run
folders, ``toolkit.load``) is :mod:`toolkit.loading`'s.
"""
