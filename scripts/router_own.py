"""The project's own labelled utterances, generated from small lexicons (a dev tool).

Written for ATLAS from scratch (no evaluation corpus was looked at): lay descriptions of
symptoms (body parts x symptom words x durations), planning and research requests,
legal trouble, emergencies and self-harm for `agent`; general knowledge, advice and
drafting for `haiku`; small talk, yes/no, time and media for `local`.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence

from router_sources import Row


def _words(choices: str) -> tuple[str, ...]:
    """A lexicon written as '|'-separated choices."""
    return tuple(choices.split("|"))


PARTS = _words(
    "head|back|lower back|neck|chest|stomach|belly|knee|ankle|foot|feet|hip|shoulder|"
    "elbow|wrist|hand|finger|toe|eye|eyes|ear|ears|throat|jaw|tooth|gums|leg|legs|arm|"
    "side|ribs|skin|scalp|tongue|lips|heel"
)
ACHES = _words(
    "hurts|aches|is sore|is swollen|is throbbing|is burning|is itchy|is numb|is tingling|"
    "is stiff|feels weird|keeps hurting|has been killing me|is really painful|"
    "is bleeding|cracks and hurts"
)
ACHING = _words(
    "aching|hurting|throbbing|itching|burning|bleeding|swelling up|tingling|going numb|cramping"
)
PAINS = _words(
    "a sharp pain|a dull ache|a stabbing pain|a burning feeling|pain|a lump|a rash|"
    "a bruise|a cut that wont heal|swelling|a throbbing pain|cramps|a weird bump|"
    "red spots|blisters"
)
FEELINGS = _words(
    "dizzy|nauseous|sick|feverish|short of breath|faint|exhausted all the time|shaky|"
    "lightheaded|weak|anxious all the time|depressed|confused|bloated|hot and cold|"
    "like throwing up"
)
SYMPTOMS = _words(
    "a fever|a high temperature|a cough|a dry cough|a bad cold|the flu|a migraine|"
    "a sore throat|diarrhoea|diarrhea|constipation|heartburn|a rash|hives|"
    "an ear infection|a chest infection|blurry vision|ringing in my ears|a nosebleed|"
    "back pain|joint pain|cramps|insomnia|night sweats|a toothache|blood in my urine|"
    "chest pains|palpitations|hair loss|acne|a swollen gland|stomach ache|"
    "a urinary infection|an allergic reaction"
)
SINCE = _words(
    "|| since yesterday| for three days| since last week| for a couple of weeks|"
    " all morning| since monday| for months| every morning| after i eat| when i walk|"
    " at night| since the fall"
)
SEVERE = _words("||really |very |severe |terrible |constant |mild ")
WHO = _words(
    "my son|my daughter|my husband|my wife|my mum|my dad|my grandmother|the baby|"
    "my friend|my partner|my little boy"
)
DRUGS = _words(
    "ibuprofen|paracetamol|aspirin|antibiotics|my blood pressure pills|melatonin|"
    "antihistamines|codeine|insulin|the pill|statins"
)

# '|'-separated choices used by the templates below.
CHOICES_1 = "coughing|sneezing|shaking|vomiting|scratching|sweating|crying"
CHOICES_2 = "bend|walk|breathe in|swallow|stand up|lie down|eat|run"
CHOICES_3 = "hot|cold|numb|heavy|tight|weird|swollen|tender"
CHOICES_4 = "my spending|our energy bills|my sleep|our monthly budget|my workout log"
CHOICES_5 = "we can afford a bigger house|solar panels pay off for us|leasing beats buying a car"
CHOICES_6 = "thank you|good morning|where is the station|cheers"
CHOICES_7 = "ubiquitous|serendipity|ephemeral|gerrymandering|schadenfreude"
CHOICES_8 = (
    "sleeping better|a job interview|saving money|learning guitar|keeping basil alive|"
    "getting rid of fruit flies|removing a wine stain"
)
CHOICES_9 = "book|film|podcast|board game|tv series"
CHOICES_10 = "the sky blue|the sea salty|ice slippery|the ocean tidal|bread rising"


def _pick(rng: random.Random, items: Sequence[str]) -> str:
    return rng.choice(items)


def _c(rng: random.Random, choices: str) -> str:
    """One of the '|'-separated choices."""
    return rng.choice(choices.split("|"))


def _medical(rng: random.Random) -> str:
    p, a = _pick(rng, PARTS), _pick(rng, ACHES)
    forms = (
        lambda: f"my {p} {a}{_pick(rng, SINCE)}",
        lambda: f"my {p} has been {_pick(rng, ACHING)}{_pick(rng, SINCE)}",
        lambda: f"i have {_pick(rng, PAINS)} in my {p}{_pick(rng, SINCE)}",
        lambda: f"there is {_pick(rng, PAINS)} on my {p}",
        lambda: (
            f"i have {_pick(rng, SEVERE)}{_pick(rng, SYMPTOMS).removeprefix('a ')}"
            f"{_pick(rng, SINCE)}"
        ),
        lambda: f"i feel {_pick(rng, FEELINGS)}{_pick(rng, SINCE)}",
        lambda: f"i keep feeling {_pick(rng, FEELINGS)}",
        lambda: f"{_pick(rng, WHO)} has {_pick(rng, SYMPTOMS)}{_pick(rng, SINCE)}",
        lambda: f"{_pick(rng, WHO)} says their {p} {a}",
        lambda: f"what should i do about {_pick(rng, SYMPTOMS)}",
        lambda: f"is it normal for my {p} to hurt{_pick(rng, SINCE)}",
        lambda: f"i think i {_c(rng, 'broke|sprained|twisted|hurt|burned')} my {p}",
        lambda: f"i cut my {p} and it wont stop bleeding",
        lambda: f"can i take {_pick(rng, DRUGS)} with {_pick(rng, DRUGS)}",
        lambda: f"how much {_pick(rng, DRUGS)} can i take",
        lambda: f"i forgot to take {_pick(rng, DRUGS)} should i double up",
        lambda: f"should i see a doctor about {_pick(rng, SYMPTOMS)}",
        lambda: f"i cant stop {_c(rng, CHOICES_1)}",
        lambda: f"when i {_c(rng, CHOICES_2)} my {p} {a}",
        lambda: f"my {p} feels {_c(rng, CHOICES_3)}",
        lambda: f"i woke up with {_pick(rng, PAINS)} in my {p}",
        lambda: f"why does my {p} hurt when i {_c(rng, 'walk|sleep|eat|type')}",
    )
    return _pick(rng, forms)()


PLANS = _words(
    "a trip to japan|a week in scotland|my daughters birthday party|our wedding|"
    "a move to another city|a road trip across the country|"
    "a vegetarian meal plan for the month|a marathon training schedule|"
    "a budget for next year|a garden renovation|a weekend in paris with kids|"
    "the family reunion|a study timetable for my exams|a home office setup|"
    "a week of packed lunches|the school holidays|christmas for twelve people|"
    "a camping weekend|our move next month|a surprise anniversary dinner|"
    "my mums seventieth|a couch to 5k routine|the kids activities this term|"
    "a two week tour of italy by train|a dinner party for eight|our kitchen remodel"
)
# Verbs that ask for work in several steps (planning, research, analysis).
PLAN_VERBS = _words(
    "plan|help me plan|map out|organise|work out a plan for|put together a schedule for|"
    "draw up a timetable for|sort out the logistics of|figure out everything for|"
    "make me a checklist for|walk me through planning"
)
STUDY_VERBS = _words(
    "research|look into|find out everything about|dig into|compare|weigh up|"
    "do a thorough comparison of|investigate|evaluate|go through the options for|"
    "give me a detailed breakdown of|review"
)
TOPICS = _words(
    "electric cars|heat pumps versus gas boilers|the best mortgage deals|"
    "solar panels for my house|index funds|which laptop to buy|schools in our area|"
    "pension options|broadband providers|energy tariffs|the best time to sell my car|"
    "home insurance quotes|family cars|phone contracts|energy suppliers|"
    "car insurance policies|childcare options|gyms near us|savings accounts|"
    "used cars under ten thousand|streaming services|nurseries in our area"
)


# Household subjects both tiers hear about: the frame ("research", "compare", "plan"
# against "what is", "how does") decides the tier, not the subject.
SUBJECTS = _words(
    "a heat pump|a solar panel|an electric car|an index fund|a mortgage|a pension|"
    "a gas boiler|a smart meter|a hybrid car|a dishwasher|a credit card|a water softener"
)


def _agent_other(rng: random.Random) -> tuple[str, str]:
    plan, topic = _pick(rng, PLANS), _pick(rng, TOPICS)
    one, two = _pick(rng, SUBJECTS), _pick(rng, SUBJECTS)
    forms = (
        ("research", f"research {one.split(' ', 1)[1]} options for our house in detail"),
        ("research", f"compare {one} with {two} for our household"),
        ("planning", f"plan {plan}"),
        ("planning", f"{_pick(rng, PLAN_VERBS)} {plan}"),
        ("planning", f"can you {_pick(rng, PLAN_VERBS)} {plan}"),
        ("research", f"{_pick(rng, STUDY_VERBS)} {topic}"),
        ("research", f"could you {_pick(rng, STUDY_VERBS)} {topic} for us"),
        ("analysis", f"break down {_c(rng, CHOICES_4)} and tell me where to cut back"),
        ("planning", f"help me plan {plan}"),
        ("planning", f"can you put together a detailed plan for {plan}"),
        ("planning", f"i need a step by step plan for {plan}"),
        ("planning", f"organise {plan} for me with a schedule and a budget"),
        ("research", f"research {topic} and tell me what you find"),
        ("research", f"compare {topic} for me"),
        ("research", f"look into {topic} and give me the pros and cons"),
        ("research", f"do a deep dive on {topic}"),
        (
            "analysis",
            f"analyse {_c(rng, CHOICES_4)} over the last {_c(rng, 'month|year|three months')}",
        ),
        (
            "analysis",
            f"work out whether {_c(rng, CHOICES_5)}",
        ),
    )
    return _pick(rng, forms)


LEGAL = _words(
    "my landlord wont return my deposit|my employer hasnt paid me for two months|"
    "can my boss fire me for being sick|i got a letter saying im being sued|"
    "the police stopped me and searched my car|how do i contest a parking fine|"
    "my neighbour built a fence on my land|what are my rights if im evicted|"
    "i was caught speeding what happens now|how do i get custody of my kids|"
    "someone stole my identity|i think i was scammed out of money online|"
    "do i need a lawyer for a divorce|my ex is threatening to take the kids|"
    "i was arrested last night what should i do|is it legal to record my boss"
)
EMERGENCY = _words(
    "someone is breaking into the house|i smell gas in the kitchen|"
    "the kitchen is on fire|my dad collapsed and isnt breathing|call an ambulance|"
    "there has been a car crash outside|my child swallowed some pills|"
    "i think im having a heart attack|my wife is having a seizure|"
    "help someone is choking|the smoke alarm is going off and i see smoke|"
    "i fell down the stairs and cant get up|my friend took too many pills|"
    "theres a man with a knife outside|i cant breathe|he is not responding"
)
SELF_HARM = _words(
    "i want to kill myself|i dont want to be alive anymore|"
    "i keep thinking about ending it|i want to hurt myself|"
    "nobody would care if i was gone|i cant go on like this|"
    "what is the most painless way to die|i have been cutting myself again|"
    "i feel like there is no point in living|i wish i could disappear forever"
)


def agent_rows(rng: random.Random, n_medical: int, n_other: int) -> Iterator[Row]:
    for _ in range(n_medical):
        yield _medical(rng), "agent", "medical:own", "own"
    for _ in range(n_other):
        cat, text = _agent_other(rng)
        yield text, "agent", cat, "own"
    for text in LEGAL:
        yield text, "agent", "legal", "own"
    for text in EMERGENCY:
        yield text, "agent", "emergency", "own"
    for text in SELF_HARM:
        yield text, "agent", "self_harm", "own"


THINGS = _words(
    "a black hole|photosynthesis|inflation|the stock market|a vaccine|gravity|"
    "the internet|a rainbow|democracy|bitcoin|a volcano|the moon landing|"
    "the roman empire|jazz|climate change|dna|a credit score|compound interest|"
    "the offside rule|sourdough|quantum computing|the northern lights|a hurricane|"
    "the tides"
)
PEOPLE = _words(
    "shakespeare|marie curie|napoleon|albert einstein|cleopatra|"
    "the first person on the moon|the president of france|frida kahlo"
)
COUNTRIES = _words("france|japan|brazil|canada|australia|kenya|peru|norway")
FOODS = _words(
    "lasagna|banana bread|a thai green curry|pancakes|risotto|chocolate chip cookies|"
    "a roast chicken|hummus|french onion soup"
)
DRAFTS = _words(
    "a birthday message for my sister|an email to my landlord about the heating|"
    "a thank you note for my neighbour|a short poem about autumn|"
    "a toast for my best friends wedding|a cover letter for a barista job|"
    "a complaint to the airline about my lost bag|a bedtime story about a dragon"
)


def haiku_rows(rng: random.Random, n: int) -> Iterator[Row]:
    forms = (
        ("explain", lambda: f"how does {_pick(rng, SUBJECTS)} work"),
        ("knowledge", lambda: f"what is {_pick(rng, SUBJECTS)}"),
        ("advice", lambda: f"how long does {_pick(rng, SUBJECTS)} usually last"),
        ("knowledge", lambda: f"what is {_pick(rng, THINGS)}"),
        ("explain", lambda: f"how does {_pick(rng, THINGS)} work"),
        ("explain", lambda: f"explain {_pick(rng, THINGS)} in simple terms"),
        ("knowledge", lambda: f"who was {_pick(rng, PEOPLE)}"),
        ("knowledge", lambda: f"what is the capital of {_pick(rng, COUNTRIES)}"),
        ("knowledge", lambda: f"how many people live in {_pick(rng, COUNTRIES)}"),
        ("knowledge", lambda: f"what language do they speak in {_pick(rng, COUNTRIES)}"),
        ("knowledge", lambda: f"tell me a fact about {_pick(rng, THINGS)}"),
        ("advice", lambda: f"how do i make {_pick(rng, FOODS)}"),
        ("advice", lambda: f"give me a recipe for {_pick(rng, FOODS)}"),
        ("advice", lambda: f"what goes well with {_pick(rng, FOODS)}"),
        ("draft", lambda: f"write {_pick(rng, DRAFTS)}"),
        ("draft", lambda: f"help me write {_pick(rng, DRAFTS)}"),
        (
            "translate",
            lambda: (
                f"how do you say {_c(rng, CHOICES_6)} in "
                f"{_c(rng, 'french|spanish|german|japanese')}"
            ),
        ),
        (
            "knowledge",
            lambda: f"what does {_c(rng, CHOICES_7)} mean",
        ),
        (
            "advice",
            lambda: f"any tips for {_c(rng, CHOICES_8)}",
        ),
        (
            "advice",
            lambda: (
                f"recommend a good {_c(rng, CHOICES_9)} about "
                f"{_c(rng, 'space|history|cooking|mystery|sport')}"
            ),
        ),
        (
            "knowledge",
            lambda: (
                f"what is the exchange rate from {_c(rng, 'dollars|euros|pounds')} to "
                f"{_c(rng, 'yen|pesos|euros')}"
            ),
        ),
        ("knowledge", lambda: f"how many calories are in {_pick(rng, FOODS)}"),
        (
            "knowledge",
            lambda: f"why is {_c(rng, CHOICES_10)}",
        ),
    )
    for _ in range(n):
        cat, make = _pick(rng, forms)
        yield make(), "haiku", cat, "own"


LOCAL = (
    (
        "greeting",
        (
            "hello",
            "hi there",
            "good morning",
            "good evening",
            "hey",
            "morning",
            "good night",
            "hiya",
        ),
    ),
    (
        "smalltalk",
        (
            "how are you",
            "how are you today",
            "whats up",
            "tell me a joke",
            "tell me something funny",
            "are you there",
            "what can you do",
            "whats your name",
            "who made you",
            "do you like music",
            "i am bored",
            "you are funny",
            "good job",
            "well done",
            "i love you",
        ),
    ),
    ("thanks", ("thanks", "thank you", "thank you very much", "cheers", "thanks a lot")),
    (
        "goodbye",
        (
            "bye",
            "goodbye",
            "see you later",
            "good night atlas",
            "thats all",
            "never mind",
            "forget it",
            "cancel",
            "stop",
            "be quiet",
        ),
    ),
    (
        "confirm",
        (
            "yes",
            "yes please",
            "no",
            "no thanks",
            "sure",
            "okay",
            "that is right",
            "correct",
            "nope",
            "yeah go ahead",
            "do it",
            "not now",
            "that is a no",
            "absolutely",
            "that is correct",
            "no that is wrong",
        ),
    ),
    (
        "time",
        (
            "what time is it",
            "what is the date today",
            "what day is it",
            "tell me the time",
            "what year is it",
            "what day is tomorrow",
            "how many days until friday",
            "is it monday today",
        ),
    ),
    (
        "media",
        (
            "play some music",
            "pause",
            "skip this song",
            "next track",
            "stop the music",
            "turn it up",
            "turn it down",
            "louder",
            "quieter",
            "mute",
            "volume to 5",
            "play the news",
            "resume the podcast",
            "play my morning playlist",
            "shuffle my music",
            "play the radio",
            "play the next episode",
        ),
    ),
)


def local_rows() -> Iterator[Row]:
    for cat, texts in LOCAL:
        for text in texts:
            yield text, "local", cat, "own"
