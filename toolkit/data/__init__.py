"""The data pipeline: audio I/O, manifests, espeak-ng synthesis, token-budget sampling,
resumable loaders, token caches and a LightningDataModule.

Submodules are imported on use (``from toolkit.data.audio import load_audio``) so that
reading a manifest does not import Lightning.
"""
