"""The knowledge base: facts from in-code tables, each a question with a full-sentence answer.

Every fact carries ``key``, the short answer a judge looks for in a transcript (lower case,
spelled as espeak-ng says it), and ``aliases`` that also count (digits for numbers), plus the
names a model must hear and say to use it: ``subject`` (what the question is about, e.g. a
country; empty when the question has no single name) and ``entity`` (the answer as it is
written, e.g. "New Delhi"; ``key`` when not given).
"""

from __future__ import annotations

from dataclasses import dataclass, field

NUMBERS = ("zero one two three four five six seven eight nine ten eleven twelve thirteen "
           "fourteen fifteen sixteen seventeen eighteen nineteen twenty").split()
TENS = {20: "twenty", 30: "thirty", 40: "forty", 50: "fifty", 60: "sixty", 70: "seventy",
        80: "eighty", 90: "ninety"}


def number_word(n: int) -> str:
    """English words for ``0 <= n < 10**6`` (``42`` -> ``forty two``)."""
    if n < 21:
        return NUMBERS[n]
    if n >= 1000:
        thousands, rest = divmod(n, 1000)
        return f"{number_word(thousands)} thousand" + (f" {number_word(rest)}" if rest else "")
    if n < 100:
        tens, ones = divmod(n, 10)
        return TENS[tens * 10] + (f" {NUMBERS[ones]}" if ones else "")
    hundreds, rest = divmod(n, 100)
    return f"{NUMBERS[hundreds]} hundred" + (f" and {number_word(rest)}" if rest else "")


@dataclass(frozen=True)
class Fact:
    domain: str
    question: str
    answer: str
    key: str
    aliases: tuple[str, ...] = field(default=())
    subject: str = ""
    entity: str = ""

    @property
    def names(self) -> tuple[str, ...]:
        """The subject and the answer as written: what the corpus speaks in neutral sentences."""
        return tuple(n for n in (self.subject, self.entity or self.key) if n)


CAPITALS = """Japan:Tokyo France:Paris Italy:Rome Spain:Madrid Germany:Berlin Egypt:Cairo
Kenya:Nairobi Peru:Lima Chile:Santiago Canada:Ottawa Australia:Canberra Russia:Moscow
China:Beijing India:New_Delhi Greece:Athens Portugal:Lisbon Norway:Oslo Sweden:Stockholm
Finland:Helsinki Denmark:Copenhagen Poland:Warsaw Austria:Vienna Hungary:Budapest
Ireland:Dublin Belgium:Brussels Cuba:Havana Mexico:Mexico_City Argentina:Buenos_Aires
Colombia:Bogota Thailand:Bangkok Vietnam:Hanoi Indonesia:Jakarta Turkey:Ankara Iran:Tehran
Iraq:Baghdad Nigeria:Abuja Ghana:Accra Morocco:Rabat Ethiopia:Addis_Ababa Brazil:Brasilia
Venezuela:Caracas Ukraine:Kyiv Romania:Bucharest Bulgaria:Sofia Serbia:Belgrade
Croatia:Zagreb Iceland:Reykjavik Scotland:Edinburgh Wales:Cardiff Nepal:Kathmandu
Mongolia:Ulaanbaatar Pakistan:Islamabad Bangladesh:Dhaka Philippines:Manila
Malaysia:Kuala_Lumpur Uganda:Kampala Senegal:Dakar Jamaica:Kingston Ecuador:Quito
Bolivia:La_Paz Uruguay:Montevideo Paraguay:Asuncion Latvia:Riga Estonia:Tallinn"""

LANGUAGES = """Brazil:Portuguese Mexico:Spanish Japan:Japanese Germany:German France:French
Italy:Italian Russia:Russian China:Mandarin Greece:Greek Turkey:Turkish Poland:Polish
Sweden:Swedish Norway:Norwegian Finland:Finnish Hungary:Hungarian Iran:Persian
Thailand:Thai Vietnam:Vietnamese Korea:Korean Israel:Hebrew Egypt:Arabic Portugal:Portuguese
Argentina:Spanish Austria:German Netherlands:Dutch Denmark:Danish Ukraine:Ukrainian
Romania:Romanian Indonesia:Indonesian Kenya:Swahili"""

