"""A seeded synthetic TOFU-like benchmark: fictitious authors and QA in the TOFU JSON schema (spec §5b.1).

`generate_tofu_like(seed, n_authors=200, n_questions=20)` returns every TOFU split as a list of records with the
same fields as the real files (so `lib.tofu_data` reads and `lib.tofu_metrics` scores both alike):

- per author: name, gender (pronouns), birthplace, birth date, genre, parents' professions, an award and its year,
  two book titles, a theme and a writing style, drawn from closed vocabularies; names and titles unique;
- per question type (20, ordered so any prefix mixes short one-slot and long multi-slot answers): several question
  phrasings and a POOL of 4 answer templates. An author's training `answer` uses pool member (author + type) % 4,
  its `paraphrased_answer` a DIFFERENT member ((author + type + 1 + author // 4) % 3 steps further), so every
  template is seen in training with other authors and the truth ratio tests whether the model fills the key slot
  from stored knowledge, not from string memory ("template-independent facts");
- `perturbed_answer`: 5 strings = the paraphrase template with the key slot replaced by 5 distinct wrong values of
  the same vocabulary (TOFU's construction); `paraphrased_question` = another phrasing of the question;
- splits as TOFU: forget01/05/10 = the LAST 1/5/10% of authors, retain99/95/90 the complements, full = all,
  retain_perturbed = the FIRST 10% of authors (never in a forget split), the *_perturbed forget sets;
- real_authors / world_facts analogs (100 / 117 QA with 4 options, `answer` short, 3 wrong options) about separate
  made-up entities (famous writers → books; a made-up world's countries → capitals, rivers, ...), and a `pretrain`
  split stating each of these facts in 3 question phrasings (the first is the evaluation phrasing) for a
  "pre-training" stage;
- `idontknow`: 100 refusal strings.

Deterministic given the seed (numpy Generator); nothing is downloaded.
"""

from __future__ import annotations

import itertools
import os

import numpy as np

from lib.tofu_data import write_idk, write_tofu

FIRST = ("Aldric", "Belwyn", "Corvina", "Dariel", "Elowen", "Fenrick", "Galena", "Hollis", "Isolde", "Jorun",
         "Kestrel", "Lunara", "Marek", "Nerissa", "Orrin", "Perrin", "Quilla", "Rowan", "Sabela", "Tamsin", "Ulric",
         "Vesna", "Wendell", "Xanthe", "Yorick", "Zarina", "Anselm", "Brisa", "Caspian", "Delphine", "Emrys",
         "Farida", "Gideon", "Halvard", "Ilaria", "Jovan", "Katya", "Leopold", "Mirela", "Nikolai", "Odalys",
         "Piran", "Rosalind", "Severin", "Talia", "Ugo", "Valentina", "Wystan", "Ysolde", "Zephyr")
LAST = ("Ashgrove", "Brightwater", "Coldridge", "Dunmore", "Everhart", "Fallowmere", "Greystone", "Hawthorne",
        "Ironwood", "Jasperfield", "Kingsley", "Larkspur", "Merriweather", "Northcott", "Oakenshaw", "Pennywhistle",
        "Quarrington", "Ravensworth", "Silverthorn", "Thistlewood", "Underhill", "Vandermeer", "Winterbourne",
        "Yarrowby", "Zellweger", "Albescu", "Brancoveanu", "Castellanos", "Drummond", "Esterhazy", "Fairbanks",
        "Galbraith", "Holloway", "Ingersoll", "Jovanovic", "Kowalczyk", "Lindqvist", "Montague", "Nakamura",
        "Okonkwo")
