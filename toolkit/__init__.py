"""MOSS-style true speech-to-speech language models: components, recipes and training.

Public API::

    import toolkit
    toolkit.available()                       # installed plugins
    trunk = toolkit.build("trunk", "llama", checkpoint="smollm2-135m-instruct")
"""

from toolkit.errors import PluginError, RecipeError, ToolkitError
from toolkit.registry import API_VERSION, available, build, register

__version__ = "0.1.0"
__all__ = ["API_VERSION", "available", "build", "register", "ToolkitError", "RecipeError",
           "PluginError", "__version__"]
