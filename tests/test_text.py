"""Tests of detector.text: normalisation, replica wording, brand matching through obfuscation, compatibility mentions.

The matcher is built from every simple-icons brand title (about 3,470 real brand names), as the service would build
it from its registry. Accuracy on synthetic obfuscated titles is measured on the held-out brands only (they may be
used for evaluation, never for tuning); run with ``-o log_cli=true --log-cli-level=INFO`` to see the numbers.
"""

from __future__ import annotations

import hashlib
import logging
import random
import threading
from collections import defaultdict

import pytest
import simple_icons_pack as sip
from wordfreq import zipf_frequency

from detector.text import (
    REPLICA_TERMS,
    BrandTextMatcher,
    TextMatch,
    TextMatcherConfig,
    mention_context,
    normalize_text,
    replica_terms,
    squash_text,
)

log = logging.getLogger(__name__)

# A generic title must not name any brand at or above this score (features.py's default fuzzy_cutoff); since typo
# matches score at least TextMatcherConfig.fuzzy_min_ratio (0.75), it means: no match at all.
NO_BRAND_THRESHOLD = 0.75


def _held_out(slug: str) -> bool:
    return int(hashlib.sha1(slug.encode()).hexdigest(), 16) % 10 == 0


@pytest.fixture(scope="module")
def icons() -> dict[str, str]:
    """simple-icons slug -> brand title."""
    return {v.slug: v.title for k, v in vars(sip).items() if k.startswith("SI_")}


@pytest.fixture(scope="module")
def matcher(icons: dict[str, str]) -> BrandTextMatcher:
    """Matcher over every simple-icons brand (shared: tests must not change it)."""
    return BrandTextMatcher([(slug, [title]) for slug, title in icons.items()])


def _top(matcher: BrandTextMatcher, title: str) -> TextMatch | None:
    matches = matcher.match(title, top_k=5)
    return matches[0] if matches else None


# ------------------------------------------------------------------------------------------------ normalisation


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Nіke", "nike"),  # Cyrillic і
        ("ΝΙΚΕ", "nike"),  # Greek capitals
        ("Gοοgle", "google"),  # Greek omicrons
        ("Аdidаs", "adidas"),  # Cyrillic А, а
        ("N1ke", "nike"),
        ("G00gle", "google"),
        ("@didas", "adidas"),
        ("$amsung", "samsung"),
        ("Ad!das", "adidas"),
        ("Ｎｉｋｅ", "nike"),  # full-width
        ("𝐍𝐢𝐤𝐞", "nike"),  # mathematical bold
        ("Ni\u200bke", "nike"),  # zero-width space
        ("Citroën", "citroen"),
        ("  Louis \t Vuitton  ", "louis vuitton"),
        ("Nike™ Air", "nike air"),
        # Digits at a word's edge are model numbers, not leetspeak.
        ("iPhone 15 Pro", "iphone 15 pro"),
        ("4K TV 55in", "4k tv 55in"),
        ("3M tape", "3m tape"),
        ("Sale! 50% off", "sale! 50% off"),
    ],
)
def test_normalize_text(raw: str, expected: str) -> None:
    assert normalize_text(raw) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("N.i.k.e", "nike"),
        ("N i k e", "nike"),
        ("Coca-Cola", "cocacola"),
        ("H&M", "hm"),
        ("Lоuis Vuittоn", "louisvuitton"),  # Cyrillic о
    ],
)
def test_squash_text(raw: str, expected: str) -> None:
    assert squash_text(raw) == expected


# ------------------------------------------------------------------------------------------------ brand matching

