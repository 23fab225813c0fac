"""MOSS-Speech checkpoints (``fnlp/MOSS-Speech``) as a trunk (``moss_speech``) and a splitter
(``moss_split``), so the released model loads, fine-tunes and exports back:

    trunk = toolkit.build("trunk", "moss_speech", checkpoint="path/to/MOSS-Speech")
    model = toolkit.build("splitter", "moss_split", trunk=trunk)
"""

from plugins.moss_speech.split import MossSplitModel
from plugins.moss_speech.text import SYSTEM_PROMPTS, MossTextTokenizer
from plugins.moss_speech.trunk import MossSpeechTrunk

__all__ = ["MossSpeechTrunk", "MossSplitModel", "MossTextTokenizer", "SYSTEM_PROMPTS"]