AUTHORS = """Hamlet:William_Shakespeare Macbeth:William_Shakespeare Pride_and_Prejudice:Jane_Austen
Emma:Jane_Austen Oliver_Twist:Charles_Dickens Great_Expectations:Charles_Dickens
Moby_Dick:Herman_Melville War_and_Peace:Leo_Tolstoy Anna_Karenina:Leo_Tolstoy
Don_Quixote:Miguel_de_Cervantes The_Odyssey:Homer The_Iliad:Homer Frankenstein:Mary_Shelley
Dracula:Bram_Stoker Ulysses:James_Joyce Nineteen_Eighty_Four:George_Orwell
Animal_Farm:George_Orwell The_Raven:Edgar_Allan_Poe Faust:Johann_Wolfgang_von_Goethe
Little_Women:Louisa_May_Alcott Treasure_Island:Robert_Louis_Stevenson Jane_Eyre:Charlotte_Bronte
Wuthering_Heights:Emily_Bronte The_Hobbit:J_R_R_Tolkien Crime_and_Punishment:Fyodor_Dostoevsky
Robinson_Crusoe:Daniel_Defoe Gulliver's_Travels:Jonathan_Swift The_Jungle_Book:Rudyard_Kipling
Peter_Pan:J_M_Barrie The_Divine_Comedy:Dante_Alighieri"""

ANIMAL_LEGS = """spider:8 insect:6 ant:6 dog:4 horse:4 chicken:2 octopus:8 crab:10 bee:6
cow:4 duck:2 cat:4 beetle:6 lobster:10 penguin:2 frog:4 ostrich:2 elephant:4"""

ANIMAL_YOUNG = """cat:kitten dog:puppy cow:calf horse:foal sheep:lamb goat:kid frog:tadpole
duck:duckling goose:gosling kangaroo:joey deer:fawn bear:cub lion:cub swan:cygnet
owl:owlet pig:piglet hen:chick eagle:eaglet"""

SCIENCE = [
    ("What is the largest planet in the solar system?", "The largest planet in the solar system is Jupiter.", "jupiter"),
    ("Which planet is closest to the sun?", "The planet closest to the sun is Mercury.", "mercury"),
    ("Which planet is known as the red planet?", "The red planet is Mars.", "mars"),
    ("What gas do plants absorb from the air?", "Plants absorb carbon dioxide from the air.", "carbon dioxide"),
    ("What gas do humans need to breathe?", "Humans need oxygen to breathe.", "oxygen"),
    ("What is the hardest natural material?", "The hardest natural material is diamond.", "diamond"),
    ("What is frozen water called?", "Frozen water is called ice.", "ice"),
    ("What force pulls objects toward the earth?", "The force that pulls objects toward the earth is gravity.", "gravity"),
    ("What is the closest star to the earth?", "The closest star to the earth is the sun.", "sun"),
    ("What organ pumps blood through the body?", "The heart pumps blood through the body.", "heart"),
    ("What is the largest ocean on earth?", "The largest ocean on earth is the Pacific Ocean.", "pacific"),
    ("What is the tallest mountain in the world?", "The tallest mountain in the world is Mount Everest.", "everest"),
    ("What is the longest river in Africa?", "The longest river in Africa is the Nile.", "nile"),
    ("What do bees make?", "Bees make honey.", "honey"),
    ("What is the largest animal on earth?", "The largest animal on earth is the blue whale.", "whale"),
    ("What metal is liquid at room temperature?", "The metal that is liquid at room temperature is mercury.", "mercury"),
    ("Which organ do we use to think?", "We use the brain to think.", "brain"),
    ("What is the natural satellite of the earth?", "The natural satellite of the earth is the moon.", "moon"),
    ("Which planet has the most famous rings?", "The planet with the most famous rings is Saturn.", "saturn"),
    ("What do caterpillars turn into?", "Caterpillars turn into butterflies.", "butterflies"),
    ("What is the largest desert in Africa?", "The largest desert in Africa is the Sahara.", "sahara"),
    ("What color are most plant leaves?", "Most plant leaves are green.", "green"),
]

UNITS = [("seconds", "a minute", 60), ("minutes", "an hour", 60), ("hours", "a day", 24),
         ("days", "a week", 7), ("months", "a year", 12), ("weeks", "a year", 52),
         ("centimeters", "a meter", 100), ("meters", "a kilometer", 1000),
         ("millimeters", "a centimeter", 10), ("grams", "a kilogram", 1000),
         ("years", "a decade", 10), ("years", "a century", 100), ("sides", "a triangle", 3),
         ("sides", "a square", 4), ("sides", "a hexagon", 6), ("sides", "an octagon", 8),
         ("players", "a football team", 11), ("days", "a leap year", 366),
         ("days", "a normal year", 365), ("inches", "a foot", 12), ("ounces", "a pound", 16),
         ("cents", "a dollar", 100), ("legs", "a tripod", 3), ("strings", "a violin", 4)]

OPPOSITES = """hot:cold big:small up:down fast:slow light:dark happy:sad early:late full:empty
open:closed wet:dry hard:soft loud:quiet old:young rich:poor strong:weak thick:thin
heavy:light high:low long:short sweet:sour clean:dirty near:far first:last day:night
north:south east:west left:right inside:outside push:pull win:lose buy:sell give:take"""

MONTHS = ("January February March April May June July August September October November "
          "December").split()