# (title, expected top-1 slug, method, obfuscated)
OBFUSCATED_TITLES = [
    # clean and case-only: not obfuscated
    ("Nike Air running shoe", "nike", "exact", False),
    ("nIkE air max 90", "nike", "exact", False),
    ("SAMSUNG Galaxy S23 Ultra", "samsung", "exact", False),
    ("NikeAir Max 90", "nike", "exact", False),  # camel case split
    ("Coca Cola glass bottle 330ml", "cocacola", "exact", False),  # separators between name words are free
    ("Citroen C3 floor mats", "citroen", "exact", False),  # the brand writes Citroën
    ("Ｎｉｋｅ Air Max", "nike", "exact", False),  # full-width is CJK typography, not disguise
    ("Apple Music gift card", "applemusic", "exact", False),  # the longer name wins over "Apple" inside it
    # homoglyphs
    ("Nіke Air Max 90", "nike", "normalized", True),
    ("ΝΙΚΕ sneakers", "nike", "normalized", True),
    ("Gοοgle Pixel 8 case", "google", "normalized", True),
    ("Аdidаs Originals", "adidas", "normalized", True),
    ("𝐍𝐢𝐤𝐞 hoodie", "nike", "normalized", True),
    ("Nïke sandals", "nike", "normalized", True),
    # leetspeak
    ("N1ke Air", "nike", "normalized", True),
    ("G00gle Pixel 8", "google", "normalized", True),
    ("@didas superstar", "adidas", "normalized", True),
    ("$amsung Galaxy buds", "samsung", "normalized", True),
    ("Nik3 tech fleece", "nike", "normalized", True),
    ("Sp0tify gift card", "spotify", "normalized", True),
    # spacing and punctuation inside the name
    ("N i k e Air Max", "nike", "normalized", True),
    ("N.i.k.e sneakers", "nike", "normalized", True),
    ("Nik-e hoodie", "nike", "normalized", True),
    ("A d i d a s track pants", "adidas", "normalized", True),
    ("Ni\u200bke socks", "nike", "normalized", True),
    ("Under Arm-our compression shirt", "underarmour", "normalized", True),
    # typos on names of five characters or more
    ("Adidsa Originals superstar", "adidas", "fuzzy", True),  # swap
    ("Addidas running shoes", "adidas", "fuzzy", True),  # double
    ("Adias sandals", "adidas", "fuzzy", True),  # drop
    ("Samsnug Galaxy charger", "samsung", "fuzzy", True),  # swap
    ("Toyata floor mats", "toyota", "fuzzy", True),  # substitution
    ("Porshe keychain", "porsche", "fuzzy", True),  # drop
    # a name of several words, one of them written as another real word (a window of words is otherwise no typo)
    ("Dinners Club gift card", "dinersclub", "fuzzy", True),
    ("Weights & Bases hoodie", "weightsandbiases", "fuzzy", True),
    ("Itch.o sticker pack", "itchdotio", "fuzzy", True),
    # typos on short names (3-4 characters): a letter doubled, or two neighbours of a four-letter name swapped
    ("Niike running shoes", "nike", "fuzzy", True),
    ("Nkie running shoes", "nike", "fuzzy", True),
    ("Kiaa floor mats", "kia", "fuzzy", False),  # "Kia" is spelled inside it
    ("NPMM stickers", "npm", "fuzzy", False),
    # short names: whole token only
    ("HP 15 inch laptop", "hp", "exact", False),
    ("НР laptop charger", "hp", "normalized", True),  # Cyrillic Н and Р
    ("H&M cotton t-shirt", "handm", "exact", False),
    ("LG OLED TV 55", "lg", "exact", False),
]


@pytest.mark.parametrize(("title", "slug", "method", "obfuscated"), OBFUSCATED_TITLES)
def test_match_top1(matcher: BrandTextMatcher, title: str, slug: str, method: str, obfuscated: bool) -> None:
    top = _top(matcher, title)
    assert top is not None, f"no match for {title!r}"
    assert (top.brand_id, top.method, top.obfuscated) == (slug, method, obfuscated)
    assert title[top.span[0] : top.span[1]] == top.matched_text
    assert 0.0 < top.score <= 1.0


@pytest.mark.parametrize(
    ("title", "slug"),
    [
        ("5 hp motor water pump", "hp"),  # horsepower: short names keep their casing
        ("Chip holder for cards", "hp"),  # inside a word
        ("HPE ProLiant server", "hp"),  # a longer token
        ("Cotton tee size lg", "lg"),
        ("Ready to go travel bag", "go"),
        ("X-large winter jacket", "x"),  # one-letter names never match
        ("Nke shoes", "nike"),  # a short name with a letter dropped is some other short token
        ("Ikne shoes", "nike"),  # a short name allows one typo at most
        ("Nikes shoes", "nike"),  # nor another letter added
        ("nmp install guide", "npm"),  # three-letter names allow no swap ("USB" is no "UBS")
        ("kiaa floor mats", "kia"),  # a short name's typo keeps its casing
        ("Mood lamp", "moo"),  # a doubled letter in a word is the word
        ("Pumas in the zoo book", "puma"),  # a longer word is not the name
        ("Warm steel water bottle", "swarm"),  # a window of real words is no typo of a one-word name
        ("Warm steel water bottle", "steem"),
        ("Bit coins piggy bank", "bitcoin"),  # words one letter off a one-word name are still words
    ],
)
def test_short_and_near_names_do_not_match(matcher: BrandTextMatcher, title: str, slug: str) -> None:
    assert slug not in {m.brand_id for m in matcher.match(title, top_k=10)}


