"""Training infrastructure shared by every stage: :func:`fit` and safetensors checkpoints."""

from toolkit.training.checkpoint_io import SafetensorsCheckpointIO, load_state, save_state
from toolkit.training.fit import fit, make_trainer

__all__ = ["fit", "make_trainer", "SafetensorsCheckpointIO", "save_state", "load_state"]
