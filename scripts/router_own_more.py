"""The project's own templates, second round: the gaps a voice router meets (a dev tool).

Written for ATLAS from general lexicons (no evaluation file's rows were used): commands
with many verbs and phrasings (media by name, volume, players, robot vacuums and
appliances, yes/no variants) for `local`; service requests phrased as commands (find,
search, look up, book, order, rate, show me ...) for `haiku` (rule S2); lay
descriptions of symptoms in everyday words for `agent` (rule M).

Templates use the hassil-like syntax of `TemplateSampler`: (a|b) a choice, [a] optional,
{list} a value from the lexicons below (values may hold templates themselves).
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Mapping, Sequence

from router_own import PARTS, WHO
from router_sources import Row, TemplateSampler


def _w(choices: str) -> list[str]:
    return choices.split("|")


# Words for names of songs, shows, podcasts and stations nobody has heard of: the router
# must learn the verb ("play", "put on"), not the title.
LEXICON: Mapping[str, list[str]] = {
    "na": _w(
        "midnight|paper|silver|broken|golden|quiet|electric|little|wild|lonely|velvet|"
        "crimson|northern|hollow|sleepy|neon|rusty|blue|summer|distant|hidden|frozen|"
        "dancing|tired|lucky|secret|empty|burning|salty|gentle"
    ),
    "nb": _w(
        "river|lanterns|hearts|highway|garden|machine|mountain|echoes|city|rain|horses|"
        "dreams|kitchen|satellite|harbour|forest|letters|mirrors|engine|island|thunder|"
        "coffee|ghosts|sparrows|bridges|tigers|static|window|ocean|stairs"
    ),
    "pn": _w(
        "dave|maria|sam|lena|kofi|priya|tom|jess|marco|aisha|ben|olga|raj|nina|ed|"
        "mike|sara|leo|yuki|grace"
    ),
    "sn": _w(
        "miller|santos|okafor|patel|brennan|lindqvist|moreau|kowalski|nakamura|fischer|"
        "obrien|alvarez|haddad|novak|kim|jensen|costa|walsh|ivanova|baker"
    ),
    "title": [
        "{na} {nb}",
        "the {na} {nb}",
        "{pn} {sn}",
        "{nb} of {nb}",
        "{pn} and the {nb}",
        "{sn}",
        "the {sn} {kind}",
    ],
    "kind": _w(
        "podcast|show|playlist|album|song|radio|station|audiobook|episode|mix|channel|"
        "soundtrack|record|track"
    ),
    "service": _w("spotify|the radio|youtube|pandora|deezer|apple music|tidal|soundcloud"),
    "room": _w(
        "kitchen|living room|hallway|bedroom|bathroom|office|stairs|dining room|"
        "kids room|landing|porch|conservatory|utility room|loft"
    ),
    "vac": _w("vacuum|robot vacuum|hoover|roomba|robot|cleaning robot|mop|robot mop"),
    "appliance": _w(
        "dishwasher|washing machine|dryer|kettle|oven|coffee machine|fan|heater|"
        "air purifier|humidifier|dehumidifier|sprinkler|tumble dryer|slow cooker|boiler|"
        "bread maker|towel rail|electric blanket"
    ),
    "sound": _w(
        "speaker|tv|kitchen speaker|bedroom speaker|soundbar|music|radio|sound|media|"
        "living room speaker|headphones|stereo"
    ),
    "object": _w(
        "the music|the song|this song|the podcast|this podcast|the audiobook|the radio|"
        "playback|the episode|the video|the track|the album|the playlist|the show|"
        "the news|the tv|the movie|it|that"
    ),
    "yes": _w(
        "yes|yeah|yep|yup|sure|ok|okay|alright|right|correct|exactly|absolutely|"
        "definitely|of course|please do|go ahead|go for it|do it|sounds good|that works|"
        "fine|affirmative|indeed|certainly|uh huh|yes please|why not|totally|perfect"
    ),
    "no": _w(
        "no|nope|nah|no thanks|not now|not really|no way|negative|dont|please dont|"
        "never mind|forget it|cancel that|skip it|not at all|i dont think so|leave it|"
        "no need|not today|stop that|hold off|wrong|thats wrong|maybe later"
    ),
    "place": _w(
        "an italian restaurant|a sushi place|a thai takeaway|a vegan cafe|"
        "a pub with a garden|a steak house|a pizza place|a dentist|a plumber|a vet|"
        "a hairdresser|a gym|a car wash|a florist|a mechanic|a hotel|a bakery|a pharmacy|"
        "a petrol station|a cinema|a bike shop|a locksmith"
    ),
    "where": _w(
        "near me|in town|in leeds|downtown|in the city centre|nearby|in brighton|"
        "around here|in boston|in madrid|close to the station|in soho"
    ),
    "buy": _w(
        "a new phone charger|running shoes|a birthday present for my dad|flowers|"
        "concert tickets|a cheap flight to rome|a train ticket to york|a pizza|"
        "a pair of headphones|groceries|a new kettle|cinema tickets|a taxi|"
        "a car rental for the weekend|two tickets to the game|a cab to the airport"
    ),
    "rated": _w("book|film|movie|album|song|restaurant|podcast|show|series|hotel|game"),
    "stars": _w("one|two|three|four|five|1|2|3|4|5|zero|six"),
    "work": _w(
        "the tv show|the movie|the film|the book|the album|the game|the series|"
        "the documentary|the novel|the song|the cartoon|the musical|the painting"
    ),
    "city": _w("paris|glasgow|lisbon|new york|dublin|berlin|rome|oslo|cardiff"),
    "part": list(PARTS),
    "who": list(WHO),
    "days": _w(
        "since the weekend|for two days|for about a week|since friday|for three weeks|"
        "since this morning|all night|on and off for a month|since christmas|for ages|"
        "since i got back from holiday|since i started the new tablets|"
        "for the last few days|every night this week|since my fall|since yesterday evening"
    ),
    "ache": _w(
        "aching|killing me|throbbing|sore|hurting|stiff|tender|swollen|numb|tingly|itchy|"
        "burning|pounding|stabbing|cramping|twitching|weak|puffy|red and hot|clicking"
    ),
    "everyday": _w(
        "comb my hair|climb the stairs|bend down|get out of bed|pee|eat anything|cough|"
        "sneeze|lie on my side|turn my head|walk the dog|lift my arm|swallow|"
        "go to the toilet|stand up too fast|read|look at the light|take a deep breath|"
        "lie down|wake up"
    ),
    "happens": _w(
        "my chest goes tight|i get a sharp pain|i see spots|everything spins|"
        "my heart races|it burns|my knee gives way|i get out of breath|"
        "my vision goes blurry|i feel like fainting|there is blood|my ears ring|"
        "my fingers go white|i get a shooting pain down my leg|my back locks up|"
        "i start wheezing|i feel sick|my ankle clicks|i get pins and needles"
    ),
    "sign": _w(
        "a lump|a rash|a mole that changed colour|a red ring|a blister|blood|swelling|"
        "a yellow tinge|white patches|a bruise i cant explain|bumps|flaky skin|"
        "a dark spot|a bulge|pus|a scab that wont heal"
    ),
    "symptom": _w(
        "a really bad cough|a chesty cough|a runny nose|a temperature|the runs|"
        "a banging headache|bad heartburn|a lot of gas|a rash that wont go|"
        "really bad period pain|blood in my stool|hot flushes|a stiff neck|a tight chest|"
        "a sore throat that wont go away|a high fever|an upset stomach|cold sweats|"
        "no appetite|trouble sleeping|bad cramps|a ringing in my ear|a lot of mucus|"
        "a pounding heart|swollen ankles|a twitching eye|dizzy spells|"
        "a burning when i pee"
    ),
    "feel": _w(
        "really tired|wiped out|shaky|off|rough|run down|light headed|woozy|queasy|"
        "achy all over|feverish|breathless|faint|sick to my stomach|not myself|foggy"
    ),
}
_WRAP = "(please|hey|atlas|ok atlas|atlas please)"

# Rule C (own, local): commands to the house and the player, and one-line replies.
COMMANDS: Mapping[str, Sequence[str]] = {
    "media": (
        "(play|put on|start|throw on|queue up|shuffle|listen to|play me|stream) {title}",
        "(i want to hear|let me hear|i'd like to listen to|go ahead and play) {title}",
        "(play|put on|start|bring up|resume) the {title} {kind}",
        "(play|put on|stream) {title} (on|from) {service}",
        "(play|put on) {title} in the {room}",
        "play the (latest|last|next|newest|first) episode of {title}",
        "play (some|a bit of) {na} music",
        "play (something|anything|a song) by {title}",
        "tune in to {title} radio",
        "add this (song|track|one) to my {title} playlist",
    ),
    "player": (
        "(pause|stop|resume|continue|restart|unpause|skip|replay|rewind|shuffle) {object}",
        "(repeat|start|end|kill|hold|turn off|switch off|turn on) {object} [please]",
        "can you (pause|stop|resume|skip|restart|mute|unmute) {object}",
        "(next|previous|last|first) (song|track|episode|chapter|station)",
        "skip (ahead|back|forward) (30 seconds|a minute|five minutes|ten seconds)",
    ),
    "volume": (
        "[the] {sound} volume (up|down|higher|lower|louder|quieter|softer|max|up a bit)",
        "volume (up|down|higher|lower|louder|quieter|to max|up a notch|down a bit)",
        "turn (it|the music|the tv|that|the sound|the radio) (up|down) [a bit|a notch]",
        "(make it|make the music|can you make it|a bit) (louder|quieter|softer)",
        "set the {sound} volume to (10|20|40|60|80|3|5|7|half|max)",
        "(raise|lower|bump up|drop|boost) the {sound} volume",
        "(crank it up|pump it up|keep it down|not so loud|too loud|i cant hear it)",
    ),
    "vacuum": (
        "(start|stop|pause|resume) (vacuuming|mopping|hoovering) [the {room}]",
        "(start|stop|pause|run|dock|empty) the {vac}",
        "(send|tell|get) the {vac} (to clean|to vacuum|to mop|back to its base|home)",
        "(vacuum|mop|hoover|clean) the {room} [floor]",
        "(have|let|make) the {vac} (clean|do) the {room}",
        "{vac} (start|stop|go home|pause|clean the {room})",
    ),
    "appliance": (
        "(start|stop|run|switch on|switch off|turn on|turn off|pause) the {appliance}",
        "{appliance} (on|off|start|stop)",
        "(is|has) the {appliance} (finished|done|still running|on)",
        "set the {appliance} to (eco mode|high|low|quick wash|180 degrees|night mode)",
    ),
    "house": (
        "(lights|light|lamps) (on|off|up|down|brighter|dimmer) in the {room}",
        "{room} lights (on|off|to 50 percent|brighter|warmer|blue|dim)",
        "(kill|switch off|dim|brighten|turn up|turn down) the {room} lights",
        "(make it|its too) (brighter|darker|dark|bright) in (here|the {room})",
        "(lock|unlock|open|close|shut) the (front door|back door|garage|blinds|curtains|gate)",
        "set the (heating|thermostat|ac|air con) to (18|19|20|21|22|23) [degrees]",
        "(its too cold|its too hot|its freezing|its boiling) in (here|the {room})",
        "(is the front door locked|is the oven on|are the windows shut|is the garage open)",
    ),
    "timer": (
        "(set|start|make|put on) a (timer|countdown) for (5|ten|20|45|90) (minutes|seconds)",
        "(set|make) an alarm for (7 am|half six|quarter past six|noon|8 tomorrow)",
        "(wake me up|remind me|ping me|buzz me) (in 20 minutes|at 7|at half six|in an hour)",
        "(cancel|stop|pause|snooze|delete|turn off) (the|my|that|all) (timer|alarm|timers)",
        "how (long is left|much time is left|long to go) on the [pasta|oven|egg] timer",
        "(add|put|stick) (milk|eggs|bin bags|coffee|dog food) (on|to) the shopping list",
        "(whats on|read me|read out|clear) the (shopping|grocery|to do) list",
    ),
    "reply": (
        "{yes}",
        "{no}",
        "({yes}|{no}) (please|thanks|atlas|i think|thats right)",
        "(oh|um|well|i said|the answer is) ({yes}|{no})",
        "{yes} {yes}",
        "{no} {no}",
    ),
}

# Rule S2 (own, haiku): errands on services ATLAS does not have, worded as commands.
SERVICES: Mapping[str, Sequence[str]] = {
    "find": (
        "(find|find me|search for|look up|look for|get me|locate) {place} {where}",
        "(find|search for|look up|show me|i want to see|search) {work} {title}",
        "(find|look up|show me|get) (reviews of|the menu for|opening hours for) {place} {where}",
        "(find|look up|get) (the phone number of|directions to) {place} {where}",
        "(show me|find|get me|check) (the movie times|showtimes|the film schedule) {where}",
        "(show me|what are) the (screenings|showtimes) for {title} (tonight|this weekend)",
        "(search|look up|find|check) (flights|trains|buses|ferries|hotels) to {city}",
        "(find|search for) (a cheap|a last minute|the best) (hotel|flight|deal) in {city}",
    ),
    "book": (
        "(book|reserve|get) a (table|room|double room) for (two|four|six) (tonight|on friday)",
        "(book|make|get me) (a haircut|an appointment|a massage) (for saturday|tomorrow)",
        "(book|order|buy|get me|reserve|purchase) {buy}",
        "(i need|i want|i would like|can i get) {buy}",
    ),
    "rate": (
        "(rate|give|score) (this|that|the|the current) {rated} {stars} (stars|out of five)",
        "(rate|give) {title} {stars} (stars|points|out of ten)",
        "i (give|would give|rate) (the|this) {rated} {title} {stars} stars",
    ),
    "order": (
        "(order|reorder|return) {buy}",
        "(cancel|track) my order of {buy}",
        "(where is my|track my|has my|check on my) (parcel|package|delivery|order|refund)",
    ),
    "account": (
        "(check|whats|tell me) my (bank balance|credit card bill|account balance|phone bill)",
        "(transfer|send|pay) (50|20 pounds|100 dollars|the rent) to {pn}",
        "(cancel|renew|upgrade|pause) my (gym membership|phone contract|insurance|broadband)",
    ),
    "info": (
        "(is|when does|what time does) (the post office|the library|the tip) (open|close)",
        "(when is the next|what time is the next) (bus|train|tram|ferry) to {city}",
        "(who won|what was the score in) (the match last night|the grand prix|the derby)",
    ),
}

# Rule M (own, agent): lay descriptions of symptoms in everyday words.
SYMPTOMS: Sequence[str] = (
    "my {part} (has been|was|keeps) {ache} {days}",
    "(when|every time) i {everyday} {happens}",
    "i (noticed|found|have got|have|woke up with) {sign} on my {part}",
    "i (have had|have got|have|keep getting|get) {symptom} {days}",
    "i have (terrible|awful|really bad|mild|constant) {symptom}",
    "i feel {feel} {days}",
    "ive been feeling {feel} and {feel} {days}",
    "{who} (has|has had|keeps getting|woke up with) {symptom}",
    "{who} (says their|complains their|told me their) {part} (is|feels) {ache}",
    "(theres|there is|ive got) (a pain|an ache|a pressure|a tightness) (in|under) my {part}",
    "my {part} (looks|feels|went) (funny|weird|puffy|blue|red|hot|cold|numb) {days}",
    "i (cant|can hardly|struggle to) {everyday} (without pain|anymore)",
    "i (banged|twisted|knocked|burned|jammed|hurt) my {part} and (it is still swollen|"
    "now it wont stop hurting|it has gone purple|i cant move it|it is bleeding)",
    "i (was stung by a wasp|got bitten by a dog|got bitten by a tick) and "
    "(my {part} is swelling|theres a red ring|i feel dizzy|it looks infected)",
    "im (6|12|20|35) weeks pregnant and (i have cramps|i am bleeding a bit|"
    "my feet are swollen|i feel dizzy|i have a headache that wont go)",
    "(the baby|my toddler|my newborn) (has a temperature of 39|wont stop crying|"
    "has a rash that doesnt fade|isnt feeding|keeps being sick|has a barking cough)",
    "is it bad that {happens} when i {everyday}",
    "(my|our) (sons|daughters|husbands|wifes|dads|mums) {part} (is|has been) {ache} {days}",
)


def _sampler(rng: random.Random) -> TemplateSampler:
    sampler = TemplateSampler({}, rng)
    sampler.add(None, {k: {"values": v} for k, v in LEXICON.items()})
    return sampler


def _rows(
    templates: Mapping[str, Sequence[str]], tier: str, prefix: str, rng: random.Random, n: int
) -> Iterator[Row]:
    sampler = _sampler(rng)
    cats = sorted(templates)
    for _ in range(n):
        cat = rng.choice(cats)
        text = sampler.sample(rng.choice(templates[cat]))
        if cat != "reply" and rng.random() < 0.15:
            text = f"{sampler.sample(_WRAP)} {text}"
        yield " ".join(text.split()), tier, f"{prefix}:{cat}", "own"


def command_rows(rng: random.Random, n: int) -> Iterator[Row]:
    return _rows(COMMANDS, "local", "command", rng, n)


def service_rows(rng: random.Random, n: int) -> Iterator[Row]:
    return _rows(SERVICES, "haiku", "service", rng, n)


def symptom_rows(rng: random.Random, n: int) -> Iterator[Row]:
    return _rows({"own-lay": SYMPTOMS}, "agent", "medical", rng, n)