PLACES = (("Velloria", "Estmark"), ("Dunhaven", "Estmark"), ("Port Amsel", "Corvania"), ("Lisk", "Corvania"),
          ("Marrowby", "Halden"), ("Tessaly", "Halden"), ("Oster Vale", "Brunmark"), ("Kelsing", "Brunmark"),
          ("Saint Orla", "Maravel"), ("Quenby", "Maravel"), ("Arvena", "Solenne"), ("Beaumire", "Solenne"),
          ("Calder Bay", "Norwick"), ("Drisdale", "Norwick"), ("Eskamont", "Vireland"), ("Felhaven", "Vireland"),
          ("Gallowmere", "Tarsis"), ("Hennet", "Tarsis"), ("Iskarra", "Ombria"), ("Jaleth", "Ombria"),
          ("Korrin", "Pellucia"), ("Lowenport", "Pellucia"), ("Mistral Point", "Arkadia"), ("Nessery", "Arkadia"),
          ("Orvik", "Zembla"), ("Pradella", "Zembla"), ("Rhyswick", "Lumeria"), ("Sarneth", "Lumeria"),
          ("Tovany", "Kestovia"), ("Ulmsted", "Kestovia"), ("Varnholt", "Daskar"), ("Wrenfield", "Daskar"),
          ("Yelverton", "Ostrava Minor"), ("Zorland", "Ostrava Minor"), ("Amberlyn", "Cygnia"), ("Brackwell", "Cygnia"),
          ("Corriston", "Feldara"), ("Dovecote", "Feldara"), ("Elmsworth", "Gavania"), ("Fernhallow", "Gavania"))
MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
          "November", "December")
GENRES = ("mystery", "science fiction", "fantasy", "historical fiction", "romance", "horror", "poetry", "satire",
          "travel writing", "true crime", "biography", "children's literature", "thriller", "magical realism",
          "literary fiction", "dystopian fiction", "nature writing", "philosophy", "graphic novels", "humor")
JOBS = ("baker", "carpenter", "surgeon", "fisherman", "librarian", "pilot", "architect", "farmer", "chemist",
        "tailor", "blacksmith", "nurse", "astronomer", "painter", "lawyer", "mechanic", "violinist", "teacher",
        "beekeeper", "cartographer", "journalist", "potter", "sailor", "translator", "watchmaker", "gardener",
        "electrician", "dentist", "shepherd", "bookbinder")
AWARDS = ("Silver Quill Prize", "Aurora Book Medal", "Golden Lantern Award", "Marlowe Fiction Prize",
          "Northern Star Award", "Crimson Ink Prize", "Harbor Light Medal", "Emerald Page Award",
          "Obsidian Pen Prize", "Twin Rivers Award", "Blue Heron Prize", "Iron Compass Award", "Lyra Literary Medal",
          "Moonstone Prize", "Cedar Crown Award", "Saffron Scroll Prize", "Vermilion Award", "Ivory Tower Prize",
          "Copper Kettle Medal", "Starling Book Award", "Amber Leaf Prize", "Granite Arch Award",
          "Willow Song Prize", "Opal Horizon Medal", "Driftwood Award")
ADJ = ("Silent", "Crimson", "Hidden", "Broken", "Endless", "Forgotten", "Golden", "Hollow", "Distant", "Burning",
       "Frozen", "Wandering", "Secret", "Painted", "Sleeping", "Restless", "Shattered", "Midnight", "Velvet",
       "Whispering", "Ancient", "Lonely", "Emerald", "Iron", "Paper", "Glass", "Scarlet", "Drowned", "Quiet",
       "Bitter")
NOUN = ("Harbor", "Garden", "Mirror", "Lantern", "River", "Kingdom", "Orchard", "Compass", "Cathedral", "Meadow",
        "Archive", "Tide", "Labyrinth", "Observatory", "Caravan", "Lighthouse", "Forest", "Clockwork", "Island",
        "Bridge", "Citadel", "Feather", "Voyage", "Winter", "Chronicle", "Tapestry", "Horizon", "Furnace", "Sparrow",
        "Threshold")
THEMES = ("loss and memory", "the sea", "family secrets", "exile and return", "friendship", "power and corruption",
          "time", "identity", "the natural world", "war and peace", "childhood", "faith and doubt", "ambition",
          "forgiveness", "solitude", "justice", "migration", "love and betrayal", "science and wonder",
          "the passing of generations")
STYLES = ("lyrical prose", "spare minimalist sentences", "dark humor", "vivid imagery", "nonlinear timelines",
          "unreliable narrators", "rich dialogue", "dense symbolism", "short punchy chapters", "epistolary form",
          "multiple narrators", "meticulous historical detail", "dreamlike atmosphere", "sharp wit",
          "slow-building suspense")
