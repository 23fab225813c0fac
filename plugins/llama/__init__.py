"""The ``llama`` trunk plugin: Llama/Mistral/Qwen2/Qwen3 decoders from Hugging Face folders or GGUF."""

from plugins.llama.config import LlamaConfig, parse_config
from plugins.llama.model import LlamaTrunk

__all__ = ["LlamaTrunk", "LlamaConfig", "parse_config"]