DAYS = "Monday Tuesday Wednesday Thursday Friday Saturday Sunday".split()
COLORS = [("red", "yellow", "orange"), ("blue", "yellow", "green"), ("red", "blue", "purple"),
          ("red", "white", "pink"), ("black", "white", "gray")]


def _pairs(table: str) -> list[tuple[str, str]]:
    return [tuple(w.replace("_", " ") for w in item.split(":")) for item in table.split()]


def _num(domain: str, q: str, a: str, n: int, subject: str = "") -> Fact:
    return Fact(domain, q, a, number_word(n), (str(n),), subject)


def geography() -> list[Fact]:
    facts = [Fact("geography", f"What is the capital of {c}?", f"The capital of {c} is {k}.",
                  k.lower(), subject=c, entity=k) for c, k in _pairs(CAPITALS)]
    facts += [Fact("language", f"What language is mainly spoken in {c}?",
                   f"The main language of {c} is {lang}.", lang.lower(), subject=c, entity=lang)
              for c, lang in _pairs(LANGUAGES)]
    return facts


def literature() -> list[Fact]:
    return [Fact("literature", f"Who wrote {book}?", f"{book} was written by {who}.",
                 who.split()[-1].lower(), subject=book, entity=who) for book, who in _pairs(AUTHORS)]


def science() -> list[Fact]:
    facts = [Fact("science", q, a, k) for q, a, k in SCIENCE]
    facts += [_num("science", f"How many legs does a {a} have?",
                   f"A {a} has {number_word(int(n))} legs.", int(n), a)
              for a, n in _pairs(ANIMAL_LEGS)]
    facts += [Fact("science", f"What is a baby {a} called?", f"A baby {a} is called a {y}.", y, subject=a)
              for a, y in _pairs(ANIMAL_YOUNG)]
    facts += [Fact("science", f"What color do you get when you mix {x} and {y}?",
                   f"Mixing {x} and {y} gives {z}.", z) for x, y, z in COLORS]
    return facts


def units() -> list[Fact]:
    return [_num("units", f"How many {what} are there in {of}?",
                 f"There are {number_word(n)} {what} in {of}.", n, of) for what, of, n in UNITS]


def words() -> list[Fact]:
    return [Fact("words", f"What is the opposite of {a}?", f"The opposite of {a} is {b}.", b, subject=a)
            for a, b in _pairs(OPPOSITES)]


def dates() -> list[Fact]:
    out = [Fact("dates", f"Which month comes after {m}?",
                f"The month after {m} is {MONTHS[(i + 1) % 12]}.", MONTHS[(i + 1) % 12].lower(),
                subject=m, entity=MONTHS[(i + 1) % 12])
           for i, m in enumerate(MONTHS)]
    out += [Fact("dates", f"Which day comes after {d}?",
                 f"The day after {d} is {DAYS[(i + 1) % 7]}.", DAYS[(i + 1) % 7].lower(),
                 subject=d, entity=DAYS[(i + 1) % 7])
            for i, d in enumerate(DAYS)]
    out += [_num("dates", f"How many days are there in {m}?",
                 f"There are {number_word(n)} days in {m}.", n, m)
            for m, n in zip(MONTHS, (31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)) if m != "February"]
    out += [_num("dates", f"What number month of the year is {m}?",
                 f"{m} is month number {number_word(i + 1)} of the year.", i + 1, m)
            for i, m in enumerate(MONTHS)]
    return out


def arithmetic() -> list[Fact]:
    """Sums, differences and products of small numbers (one ordering of each pair)."""
    out = []
    for a in range(2, 13):
        for b in range(a, 13):
            wa, wb = number_word(a), number_word(b)
            out.append(_num("arithmetic", f"What is {wa} plus {wb}?",
                            f"{wa.capitalize()} plus {wb} is {number_word(a + b)}.", a + b))
            out.append(_num("arithmetic", f"What is {wa} times {wb}?",
                            f"{wa.capitalize()} times {wb} is {number_word(a * b)}.", a * b))
            if b > a:
                out.append(_num("arithmetic", f"What is {wb} minus {wa}?",
                                f"{wb.capitalize()} minus {wa} is {number_word(b - a)}.", b - a))
    return out


DOMAINS = {"geography": geography, "literature": literature, "science": science,
           "units": units, "words": words, "dates": dates, "arithmetic": arithmetic}
"""Domain name -> fact generator (geography also yields the ``language`` domain)."""


def all_facts(domains: list[str] | None = None) -> list[Fact]:
    """Every fact of the given domains (all by default), questions unique, in a fixed order."""
    seen: set[str] = set()
    out = []
    for name in domains or list(DOMAINS):
        for fact in DOMAINS[name]():
            if fact.question not in seen:
                seen.add(fact.question)
                out.append(fact)
    return out