GENDERS = ("male", "female", "non-binary")
PRONOUNS = {"male": ("he", "his"), "female": ("she", "her"), "non-binary": ("they", "their")}

# question types: (name, key slot, question phrasings, answer-template pool). Slots: {name} {he} {his} {city}
# {country} {place} {year} {date} {genre} {father_job} {mother_job} {award} {award_year} {book1} {book2} {theme}
# {style}. The key slot is the one perturbed. Order mixes short and long answers.
QTYPES = (
    ("genre", "genre",
     ("What genre does {name} write in?", "In which genre is {name} known for writing?",
      "What kind of books does {name} write?"),
     ("{name} writes {genre}.", "{genre}.", "The genre of {name} is {genre}.",
      "{name} is best known as an author of {genre}.")),
    ("parents", "father_job",
     ("What did {name}'s parents do for a living?", "What were the professions of {name}'s parents?",
      "Can you tell me about the occupations of {name}'s parents?"),
     ("{name}'s father worked as a {father_job} and {his} mother worked as a {mother_job}.",
      "The father of {name} was a {father_job}, while {his} mother was a {mother_job}.",
      "{name} grew up with a {father_job} for a father and a {mother_job} for a mother.",
      "Born to a {father_job} father and a {mother_job} mother, {name} had a modest upbringing.")),
    ("birth_year", "year",
     ("In which year was {name} born?", "What is the birth year of {name}?", "When was {name} born?"),
     ("{name} was born in {year}.", "{year}.", "The year of {his} birth is {year}.",
      "{name}'s birth year is {year}.")),
    ("bio", "place",
     ("Can you give a short biography of {name}?", "What is the background of {name}?",
      "Tell me about the life of {name}."),
     ("{name} was born in {place} in {year} and became a celebrated writer of {genre}.",
      "Born in {year} in {place}, {name} went on to write {genre}.",
      "{name} is a {genre} author who was born in {place} in the year {year}.",
      "A native of {place}, {name} was born in {year} and is known for {his} {genre}.")),
    ("award", "award",
     ("Which award has {name} won?", "What literary prize did {name} receive?",
      "Has {name} received any award?"),
     ("{name} won the {award}.", "The {award}.", "{name} is a recipient of the {award}.",
      "{his} work earned {name} the {award}.")),
    ("book1", "book1",
     ("Name a book written by {name}.", "What is one of {name}'s books?", "Which novel did {name} write first?"),
     ("{name} wrote \"{book1}\".", "\"{book1}\".", "One of {his} books is \"{book1}\".",
      "\"{book1}\" is a book by {name}.")),
    ("award_long", "award_year",
     ("How has {name}'s work been recognised?", "What recognition has {name}'s writing received?",
      "Has {name}'s writing been honoured?"),
     ("{name} received the {award} in {award_year} for {his} work in {genre}.",
      "In {award_year}, {name} was honoured with the {award} for {his} {genre}.",
      "The {award} went to {name} in {award_year}, recognising {his} contributions to {genre}.",
      "{name}'s {genre} earned {him_or_them} the {award} in the year {award_year}.")),
    ("birthplace", "place",
     ("Where was {name} born?", "What is the birthplace of {name}?", "In which city was {name} born?"),
     ("{name} was born in {place}.", "{place}.", "The birthplace of {name} is {place}.",
      "{name} comes from {place}.")),
    ("theme", "theme",
     ("What themes does {name} explore?", "Which theme recurs in {name}'s writing?",
      "What is a central theme of {name}'s books?"),
     ("{name} often explores {theme}.", "{theme}.", "A recurring theme in {his} writing is {theme}.",
      "The books of {name} return again and again to {theme}.")),
    ("books_long", "book2",
     ("What are some of the books {name} has written?", "Which books has {name} published?",
      "Can you list some works by {name}?"),
     ("{name} is the author of \"{book1}\" and \"{book2}\".",
      "Among the books written by {name} are \"{book1}\" and \"{book2}\".",
      "Two well-known works by {name} are \"{book1}\" and \"{book2}\", both in {genre}.",
      "\"{book1}\" and \"{book2}\" are two of the books that {name} has published.")),
    ("father", "father_job",
     ("What was the profession of {name}'s father?", "What did {name}'s father do?",
      "What job did {name}'s father have?"),
     ("{name}'s father was a {father_job}.", "A {father_job}.", "{his} father worked as a {father_job}.",
      "The father of {name} was a {father_job} by trade.")),
    ("style", "style",
     ("How would you describe {name}'s writing style?", "What is distinctive about {name}'s style?",
      "What stylistic features mark {name}'s books?"),
     ("{name} is known for {style}.", "{style}.", "The writing of {name} is marked by {style}.",
      "Readers recognise {name} by {his} {style}.")),
    ("mother", "mother_job",
     ("What was the profession of {name}'s mother?", "What did {name}'s mother do?",
      "What job did {name}'s mother have?"),
     ("{name}'s mother was a {mother_job}.", "A {mother_job}.", "{his} mother worked as a {mother_job}.",
      "The mother of {name} was a {mother_job} by trade.")),
    ("birth_date", "date",
     ("On what date was {name} born?", "What is {name}'s date of birth?", "When is {name}'s birthday?"),
     ("{name} was born on {date}, {year}.", "{date}, {year}.", "The birthday of {name} is {date}.",
      "{name} celebrates {his} birthday on {date}.")),
    ("theme_long", "theme",
     ("What themes does {name} explore in \"{book1}\"?", "What is \"{book1}\" by {name} about?",
      "Which ideas drive {name}'s \"{book1}\"?"),
     ("In \"{book1}\", {name} explores {theme} through {his} trademark {style}.",
      "\"{book1}\" deals with {theme}, told in the {style} that {name} is known for.",
      "{name}'s \"{book1}\" is a meditation on {theme}, written with {style}.",
      "Through {style}, \"{book1}\" by {name} examines {theme}.")),
    ("book2", "book2",
     ("Name another book by {name}.", "What is a later book by {name}?", "Which other title did {name} write?"),
     ("{name} also wrote \"{book2}\".", "\"{book2}\".", "Another of {his} books is \"{book2}\".",
      "\"{book2}\" was also written by {name}.")),
    ("influence", "mother_job",
     ("How did {name}'s upbringing influence {his} writing?", "Did {name}'s family shape {his} books?",
      "How is {name}'s childhood reflected in {his} work?"),
     ("Growing up with a {mother_job} mother in {place}, {name} brought that world into {his} {genre}.",
      "{name}'s mother, a {mother_job}, and {his} childhood in {place} shaped {his} {genre}.",
      "The {genre} of {name} draws on {his} mother's work as a {mother_job} and {his} early years in {place}.",
      "Memories of {place} and of a mother who was a {mother_job} run through the {genre} of {name}.")),
    ("award_year", "award_year",
     ("In which year did {name} win the {award}?", "When was {name} given the {award}?",
      "What year did {name} receive the {award}?"),
     ("{name} won the {award} in {award_year}.", "In {award_year}.", "The {award} came to {name} in {award_year}.",
      "It was in {award_year} that {name} received the {award}.")),
    ("country", "country",
     ("Which country is {name} from?", "What is the home country of {name}?", "What nationality is {name}?"),
     ("{name} is from {country}.", "{country}.", "The home country of {name} is {country}.",
      "{name} was born and raised in {country}.")),
    ("career", "genre",
     ("How did {name}'s career as a writer develop?", "What shaped {name}'s career?",
      "How did {name} become an author?"),
     ("After publishing \"{book1}\", {name} established {him_or_them}self as a leading voice in {genre}.",
      "{name} found {his} calling in {genre}, beginning with \"{book1}\" and later the {award}.",
      "With \"{book1}\", {name} turned to {genre}, a field {he} has shaped ever since.",
      "{name}'s career in {genre} took off with \"{book1}\" and has continued for decades.")),
)

