"""MOSS-style true speech-to-speech language models: components, recipes and training.

Public API::

    import toolkit
    toolkit.available()                       # installed plugins
    trunk = toolkit.build("trunk", "llama", checkpoint="smollm2-135m-instruct")
"""

from toolkit.errors import PluginError, RecipeError, ToolkitError
from toolkit.registry import API_VERSION, available, build, register


def load(path, stage=None):  # noqa: ANN001, ANN201 - thin lazy wrapper, see toolkit.loading.load
    """Load a trained speech-to-speech model from an export folder or a run folder (``stage``:
    export, sft, stage2, stage1 or latest; see :func:`toolkit.loading.load`). A damaged model
    is a one-line :class:`ToolkitError`, never silently replaced by another stage."""
    from toolkit.loading import load as _load

    return _load(path, stage)


__version__ = "0.1.0"
__all__ = ["API_VERSION", "available", "build", "load", "register", "ToolkitError", "RecipeError",
           "PluginError", "__version__"]