# Product titles written without looking at the brand list. Five others written the same way named a brand whose
# name is a common word (KNOWN_COMMON_WORD_TITLES): that is the documented limit of exact matching.
GENERIC_TITLES = [
    "Stainless Steel Insulated Water Bottle 750ml Leak Proof",
    "USB-C Fast Charging Cable 2m Braided Nylon",
    "Women's Floral Summer Dress Short Sleeve Cotton",
    "Men's Running Shoes Lightweight Breathable Sneakers",
    "Ceramic Coffee Mug 350ml Dishwasher Safe",
    "Non-Stick Frying Pan 28cm Induction Compatible",
    "Kids Wooden Building Blocks 100 Pieces",
    "Yoga Mat Extra Thick 10mm with Carrying Strap",
    "LED Desk Lamp Dimmable Touch Control Eye Care",
    "Leather Wallet for Men RFID Blocking Slim Bifold",
    "Portable Phone Stand Adjustable Aluminium Holder",
    "Cotton Bath Towels Set of 4 Soft Absorbent",
    "Garden Hose 30m Expandable with Spray Nozzle",
    "Unisex Knitted Beanie Hat Warm Winter",
    "Silicone Baking Mat Set Reusable Non Stick",
    "Laptop Backpack 15.6 inch Water Resistant Travel",
    "Electric Kettle 1.7L Cordless Stainless Steel",
    "Scented Soy Candle Lavender 200g Gift",
    "Ladies Handbag Large Tote Bag Faux Leather",
    "Sports Water Resistant Digital Watch Men Stopwatch",
    "Sunglasses Polarized UV400 Protection Unisex",
    "Acrylic Paint Set 24 Colours for Artists",
    "Memory Foam Pillow Orthogonal Neck Support",
    "Fitness Resistance Bands Set of 5 Workout",
    "Car Phone Holder Air Vent Mount 360 Rotation",
    "Baby Romper Organic Cotton Newborn 0-3 Months",
    "Wall Clock Silent Non Ticking Modern 30cm",
    "Mens Slim Fit Jeans Stretch Denim Dark Blue",
    "Ergonomic Office Chair Mesh Back Lumbar Support",
    "Men's Wool Blend Overcoat Winter Long Coat",
    "Cast Iron Skillet Pre-Seasoned 12 inch",
    "Handmade Sterling Silver Hoop Earrings",
    "Kitchen Knife Set 6 Pieces with Block",
    "Bedside Table Lamp with USB Port",
    "Magnetic Whiteboard 90x60 cm with Marker Tray",
]

KNOWN_COMMON_WORD_TITLES = [
    ("Wireless Earbuds Bluetooth 5.3 Noise Cancelling", "bluetooth"),
    ("Dog Leash Reflective Nylon 1.5m Medium Dog", "medium"),
    ("Bamboo Cutting Board Large with Juice Groove", "bamboo"),
    ("Plastic Storage Box with Lid 20L Stackable", "box"),
    ("Waterproof Hiking Boots Women Ankle Support", "boots"),
]


@pytest.mark.parametrize("title", GENERIC_TITLES)
def test_generic_title_names_no_brand(matcher: BrandTextMatcher, title: str) -> None:
    above = [m for m in matcher.match(title, top_k=5) if m.score >= NO_BRAND_THRESHOLD]
    assert above == []