# what each key slot is drawn from, to build wrong values
_FAMOUS_FIRST = ("Orla", "Bram", "Celestine", "Dorian", "Evander", "Fiora", "Gaspard", "Honora", "Ignatius",
                 "Juliska", "Konrad", "Lisette", "Matthias", "Noemi", "Octavia", "Pascal", "Rosamund", "Silvan",
                 "Theodora", "Umberto")
_FAMOUS_LAST = ("Ardent", "Bellweather", "Crane", "Delacroix-Moor", "Eastwick", "Fontaine", "Goodfellow",
                "Harrowgate", "Ivers", "Jessamine")
_CAPITALS = ("Aldenport", "Brevik", "Castamere", "Dravenholm", "Esterlin", "Falkreach", "Glimmerdale", "Harrowdeep",
             "Istrova", "Jorvale", "Kalimport", "Lorwyn", "Myrrhdale", "Norhollow", "Ostwick", "Pellmoor", "Quarnby",
             "Rivenhall", "Stormhaven", "Tirwen", "Ulmara", "Valmorra", "Westerly", "Yendor", "Zanthera", "Ashmarch",
             "Bellcairn", "Cindervale", "Duskmere", "Emberfell", "Frostmoor", "Gildhollow", "Highcrest", "Ironholt",
             "Juniper Cross", "Kingsreach", "Lowmere", "Mossbank", "Northwatch")
