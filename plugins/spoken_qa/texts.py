"""General sentences (for speech pre-training) and small talk (for dialogues), from a grammar.

Nothing here states a fact of the knowledge base, so sentences never leak test answers.
"""

from __future__ import annotations

import random

SUBJECTS = ("the old man|a young girl|my neighbour|the teacher|our dog|the little cat|a tall "
            "woman|the farmer|my brother|the children|a quiet boy|the baker|her friend|the "
            "driver|a small bird|the doctor|my aunt|the new student|the painter|an old sailor"
            ).split("|")
VERBS = ("walked|ran|looked|waited|sang|danced|smiled|worked|slept|read a book|wrote a "
         "letter|played a game|found a coin|ate lunch|drank some tea|painted a picture|fixed "
         "the fence|opened the window|closed the door|carried a basket").split("|")
PLACES = ("in the garden|by the river|at the station|near the old bridge|in the kitchen|on "
          "the hill|under the tree|at the market|in the library|on the beach|behind the "
          "house|at the corner shop|in the small village|along the road|in the park").split("|")
TIMES = ("this morning|last night|on Sunday|after dinner|before breakfast|in the afternoon|"
         "every day|at noon|in the evening|yesterday|once again|for a while").split("|")
ADVERBS = "slowly|happily|quietly|carefully|quickly|patiently|calmly|proudly".split("|")
OPENERS = ("I think that|She told me that|We heard that|It seems that|Everyone knows that|"
           "He said that|They noticed that").split("|")
WEATHER = ("The sky was clear and blue|It rained all through the night|A cold wind blew from "
           "the sea|The sun was warm on the grass|Snow covered the quiet streets|Thick fog "
           "rolled over the fields|The air smelled of fresh bread").split("|")


def sentence(rng: random.Random) -> str:
    """One plain English sentence."""
    subj, verb, place, time = (rng.choice(SUBJECTS), rng.choice(VERBS), rng.choice(PLACES),
                               rng.choice(TIMES))
    shape = rng.randrange(5)
    if shape == 0:
        text = f"{subj} {verb} {place} {time}"
    elif shape == 1:
        text = f"{time}, {subj} {rng.choice(ADVERBS)} {verb} {place}"
    elif shape == 2:
        text = f"{rng.choice(OPENERS)} {subj} {verb} {place}"
    elif shape == 3:
        text = f"{rng.choice(WEATHER)}, so {subj} {verb} {place}"
    else:
        text = f"{subj} {verb} {time}, and then {rng.choice(SUBJECTS)} {rng.choice(VERBS)}"
    return text[0].upper() + text[1:] + "."


def sentences(rng: random.Random, count: int) -> list[str]:
    """``count`` distinct sentences (the grammar has far more than any corpus needs)."""
    seen: dict[str, None] = {}
    while len(seen) < count:
        seen.setdefault(sentence(rng), None)
    return list(seen)


TRAIN_CARRIERS = ["The next word is {}.", "Please write down {}.", "She said {} twice.",
                  "Our lesson today was about {}.", "I read the word {} on a sign.",
                  "He asked me to spell {}.", "{} was on the list.", "They kept talking about {}."]
"""Neutral sentences that carry one name (of a country, a book, a number...) and state no fact."""
HELD_OUT_CARRIERS = ["Can you say {} again?", "The card in my hand says {}."]
"""Carriers only held-out speech uses, so the hearing measure is not a memorised sentence."""

GREETINGS = [("Hello, can you help me with a question?", "Of course. What would you like to know?"),
             ("Hi there.", "Hello! How can I help you today?"),
             ("Good morning.", "Good morning! What can I do for you?"),
             ("I have a quick question.", "Sure, go ahead."),
             ("Can I ask you something?", "Yes, please ask.")]
CLOSINGS = [("Thank you very much.", "You are welcome."),
            ("Thanks, that was helpful.", "I am glad I could help."),
            ("Great, goodbye.", "Goodbye, have a nice day."),
            ("That is all for now.", "All right. Talk to you soon.")]

SYSTEM_PROMPTS = {
    "s2s": "You are a helpful voice assistant. Listen to the user and answer in speech.",
    "s2t": "You are a helpful assistant. Listen to the user and answer in text.",
    "t2s": "You are a helpful voice assistant. Read the user's message and answer in speech.",
    "t2t": "You are a helpful assistant. Answer in text.",
}