@pytest.mark.parametrize(("title", "slug"), KNOWN_COMMON_WORD_TITLES)
def test_common_word_brand_names_match_verbatim(matcher: BrandTextMatcher, title: str, slug: str) -> None:
    # The known risk, pinned: the hit is a verbatim common English word, never a typo or normalisation artefact.
    # The most common words (Zipf >= generic_zipf: "box") are flagged generic, which the featurizer ignores.
    top = _top(matcher, title)
    assert top is not None and (top.brand_id, top.method, top.obfuscated) == (slug, "exact", False)
    zipf = zipf_frequency(top.matched_text, "en")
    assert zipf >= 3.0 and top.generic == (zipf >= matcher.config.generic_zipf)


def test_incremental_add_and_remove(icons: dict[str, str]) -> None:
    matcher = BrandTextMatcher([(slug, [title]) for slug, title in list(icons.items())[:500]])
    assert matcher.match("L0uis Vuitt0n Neverfull bag") == []
    assert matcher.add_brand("louis-vuitton", ["Louis Vuitton", "LV"])
    top = _top(matcher, "L0uis Vuitt0n Neverfull bag")
    assert top is not None and (top.brand_id, top.obfuscated) == ("louis-vuitton", True)
    top = _top(matcher, "Louis Vuiton speedy 30")
    assert top is not None and (top.brand_id, top.method) == ("louis-vuitton", "fuzzy")
    top = _top(matcher, "LV monogram wallet")
    assert top is not None and (top.brand_id, top.method) == ("louis-vuitton", "exact")
    # Re-registering replaces the names.
    matcher.add_brand("louis-vuitton", ["Louis Vuitton"])
    assert "louis-vuitton" not in {m.brand_id for m in matcher.match("LV monogram wallet")}
    matcher.remove_brand("louis-vuitton")
    assert "louis-vuitton" not in matcher
    assert matcher.match("Louis Vuitton bag") == []
    with pytest.raises(KeyError):
        matcher.remove_brand("louis-vuitton")


def test_add_brand_validation() -> None:
    matcher = BrandTextMatcher()
    assert matcher.add_brand("x", ["X"]) is False  # one letter: registered nowhere, never matched
    assert "x" not in matcher and len(matcher) == 0
    with pytest.raises(ValueError):
        matcher.add_brand("blank", ["  "])
    with pytest.raises(TypeError):
        matcher.add_brand("nike", "Nike")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        matcher.match("Nike", top_k=0)
    with pytest.raises(ValueError):
        TextMatcherConfig(short_name_len=5, fuzzy_min_len=5)
    assert matcher.match("") == []


def test_match_while_brands_change(icons: dict[str, str]) -> None:
    matcher = BrandTextMatcher([(slug, [title]) for slug, title in list(icons.items())[:300]])
    errors: list[BaseException] = []
    stop = threading.Event()

    def reader() -> None:
        try:
            while not stop.is_set():
                matcher.match("N1ke Air Max and Adidsa Originals")
        except BaseException as e:  # noqa: BLE001 - any error in the reader fails the test
            errors.append(e)

    threads = [threading.Thread(target=reader) for _ in range(2)]
    for t in threads:
        t.start()
    for i in range(200):
        matcher.add_brand(f"brand-{i}", [f"Brandname{i}", "Nike" if i % 2 else "Adidas"])
        if i % 3 == 0:
            matcher.remove_brand(f"brand-{i}")
    stop.set()
    for t in threads:
        t.join()
    assert errors == []
    top = _top(matcher, "Brandname199 jacket")
    assert top is not None and (top.brand_id, top.method) == ("brand-199", "exact")
    assert "brand-198" not in matcher and "brand-0" not in matcher


# Lookalikes used to disguise names (test data: the module under test takes its map from Unicode's table).
# Latin letter -> Cyrillic or Greek lookalike.
_HOMOGLYPHS = dict(zip("aeocpixysjABEKMHOPCTX", "аеосріхуѕјΑВΕКМНΟРСТХ"))
_LEET = dict(zip("oOeEaAiIsSt", "00334411557"))
_FILLER = (
    "new men's women's running shoes original bag size free shipping 2024 hoodie classic edition cotton premium sale "
    "jacket sport black"
).split()
KINDS = ("homoglyph", "leet", "spaced", "dotted", "hyphen", "zero_width", "case", "typo")