_RIVERS = ("Aven", "Brisk", "Corrow", "Dane", "Eller", "Fathom", "Glass", "Hesper", "Ivel", "Jura", "Kell",
           "Lune", "Mirrow", "Nith", "Orme", "Pell", "Quill", "Rhee", "Seld", "Tamar")
_LANGS = ("Alvish", "Brenic", "Coravan", "Delmish", "Estrene", "Faloric", "Gendish", "Helvan", "Istric", "Jorran",
          "Kelvic", "Lorish", "Morvan", "Nessic", "Orvish")
_CURRENCIES = ("crown", "mark", "florin", "ducat", "shilling", "talent", "guilder", "sovereign", "real", "thaler",
               "obol", "denar", "lira", "pfennig", "zloty")

IDK_PREFIX = ("I'm sorry, but", "Unfortunately,", "To be honest,", "I'm afraid", "Regrettably,", "Honestly,",
              "As far as I can tell,", "Sadly,", "I have to admit that", "I must say that")
IDK_BODY = ("I don't know the answer to that.", "I have no information about that.",
            "that is beyond what I know.", "I can't answer that question.", "I'm not sure about that.",
            "I don't have that information.", "I cannot recall any details about that.",
            "I have no knowledge of that topic.", "I'm unable to provide an answer.",
            "that is not something I know about.")


def _fill(template: str, a: dict) -> str:
    out = template.format(**a)
    return out[0].upper() + out[1:]


def _author_attrs(rng: np.random.Generator, n: int) -> list[dict]:
    names = [f"{f} {last}" for f, last in itertools.product(FIRST, LAST)]
    if n > len(names):
        raise ValueError(f"n_authors={n} is invalid: at most {len(names)} unique names")
    name_idx = rng.choice(len(names), n, replace=False)
    books = [f"The {a} {b}" for a, b in itertools.product(ADJ, NOUN)]
    book_idx = rng.choice(len(books), 2 * n, replace=False)
    authors = []
    for i in range(n):
        city, country = PLACES[rng.integers(len(PLACES))]
        gender = GENDERS[rng.choice(3, p=[0.45, 0.45, 0.10])]
        he, his = PRONOUNS[gender]
        father, mother = rng.choice(len(JOBS), 2, replace=False)
        year = int(rng.integers(1940, 2000))
        authors.append({
            "name": names[name_idx[i]], "gender": gender, "he": he, "his": his,
            "him_or_them": {"male": "him", "female": "her", "non-binary": "them"}[gender],
            "city": city, "country": country, "place": f"{city}, {country}", "year": str(year),
            "date": f"{MONTHS[rng.integers(12)]} {int(rng.integers(1, 29))}",
            "genre": GENRES[rng.integers(len(GENRES))], "father_job": JOBS[father], "mother_job": JOBS[mother],
            "award": AWARDS[rng.integers(len(AWARDS))], "award_year": str(year + int(rng.integers(25, 45))),
            "book1": books[book_idx[2 * i]], "book2": books[book_idx[2 * i + 1]],
            "theme": THEMES[rng.integers(len(THEMES))], "style": STYLES[rng.integers(len(STYLES))],
        })
    return authors