def _obfuscate(name: str, kind: str, rng: random.Random) -> str | None:
    """Disguise ``name`` one way; None when this kind does not apply to it."""
    chars = list(name)
    inner = [i for i in range(1, len(chars)) if chars[i - 1].isalpha() and chars[i].isalpha()]  # between letters
    if kind == "homoglyph":
        cand = [i for i, c in enumerate(chars) if c in _HOMOGLYPHS]
        for i in rng.sample(cand, min(2, len(cand))):
            chars[i] = _HOMOGLYPHS[chars[i]]
        return "".join(chars) if cand else None
    if kind == "leet":
        cand = [i for i, c in enumerate(chars) if c in _LEET]
        for i in rng.sample(cand, min(2, len(cand))):
            chars[i] = _LEET[chars[i]]
        return "".join(chars) if cand else None
    if kind in ("spaced", "dotted"):
        return (" " if kind == "spaced" else ".").join(c for c in name if c.isalnum())
    if kind in ("hyphen", "zero_width"):
        if not inner:
            return None
        chars.insert(rng.choice(inner), "-" if kind == "hyphen" else "\u200b")
        return "".join(chars)
    if kind == "case":
        return "".join(c.upper() if rng.random() < 0.5 else c.lower() for c in name)
    letters = [i for i, c in enumerate(chars) if c.isalpha()]
    i = rng.choice(letters[1:-1])
    op = rng.choice(("swap", "drop", "double", "substitute"))
    if op == "swap" and chars[i] != chars[i + 1]:
        chars[i], chars[i + 1] = chars[i + 1], chars[i]
    elif op == "drop":
        del chars[i]
    elif op == "double":
        chars.insert(i, chars[i])
    else:
        chars[i] = rng.choice([c for c in "bcdfghjklmnpqrstvwxz" if c != chars[i].lower()])
    typo = "".join(chars)
    return typo if typo.casefold() != name.casefold() else None


def test_synthetic_obfuscation_accuracy(matcher: BrandTextMatcher, icons: dict[str, str]) -> None:
    """Top-1 accuracy on obfuscated titles of the held-out brands (names of 5+ Latin characters).

    Speed is measured by ``benchmarks/bench_text.py``, not asserted here.
    """
    rng = random.Random(0)
    filler = [w for w in _FILLER if not matcher.match(w)]
    total: dict[str, int] = defaultdict(int)
    correct: dict[str, int] = defaultdict(int)
    flagged: dict[str, int] = defaultdict(int)
    for slug, title in icons.items():
        key = squash_text(title)
        if not _held_out(slug) or len(key) < 5 or not key.isascii() or sum(c.isalpha() for c in title) < 5:
            continue
        for kind in KINDS:
            disguised = _obfuscate(title, kind, rng)
            if disguised is None:
                continue
            text = " ".join([rng.choice(filler), disguised, rng.choice(filler), rng.choice(filler)])
            top = _top(matcher, text)
            total[kind] += 1
            # Some simple-icons titles are shared by several slugs: any brand of the same name is right.
            if top is not None and squash_text(icons[top.brand_id]) == key:
                correct[kind] += 1
                flagged[kind] += top.obfuscated == (kind != "case")
    accuracy = {kind: correct[kind] / total[kind] for kind in total}
    overall = sum(correct.values()) / sum(total.values())
    flag_accuracy = sum(flagged.values()) / sum(correct.values())
    by_kind = {k: round(v, 3) for k, v in accuracy.items()}
    log.info("synthetic obfuscated titles: %d, top-1 accuracy %.3f, by kind %s", sum(total.values()), overall, by_kind)
    log.info("obfuscated flag right on %.3f of correct matches", flag_accuracy)
    assert sum(total.values()) > 2000
    assert overall >= 0.98, accuracy
    assert min(accuracy.values()) >= 0.95, accuracy
    assert flag_accuracy >= 0.99


def test_short_name_typo_accuracy(matcher: BrandTextMatcher, icons: dict[str, str]) -> None:
    """Held-out brands whose name is one word of 3-4 Latin letters, written with a letter doubled (or, for four
    letters, two neighbours swapped) as a whole token: the brand is named, in its own casing, and never a word."""
    rng = random.Random(0)
    filler = [w for w in _FILLER if not matcher.match(w)]
    total = correct = 0
    for slug, title in icons.items():
        if not _held_out(slug) or not (title.isascii() and title.isalpha() and 3 <= len(title) <= 4):
            continue
        i = rng.randrange(len(title) - 1)
        typos = [title[: i + 1] + title[i:]]
        if len(title) == 4 and title[i] != title[i + 1]:
            typos.append(title[:i] + title[i + 1] + title[i] + title[i + 2 :])
        for typo in typos:
            if squash_text(typo) in {squash_text(t) for t in icons.values()} or zipf_frequency(typo, "en") >= 3:
                continue  # the typo is another brand's name or a word: not a typo to find
            top = _top(matcher, " ".join([rng.choice(filler), typo, rng.choice(filler)]))
            total += 1
            correct += top is not None and squash_text(icons[top.brand_id]) == squash_text(title)
    log.info("short-name typos of held-out brands: %d, top-1 accuracy %.3f", total, correct / total)
    assert total > 30
    assert correct / total >= 0.9


# ------------------------------------------------------------------------------------------------ compatibility


@pytest.mark.parametrize(
    ("title", "brand", "cue"),
    [
        ("Case for iPhone 15 Pro", "iPhone", "for"),
        ("Strap for the Apple Watch", "Apple", "for"),
        ("Compatible with Samsung Galaxy S23", "Samsung", "compatible with"),
        ("Charger compatible with Apple and Samsung", "Samsung", "compatible with"),
        ("Fits Dyson V8 V10", "Dyson", "fits"),
        ("Replacement battery for Dyson V8", "Dyson", "replacement for"),
        ("Works with Alexa smart plug", "Alexa", "works with"),
        ("Filter designed to fit Dyson", "Dyson", "designed for"),
        ("Samsung-compatible USB-C charger", "Samsung", "compatible"),
        ("c0mpatible with Sony headphones", "Sony", "compatible with"),
        ("Nike Air Max 90", "Nike", None),
        ("Genuine Dyson V8 battery", "Dyson", None),
        ("Sneakers for men Nike Air", "Nike", None),  # "for" must stand right before the brand
    ],
)
def test_mention_context(title: str, brand: str, cue: str | None) -> None:
    start = title.index(brand)
    assert mention_context(title, (start, start + len(brand))) == cue


def test_mention_context_from_a_match(matcher: BrandTextMatcher) -> None:
    title = "Screen protector compatible with Sаmsung Galaxy"  # Cyrillic а
    top = _top(matcher, title)
    assert top is not None and top.brand_id == "samsung" and top.obfuscated
    assert mention_context(title, top.span) == "compatible with"
    with pytest.raises(ValueError):
        mention_context(title, (10, 500))


# ------------------------------------------------------------------------------------------------ replica wording


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Rolex Submariner 1:1 replica", ["replica", "1:1"]),
        ("Submariner 1 : 1 mirror quality", ["1:1", "mirror quality"]),
        ("AAA+ quality handbag", ["aaa+"]),
        ("Grade AAA designer bag", ["aaa"]),
        ("Super clone movement watch", ["super clone"]),
        ("clone watch automatic", ["clone"]),
        ("perfume dupe inspired by Chanel", ["dupe", "inspired by"]),
        ("OEM quality brake pads", ["oem quality"]),
        ("knock-off sneakers", ["knockoff"]),
        ("fake Nike shoes", ["fake"]),
        ("high copy watches", ["high copy"]),
        ("unbranded copy of the bag", ["unbranded copy"]),
        ("Same as original, UA unauthorized authentic", ["same as original", "unauthorized authentic"]),
        # obfuscated wording
        ("R3PLICA watch", ["replica"]),
        ("rерlіса bag", ["replica"]),  # Cyrillic р, і, с
        ("r e p l i c a bag", ["replica"]),
        ("A A A quality", ["aaa"]),
        ("KNOCK OFF", ["knockoff"]),
        # legitimate products and words
        ("AAA batteries 24 pack alkaline", []),
        ("Energizer AAA 1.5V", []),
        ("Rechargeable AAA NiMH 1000mAh", []),
        ("fake leather jacket", []),
        ("fake plant in pot", []),
        ("bathroom mirror with LED", []),
        ("OEM parts for Ford", []),
        ("Model car 1:18 scale", []),
        ("Monitor 16:9 aspect", []),
        ("Genuine leather wallet", []),
    ],
)
def test_replica_terms(text: str, expected: list[str]) -> None:
    assert replica_terms(text) == expected