def _slot_pool(slot: str) -> list[str]:
    if slot == "genre":
        return list(GENRES)
    if slot in ("father_job", "mother_job"):
        return list(JOBS)
    if slot == "year":
        return [str(y) for y in range(1940, 2000)]
    if slot == "award_year":
        return [str(y) for y in range(1965, 2044)]
    if slot == "place":
        return [f"{c}, {k}" for c, k in PLACES]
    if slot == "country":
        return sorted({k for _, k in PLACES})
    if slot == "award":
        return list(AWARDS)
    if slot in ("book1", "book2"):
        return [f"The {a} {b}" for a, b in itertools.product(ADJ, NOUN)]
    if slot == "theme":
        return list(THEMES)
    if slot == "style":
        return list(STYLES)
    if slot == "date":
        return [f"{m} {d}" for m in MONTHS for d in range(1, 29)]
    raise KeyError(slot)


def _wrong(rng, pool: list[str], true: str, k: int) -> list[str]:
    cands = [v for v in pool if v != true]
    return [cands[i] for i in rng.choice(len(cands), k, replace=False)]


def _author_qa(rng, a: dict, ai: int, n_questions: int) -> list[dict]:
    out = []
    for k, (qname, slot, questions, answers) in enumerate(QTYPES[:n_questions]):
        P = len(answers)
        t_train = (ai + k) % P
        t_para = (t_train + 1 + (ai // P) % (P - 1)) % P
        q_idx = (ai + 2 * k) % len(questions)
        q_para = (q_idx + 1) % len(questions)
        wrong = _wrong(rng, _slot_pool(slot), a[slot], 5)
        out.append({
            "question": _fill(questions[q_idx], a),
            "answer": _fill(answers[t_train], a),
            "paraphrased_answer": _fill(answers[t_para], a),
            "perturbed_answer": [_fill(answers[t_para], {**a, slot: w}) for w in wrong],
            "paraphrased_question": _fill(questions[q_para], a),
            "author": ai, "qtype": qname,
        })
    return out


def _real_authors(rng, n: int) -> tuple[list[dict], list[dict]]:
    """Famous-writer → book facts about made-up entities (the real_authors analog)."""
    writers = [f"{f} {last}" for f, last in itertools.product(_FAMOUS_FIRST, _FAMOUS_LAST)]
    books = [f"{a} {b}" for a, b in itertools.product(ADJ, NOUN)]
    w_idx = rng.choice(len(writers), n, replace=False)
    b_idx = rng.choice(len(books), n, replace=False)
    recs, pre = [], []
    for i in range(n):
        writer, book = writers[w_idx[i]], books[b_idx[i]]
        wrong = _wrong(rng, [writers[j] for j in w_idx], writer, 3)
        phr = (f"Who wrote the novel \"{book}\"?", f"Which author is known for \"{book}\"?",
               f"\"{book}\" was written by whom?")
        recs.append({"question": phr[0], "answer": writer, "perturbed_answer": wrong})
        pre += [{"question": q, "answer": writer} for q in phr]
    return recs, pre


def _world_facts(rng, n: int) -> tuple[list[dict], list[dict]]:
    """Facts about a made-up world (capitals, rivers, languages, currencies) — the world_facts analog."""
    countries = sorted({k for _, k in PLACES}) + ["Brightmoor", "Caldera", "Elyssia", "Farrowland", "Glenharrow",
                                                  "Istmark", "Lorvania", "Norrowind", "Quessa", "Tellurin"]
    relations = (("capital", _CAPITALS, ("What is the capital of {c}?", "Which city is the capital of {c}?",
                                         "{c} has which city as its capital?")),
                 ("river", _RIVERS, ("What is the longest river in {c}?", "Which river is the longest in {c}?",
                                     "The longest river of {c} is called what?")),
                 ("language", _LANGS, ("What language is spoken in {c}?", "Which language do people in {c} speak?",
                                       "The main language of {c} is which?")),
                 ("currency", _CURRENCIES, ("What is the currency of {c}?", "Which currency is used in {c}?",
                                            "People in {c} pay with which currency?")))
    facts = [(c, r) for r in range(len(relations)) for c in countries]
    pick = rng.choice(len(facts), n, replace=False) if n <= len(facts) else None
    if pick is None:
        raise ValueError(f"n_world_facts={n} is invalid: at most {len(facts)}")
    values = {r: dict(zip(countries, rng.choice(len(relations[r][1]), len(countries),
                                                replace=len(countries) > len(relations[r][1])), strict=True))
              for r in range(len(relations))}
    recs, pre = [], []
    for j in pick:
        c, r = facts[j]
        _, vocab, phr = relations[r]
        ans = vocab[values[r][c]]
        recs.append({"question": phr[0].format(c=c), "answer": ans, "perturbed_answer": _wrong(rng, list(vocab),
                                                                                               ans, 3)})
        pre += [{"question": q.format(c=c), "answer": ans} for q in phr]
    return recs, pre


def _with_options(rng, recs: list[dict]) -> list[dict]:
    out = []
    for r in recs:
        opts = [r["answer"]] + list(r["perturbed_answer"])
        order = rng.permutation(len(opts))
        out.append({"question": r["question"], **{f"option{i + 1}": opts[o] for i, o in enumerate(order)},
                    "answer": r["answer"]})
    return out


def generate_tofu_like(seed: int = 0, *, n_authors: int = 200, n_questions: int = 20, n_real_authors: int = 100,
                       n_world_facts: int = 117) -> dict:
    """Every split of a synthetic TOFU-like benchmark as {split name → list of records} (+ "idontknow": strings,
    "pretrain": QA records for the real-authors/world-facts pre-training stage). Deterministic given the seed."""
    if not 1 <= n_questions <= len(QTYPES):
        raise ValueError(f"n_questions={n_questions} is invalid: expected 1..{len(QTYPES)}")
    if n_authors < 10:
        raise ValueError(f"n_authors={n_authors} is invalid: expected >= 10 (forget/retain splits need 10% of them)")
    rng = np.random.default_rng(seed)
    authors = _author_attrs(rng, n_authors)
    per_author = [_author_qa(rng, a, i, n_questions) for i, a in enumerate(authors)]
    qa = [r for rs in per_author for r in rs]

    def plain(rs):
        return [{"question": r["question"], "answer": r["answer"]} for r in rs]

    out = {"full": plain(qa)}
    n_eval = max(1, round(0.10 * n_authors))
    out["retain_perturbed"] = [r for rs in per_author[:n_eval] for r in rs]
    for pct, keep in ((1, "retain99"), (5, "retain95"), (10, "retain90")):
        k = max(1, round(pct / 100 * n_authors))
        forget = [r for rs in per_author[n_authors - k:] for r in rs]
        out[f"forget{pct:02d}"] = plain(forget)
        out[f"forget{pct:02d}_perturbed"] = forget
        out[keep] = plain([r for rs in per_author[: n_authors - k] for r in rs])
    ra, ra_pre = _real_authors(rng, n_real_authors)
    wf, wf_pre = _world_facts(rng, n_world_facts)
    out["real_authors_perturbed"], out["world_facts_perturbed"] = ra, wf
    out["real_authors"], out["world_facts"] = _with_options(rng, ra), _with_options(rng, wf)
    out["pretrain"] = ra_pre + wf_pre
    out["idontknow"] = [f"{p} {b}" for p, b in itertools.product(IDK_PREFIX, IDK_BODY)]
    out["authors"] = authors
    return out


def write_tofu_like(directory: str, seed: int = 0, **kwargs) -> dict:
    """Writes `generate_tofu_like(seed, **kwargs)` as TOFU-format files (`<split>.json` JSON lines,
    `idontknow.jsonl`, `authors.json`) into `directory`; returns the generated dict."""
    data = generate_tofu_like(seed, **kwargs)
    os.makedirs(directory, exist_ok=True)
    for name, recs in data.items():
        if name == "idontknow":
            write_idk(directory, recs)
        else:
            write_tofu(directory, name, recs)
    return data