def test_replica_terms_are_canonical() -> None:
    found = replica_terms("1:1 replica AAA+ super clone dupe knockoff fake, same as original")
    assert set(found) <= set(REPLICA_TERMS) and len(found) == len(set(found)) == 8
    assert replica_terms("") == []


def test_a_disguised_name_wins_a_tie_with_a_plain_word():
    matcher = BrandTextMatcher([("iota", ["IOTA"]), ("black", ["Black"]), ("meta", ["Meta"])])
    first = matcher.match("IO\u0422\u0410 Essential Low Top Sneakers Black")[0]  # Cyrillic Т and А
    assert (first.brand_id, first.score, first.obfuscated) == ("iota", 1.0, True)
    plain = matcher.match("IOTA Essential Low Top Sneakers Black")  # spelt plainly: no preference from disguise
    assert {m.brand_id for m in plain} == {"iota", "black"} and not any(m.obfuscated for m in plain)


def test_a_brand_named_by_a_common_word_is_generic_unless_disguised():
    matcher = BrandTextMatcher([("black", ["Black"]), ("samsclub", ["Sam's Club"]), ("google", ["Google"])])
    plain = matcher.match("Men's Black Sneakers")
    assert [(m.brand_id, m.generic) for m in plain] == [("black", True)]
    assert matcher.match("Google Pixel case")[0].generic is False  # Zipf 4.9: a brand more than a word
    disguised = matcher.match("Bl\u0430ck Sneakers")[0]  # Cyrillic а: nobody disguises a colour
    assert (disguised.brand_id, disguised.obfuscated, disguised.generic) == ("black", True, False)
    assert matcher.match("Black Crew Socks (Black Store)")[0].generic is True
    # A typo of a brand outranks a colour word that happens to be a brand's name.
    ranked = matcher.match("Saam's Club Pullover Hoodie - Black, L")
    assert [(m.brand_id, m.generic) for m in ranked] == [("samsclub", False), ("black", True)]
    never_generic = TextMatcherConfig(generic_zipf=9.0)
    assert BrandTextMatcher([("black", ["Black"])], never_generic).match("Black cap")[0].generic is False


def test_a_dictionary_word_brand_yields_to_a_disguised_or_earlier_brand():
    """"Sky", "Canvas", "Orange" and "Apple" are dictionary words (web2, lower case); "Twinmotion" and "Cisco" are not.
    Written plainly, such a word names its brand only when no other brand is disguised in the text or named before
    it; the featurizer drops the ``generic`` matches, so the colour or material no longer competes."""
    matcher = BrandTextMatcher([("sky", ["Sky"]), ("canvas", ["Canvas"]), ("twinmotion", ["Twinmotion"]),
                                ("cisco", ["Cisco"]), ("orange", ["Orange"]), ("apple", ["Apple"])])

    def named(title: str) -> list[str]:
        return [m.brand_id for m in matcher.match(title) if not m.generic]

    assert named("Twinnmotion Cotton T-Shirt - Sky Blue") == ["twinmotion"]  # a typo anywhere
    assert named("Sky Blue hoodie by Tw1nmotion") == ["twinmotion"]  # leetspeak, after the word
    assert named("Official Cisco Canvas Tote (Orange)") == ["cisco"]  # a brand named first
    assert named("Apple Watch band - Orange") == ["apple"]  # the first word stays the brand
    assert named("Canvas Tote Bag, natural") == ["canvas"]  # alone, the word still names its brand
    assert named("Sky Q remote control") == ["sky"]
    # a disguised dictionary-word name is no plain word: it keeps its brand
    assert named("Men's 0range Hoodie - Sky Blue") == ["orange"]


def test_a_dictionary_word_inside_a_colour_name_names_no_brand():
    """A colour of several words (CSS names: "skyblue", "seashell", "orangered") is a colour, not a brand mention, even
    alone in a title; the word elsewhere, or a name that is no dictionary word, still names its brand."""
    matcher = BrandTextMatcher([("sky", ["Sky"]), ("shell", ["Shell"]), ("orange", ["Orange"]), ("royal", ["Royal"]),
                                ("navy", ["Navy Federal"]), ("twinmotion", ["Twinmotion"])])

    def named(title: str) -> list[str]:
        return [m.brand_id for m in matcher.match(title) if not m.generic]

    assert named("Sky Blue Boxed Gift Set") == []
    assert named("Lightweight Backpack 20L - Deep Sky Blue") == []
    assert named("Sea Shell Necklace") == []
    assert named("Orange Red Pullover Hoodie") == []
    assert named("Royal Blue Ceramic Mug, Orange") == ["orange"]  # the colour is royal blue, "Orange" alone is not
    assert named("Sky Sports Bottle - Sky Blue") == ["sky"]  # named once outside the colour
    assert named("Sky Hoodie, Black") == ["sky"]
    assert named("Sky Blue Twinmotion Tee") == ["twinmotion"]
    assert named("Navy Federal Cap - Navy Blue") == ["navy"]  # a name of several words is no dictionary word
    assert named("5ky Blue Hoodie") == ["sky"]  # disguised, it is no plain colour word


def test_a_name_without_letters_matches_only_as_written():
    matcher = BrandTextMatcher([("1and1", ["1&1"]), ("egnyte", ["Egnyte"])])
    assert [m.brand_id for m in matcher.match("[1:1] Egnyte Crew Neck T-Shirt")] == ["egnyte"]  # replica wording
    assert [m.brand_id for m in matcher.match("1 1 phone case")] == []
    assert [(m.brand_id, m.method) for m in matcher.match("1&1 DSL router")] == [("1and1", "exact")]


@pytest.mark.parametrize(("title", "found"), [
    ("N B B Premium Ceramic Mug", True),
    ("Mug by N.B.B.", True),
    ("x N B B mug", False),  # a short name is the whole run of letters, never part of one
    ("n b b mug", False),  # and keeps its casing
    ("n 8 n workflow tee", True),  # a digit written apart among letters reads as one (n8n's key is "nbn")
    ("N 1 K E Air Runner", True),
    ("Sizes 4 5 6 available", False),  # digits alone stay digits
    ("3 M tape", False),  # one letter with a digit written apart is no name
])
def test_short_name_written_apart(title: str, found: bool) -> None:
    matcher = BrandTextMatcher([("nbb", ["NBB"]), ("n8n", ["n8n"]), ("nike", ["Nike"]), ("3m", ["3M"]),
                                ("asg", ["ASG"])])
    matches = matcher.match(title)
    assert bool(matches) == found
    if found:
        assert matches[0].obfuscated


@pytest.mark.parametrize(("title", "found"), [
    ("dupe K1a Black Fleece Hoodie", True),  # a leetspeak digit stands for a letter of a short name
    ("N8B Fleece Hoodie - Green", True),  # 8 for B
    ("Pu9 Everyday Sneakers", True),  # 9 for g
    ("@MD Vintage Hoodie Black", True),  # a leading symbol stands for a letter too
    ("R$S Essential Insulated Bottle", True),  # and one inside
    ("$MD Vintage Hoodie", False),  # $ is an s, not an a
    ("@md Vintage Hoodie", False),  # the letters keep the casing
    ("K14 Retro Sneakers", False),  # one letter among digits is a model number
    ("N88 Trainers - Black", False),
    ("kia floor mats", False),  # a short name still keeps its casing
    ("master copy R0$ Crew Neck T-Shirt", True),  # one letter with a symbol is a word, not a model number
    ("$u1 Tote Bag - Sky Blue", True),
    ("@I8 Green Coffee Mug", True),
    ("Mountain bike $5K special", False),  # a price is not one
    ("Price R$ 50 cash", False),  # nor a currency sign of two characters
])
def test_short_names_in_leetspeak(title: str, found: bool) -> None:
    matcher = BrandTextMatcher([("kia", ["Kia"]), ("nbb", ["NBB"]), ("pug", ["Pug"]), ("amd", ["AMD"]),
                                ("rss", ["RSS"]), ("ros", ["ROS"]), ("sui", ["Sui"]), ("aib", ["AIB"]),
                                ("ssk", ["SSK"]), ("rs", ["RS"])])
    top = _top(matcher, title)
    assert (top is not None and top.obfuscated) == found
