"""Text signals of a listing: obfuscation-robust brand mentions and replica wording.

Counterfeit sellers disguise brand names so that keyword filters miss them (``Nіke`` with a Cyrillic ``і``, ``N1ke``,
``N i k e``, ``Adidsa``) and advertise copies with a trade vocabulary (``1:1``, ``AAA+``, ``super clone``). This
module turns both into signals:

- :func:`normalize_text` folds a string to a Latin "skeleton": NFKC, Unicode confusables mapped to Latin (from the
  ``confusable_homoglyphs`` package's copy of Unicode's confusables table), leetspeak inside words, accents stripped,
  case folded, whitespace collapsed. :func:`squash_text` is the same with every non-alphanumeric removed.
- :func:`replica_terms` lists the replica wording found in a text, as canonical terms.
- :class:`BrandTextMatcher` finds registered brands in a title: exact after normalisation, or within one edit
  (rapidfuzz; two for names of ten characters or more) for names of five characters or more, with a letter doubled
  (or, for four-letter names, two neighbours swapped) for names of three or four, and says whether the title
  disguised the name.
- :func:`mention_context` tells a compatibility mention ("case for iPhone") from a claim to be the brand.

Known limits (by design, documented here once):

- Brand names that are common words ("Shell", "Medium", "Sky", "Canvas") match exactly wherever the word is used:
  word frequency cannot tell them from real brands (``zipf("google") > zipf("orange")``). Downstream evidence (logo
  similarity, price, seller) has to. Two cases are settled here: a name that is one very frequent word ("Black",
  "Box") written plainly is ``generic`` (no evidence), and a name that is a dictionary word (a lower-case entry of
  the ``english-words`` web2 list: "orange", "sky", "kit", not "google" or "nike") written plainly is ``generic``
  in a text that disguises another brand's name or names another brand before it: "Twinnmotion T-Shirt - Sky
  Blue" names Twinmotion and "Cisco Canvas Tote" Cisco, while "Canvas Tote" alone still names Canvas. A dictionary
  word written plainly as part of a colour of several words (a CSS colour name, ``webcolors``: "Sky Blue" is
  ``skyblue``, "Sea Green", "Royal Blue") is ``generic`` too: "Backpack 20L, Sky Blue" names no brand.
  Typo matching skips windows that are common English words (wordfreq), so "steel" is not read as a typo of "Steem";
  only a name of several words may match a window of as many real words, one edit off ("Dinners Club", "Weights &
  Bases"), so a two-word phrase that is one edit from another two-word brand name reads as that brand.
- A name without letters ("1&1") matches only as written: "1:1" is replica wording, not the brand.
- Names of one character ("X", "R", "C") never match in text: a lone letter is no evidence.
- Names of two or three characters only match a whole token, exactly (three: or with a letter doubled), and (by
  default) with the brand's own casing or in capitals: "HP" matches "HP laptop" but not "5 hp motor". A short name
  with a letter dropped ("LNA" for DLNA) is not matched: every name less a letter is some other short token.
- Compounds written in lower case ("nikeshoes") are not split; camel case ("NikeAir") is.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import re
import threading
import time
import unicodedata
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

import numpy as np
from confusable_homoglyphs import confusables as _confusables
from english_words import get_english_words_set
from rapidfuzz import fuzz, process
from rapidfuzz.distance import OSA
import webcolors
from wordfreq import zipf_frequency

__all__ = [
    "REPLICA_TERMS",
    "BrandTextMatcher",
    "TextMatch",
    "TextMatcherConfig",
    "mention_context",
    "normalize_text",
    "replica_terms",
    "squash_text",
]

log = logging.getLogger(__name__)

# --------------------------------------------------------------------------------------------------------------------
# Normalisation
# --------------------------------------------------------------------------------------------------------------------

# Leetspeak is too small and too context-dependent for a library; it is applied only inside words (see _apply_leet).
_LEET = {"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "8": "b", "9": "g", "@": "a", "$": "s", "€": "e",
         "!": "i", "|": "l"}
_LEET_SYMBOLS = frozenset("@$€!|")
_SMALL_CAPITAL = re.compile(r"LATIN LETTER SMALL CAPITAL ([A-Z])")
_BIDI_MARKS = "\u200e\u200f"


def _strip_marks(s: str) -> str:
    """Remove combining marks after canonical decomposition ("é" -> "e")."""
    return "".join(c for c in unicodedata.normalize("NFKD", s) if not unicodedata.combining(c))


def _ascii_letter(s: str) -> str | None:
    """The single ASCII letter or digit a confusable target stands for, if any."""
    s = _strip_marks(s.strip(_BIDI_MARKS))
    if len(s) == 1 and s.isascii() and s.isalnum():
        return s
    if len(s) == 1 and (m := _SMALL_CAPITAL.fullmatch(unicodedata.name(s, ""))):
        return m.group(1)
    return None


def _build_confusable_map() -> dict[str, str]:
    """Map every non-ASCII character that Unicode lists as confusable with a Latin letter or digit to it."""
    data = _confusables.confusables_data
    out: dict[str, str] = {}
    for ch, entries in data.items():
        if len(ch) != 1 or ch.isascii():
            continue
        targets = [t for e in entries if (t := _ascii_letter(e["c"]))]
        if not targets:
            # One hop further: the table gives some Cyrillic letters a Latin small capital as prototype
            # ("к" -> "ĸ" -> "ᴋ"), which stands for the Latin letter.
            for e in entries:
                targets += [t for e2 in data.get(e["c"].strip(_BIDI_MARKS), ()) if (t := _ascii_letter(e2["c"]))]
        if not targets:
            continue
        target = next((t for t in targets if t.isalpha()), targets[0])
        if ch.isupper() and target == "l":
            target = "I"  # Unicode's prototype for a vertical stroke is "l"; as a capital it reads as "I" (NІKE)
        out[ch] = target
    return out


_CONFUSABLE = _build_confusable_map()


@functools.lru_cache(maxsize=16384)
def _fold_char(ch: str, casefold: bool = True) -> str:
    """Fold one character: drop invisibles, NFKC, confusable -> Latin, strip accents, casefold."""
    if ch.isspace():
        return " "
    cat = unicodedata.category(ch)
    if cat in ("Cf", "Cc", "Mn", "Me"):
        return ""  # zero-width spaces, soft hyphens and stray accents are used to break names apart
    if cat == "So":
        return " "  # ™, ®, emoji: NFKC would glue "TM" onto the word before it
    out = []
    for c in unicodedata.normalize("NFKC", ch):
        if not c.isascii():
            c = _CONFUSABLE.get(c) or _strip_marks(c)
        out.append(c)
    s = "".join(out)
    return s.casefold() if casefold else s


def _fold(raw: str) -> tuple[list[str], list[int], set[int]]:
    """Fold ``raw`` char by char; return folded chars, raw index of each, and camel-case token starts."""
    chars: list[str] = []
    origin: list[int] = []
    camel: set[int] = set()
    prev_lower = False
    for i, ch in enumerate(raw):
        folded = _fold_char(ch)
        if ch.isupper() and prev_lower and folded:
            camel.add(len(chars))
        if folded:
            prev_lower = ch.islower()
        for c in folded:
            if c == " " and (not chars or chars[-1] == " "):
                continue
            chars.append(c)
            origin.append(i)
    if chars and chars[-1] == " ":
        chars.pop()
        origin.pop()
    return chars, origin, camel


def _apply_leet(chars: list[str]) -> tuple[list[str], list[str], list[int]]:
    """Map leetspeak to letters; return (base, full, positions of mapped "1").

    ``base`` maps a run of leet characters only inside a word (``N1ke``, ``G00gle``) or a leading symbol before
    letters (``@didas``, ``$amsung``), so model numbers (``iPhone 15``, ``4K``, ``3M``) survive. ``full`` maps
    every leet character in a whitespace chunk that holds at least two letters (``Nik3``, ``4didas``), or one letter
    and a leetspeak symbol that does not start a price (``R0$``, ``$u1``; not ``K14`` or ``$5K``); the matcher tries
    both.
    """
    n = len(chars)
    base = list(chars)
    full = list(chars)
    ones: list[int] = []
    chunk_letters: list[int] = [0] * n
    start = 0
    while start < n:
        end = start
        while end < n and chars[end] != " ":
            end += 1
        chunk = chars[start:end]
        letters = sum(c.isalpha() for c in chunk)
        # One letter with a leetspeak symbol spells a word too ("R0$", "$u1", "@I8"), unless the symbol starts a
        # price ("$5K", "€9") or is a currency sign of two characters ("R$"): a symbol is no model number, while
        # "K14" or "N88" may be one.
        symbol = len(chunk) >= 3 and any(c in _LEET_SYMBOLS for c in chunk) \
            and not re.search(r"[$€]\d", "".join(chunk))
        chunk_letters[start:end] = [letters + (letters == 1 and symbol)] * (end - start)
        start = end + 1
    i = 0
    while i < n:
        if chars[i] not in _LEET:
            i += 1
            continue
        j = i
        while j < n and chars[j] in _LEET:
            j += 1
        before = chars[i - 1] if i > 0 else " "
        after = chars[j] if j < n else " "
        interior = before.isalpha() and after.isalpha()
        leading = not before.isalnum() and after.isalpha() and all(c in _LEET_SYMBOLS for c in chars[i:j])
        for k in range(i, j):
            mapped = _LEET[chars[k]]
            if interior or leading:
                base[k] = mapped
            if chunk_letters[k] >= 2:
                full[k] = mapped
            if chars[k] == "1":
                ones.append(k)
        i = j
    return base, full, ones


@dataclass(frozen=True)
class _Forms:
    """The folded variants of one raw string; all have the same length and share ``origin``."""

    variants: tuple[str, ...]  # base first, then full leet, then "1" read as "l" instead of "i"
    origin: tuple[int, ...]  # raw index of each folded character
    camel: frozenset[int]  # folded positions where a camel-case word starts


def _forms(raw: str) -> _Forms:
    """Fold ``raw`` into its matching variants."""
    chars, origin, camel = _fold(raw)
    base, full, ones = _apply_leet(chars)
    variants = ["".join(base), "".join(full)]
    if ones:
        for v in (base, full):
            alt = list(v)
            for k in ones:
                if alt[k] == "i":
                    alt[k] = "l"
            variants.append("".join(alt))
    unique = tuple(dict.fromkeys(variants))
    return _Forms(unique, tuple(origin), frozenset(camel))


def normalize_text(s: str) -> str:
    """Fold text to its Latin skeleton for matching.

    NFKC, invisible characters dropped, Unicode confusables (Cyrillic ``о``, Greek ``ο``, mathematical letters...)
    mapped to the Latin letter they imitate, accents stripped, case folded, leetspeak inside words mapped
    (``N1ke`` -> ``nike``, ``G00gle`` -> ``google``, ``@didas`` -> ``adidas``; digits at the edge of a word such
    as ``iPhone 15`` or ``4K`` are kept), whitespace collapsed.

    Args:
        s: Any text.

    Returns:
        The normalised text; punctuation is kept (see :func:`squash_text` for the form without it).
    """
    return _forms(s).variants[0]


def squash_text(s: str) -> str:
    """:func:`normalize_text` with every non-alphanumeric character removed (``N.i.k.e`` -> ``nike``)."""
    return "".join(c for c in normalize_text(s) if c.isalnum())


def _benign(s: str) -> str:
    """Fold only what a normal seller's text varies in: canonical composition, full-width forms, case."""
    s = unicodedata.normalize("NFC", s)
    s = "".join(chr(ord(c) - 0xFEE0) if 0xFF01 <= ord(c) <= 0xFF5E else c for c in s)
    return s.casefold()


# --------------------------------------------------------------------------------------------------------------------
# Replica wording
# --------------------------------------------------------------------------------------------------------------------

# Words after "AAA" that make it a battery size (or a video-game budget class), not a replica grade.
_AAA_BENIGN = re.compile(
    r"\b(?:batter(?:y|ies)|batt|cells?|alkaline|recharge\w*|ni-?mh|nimh|lithium|li-?ion|\d*mah|\d+(?:[.,]\d+)?v|volts?"
    r"|charger|duracell|energizer|panasonic|eneloop|games?|titles?|studios?)\b"
)
# Nouns after "fake" that name a legitimate imitation product, not a counterfeit.
_FAKE_BENIGN = re.compile(
    r"(?:leather|fur|plants?|flowers?|grass|moss|ivy|trees?|eye ?lash(?:es)?|lashes|nails?|tan|tann\w*|blood|snow"
    r"|tattoos?"
    r"|piercings?|food|fruits?|candles?|beard|mo?ustache|teeth|wounds?|cameras?|security|rocks?|stones?|ice|fireplace"
    r"|window|books?|pregnancy|belly|bake|money|cake|hair\w*)\b"
)

# canonical term -> pattern on normalised text (run on several variants, see replica_terms)
_REPLICA_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (term, re.compile(pattern))
    for term, pattern in (
        ("replica", r"\brepli[ck]as?\b"),
        ("1:1", r"(?<![\d.:,])1 ?[:：] ?1(?![\d.:,])"),
        ("aaa+", r"\ba{3,} ?\++(?!\w)"),
        ("aaa", r"\ba{3,}\b(?! ?\+)"),
        ("dupe", r"\bdupes?\b"),
        ("mirror quality", r"\bmirror[ -]?(?:quality|grade|copy|copies|replicas?|version)\b"),
        ("inspired by", r"\binspired by\b"),
        ("high copy", r"\bhigh(?:est)?[ -]?cop(?:y|ies)\b"),
        ("first copy", r"\bfirst[ -]?cop(?:y|ies)\b"),
        ("super clone", r"\bsuper[ -]?clones?\b"),
        ("clone", r"(?<!super )(?<!super-)\bclones?\b"),
        ("oem quality", r"\boem[ -]?(?:quality|grade)\b"),
        ("knockoff", r"\bknock[ -]?offs?\b"),
        ("fake", r"\bfakes?\b"),
        ("unbranded copy", r"\bunbranded[ -]?(?:cop(?:y|ies)|replicas?|versions?)\b"),
        ("same as original", r"\bsame as (?:the )?original\b"),
        ("unauthorized authentic", r"\bunauthori[sz]ed[ -]?authentic\b"),
    )
)
REPLICA_TERMS: tuple[str, ...] = tuple(term for term, _ in _REPLICA_PATTERNS)
_SPACED_LETTERS = re.compile(r"(?<![^\W_])(?:[^\W_][ .\-_*·]+){2,}[^\W_](?![^\W_])")


def _join_spaced(text: str) -> str:
    """Join letters written apart ("r e p l i c a", "R.E.P.L.I.C.A") into one word."""
    return _SPACED_LETTERS.sub(lambda m: "".join(c for c in m.group(0) if c.isalnum()), text)


def _benign_context(term: str, text: str, start: int, end: int) -> bool:
    """True when the words around a hit make it a legitimate product ("AAA batteries", "fake plant")."""
    after = " ".join(text[end:].split()[:3])
    if term in ("aaa", "aaa+"):
        before = " ".join(text[:start].split()[-2:])
        return bool(_AAA_BENIGN.search(after) or _AAA_BENIGN.search(before))
    if term == "fake":
        return bool(_FAKE_BENIGN.match(after))
    return False


def replica_terms(text: str) -> list[str]:
    """List the replica wording in a text, robust to case, spacing, homoglyphs and leetspeak.

    Terms are matched on whole words of the normalised text (and on a copy where letters written apart are
    joined), so ``R3PLICA``, ``rерlіса`` (Cyrillic) and ``r e p l i c a`` all count. Choices against false
    positives: "AAA" does not count next to battery words ("AAA batteries", "AAA 1.5V alkaline") or game words;
    "fake" does not count before an imitation-product noun ("fake plant", "fake leather"); a bare "mirror" never
    counts (only "mirror quality/grade/copy"), nor does a bare "OEM" or "copy". "replica" counts even where it is a
    licensed product line ("replica jersey"); "1:1" counts even as an aspect ratio: downstream weighs them.

    Args:
        text: Title, description or text read from photos.

    Returns:
        Canonical terms from :data:`REPLICA_TERMS` found in the text, each once, in that table's order.
    """
    if not text:
        return []
    variants = _forms(text).variants
    texts = dict.fromkeys([*variants, *(_join_spaced(v) for v in variants)])
    found: list[str] = []
    for term, pattern in _REPLICA_PATTERNS:
        for t in texts:
            if any(not _benign_context(term, t, m.start(), m.end()) for m in pattern.finditer(t)):
                found.append(term)
                break
    return found


# --------------------------------------------------------------------------------------------------------------------
# Compatibility mentions
# --------------------------------------------------------------------------------------------------------------------

_FEW_WORDS = r"(?:[^ ]+ ){0,4}"
# Cues before the brand, canonical cue -> pattern; explicit cues may be a few words away ("compatible with Apple and
# Samsung"), a bare "for" must stand right before the brand or one filler word ("shoes for men Nike" is no mention).
_BEFORE_CUES: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (cue, re.compile(r"(?:^|[^\w])(?:" + pattern + r")[ ,:]+" + gap + "$"))
    for cue, pattern, gap in (
        ("compatible with", r"compatible (?:with|for|to)", _FEW_WORDS),
        ("replacement for", r"replacements? (?:[^ ]+ ){0,3}(?:for|of)", _FEW_WORDS),
        ("works with", r"works? (?:with|on)", _FEW_WORDS),
        ("designed for", r"(?:designed|made) (?:for|to fit)|suitable for|for use (?:with|on|in)", _FEW_WORDS),
        ("fits", r"fits?(?: for)?|to fit", _FEW_WORDS),
        ("for", r"for", r"(?:(?:the|new|all|most|your|my|any|select|selected|latest|older) )?"),
    )
)
_AFTER_CUE = re.compile(r"^[^\w]{0,2}(compatible|replacement)\b")


def mention_context(title: str, span: tuple[int, int]) -> str | None:
    """Tell whether a brand mention is a compatibility mention ("case for iPhone", "fits Dyson").

    Such mentions are the legitimate way to name a brand on unbranded goods, so they weaken the brand claim.

    Args:
        title: The raw text the span refers to.
        span: ``(start, end)`` of the brand mention in ``title`` (as in :attr:`TextMatch.span`).

    Returns:
        The canonical cue (``"compatible with"``, ``"replacement for"``, ``"works with"``, ``"designed for"``,
        ``"fits"``, ``"for"`` before the brand; ``"compatible"`` or ``"replacement"`` right after it), or ``None``
        when the mention has no compatibility context.
    """
    start, end = span
    if not 0 <= start <= end <= len(title):
        raise ValueError(f"span {span} outside a text of {len(title)} characters")
    before = normalize_text(title[:start])
    before = before + " " if before else before
    for cue, pattern in _BEFORE_CUES:
        if pattern.search(before):
            return cue
    after = normalize_text(title[end:]) if end < len(title) and not title[end].isalnum() else ""
    if m := _AFTER_CUE.search(after):
        return m.group(1)
    return None


# --------------------------------------------------------------------------------------------------------------------
# Brand matching
# --------------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TextMatch:
    """One brand found in a text."""

    brand_id: str
    score: float  # 1.0 for an exact match after normalisation; fuzz.ratio / 100 for a typo match
    matched_text: str  # the raw text that matched (title[span[0]:span[1]])
    span: tuple[int, int]  # character offsets in the raw text
    method: str  # "exact" (verbatim), "normalized" (equal after normalisation) or "fuzzy" (edit distance)
    obfuscated: bool  # the raw text does not spell any of the brand's names verbatim (case-insensitive)
    # a plain spelling that names no brand: a very common word ("Black"), or a dictionary word ("Sky") in a text
    # that disguises another brand's name or names another brand before it
    generic: bool = False


@dataclass(frozen=True)
class TextMatcherConfig:
    """Knobs of :class:`BrandTextMatcher`."""

    min_name_len: int = 2  # names shorter than this (after squashing) never match: one letter is no evidence
    short_name_len: int = 3  # names up to this length match only a whole token, exactly or with a letter doubled
    short_name_case_sensitive: bool = True  # short names match only in their own casing or in capitals
    # shortest name that may match with any typo; shorter names of more than short_name_len characters match a
    # whole token with a letter doubled or two neighbours swapped ("Niike", "Nkie"), never with a letter dropped
    fuzzy_min_len: int = 5
    fuzzy_long_len: int = 10  # names at least this long may match with two typos instead of one
    fuzzy_min_ratio: float = 0.75  # fuzz.ratio / 100 a typo match must reach as well
    word_zipf: float = 3.0  # windows this frequent in the lexicon (wordfreq Zipf scale) are words, not typos
    word_lang: str = "en"  # wordfreq language of that lexicon
    max_ngram: int = 4  # longest token window (in tokens) compared fuzzily; exact windows go up to the longest name
    # A one-word name at least this frequent (wordfreq Zipf: 5 = ten per million words, e.g. "black", "first",
    # "here"; "google" is 4.9) written plainly is a generic word, not a mention of the brand.
    generic_zipf: float = 5.0

    def __post_init__(self) -> None:
        if not 1 <= self.min_name_len <= self.short_name_len + 1 <= self.fuzzy_min_len:
            raise ValueError("need 1 <= min_name_len <= short_name_len + 1 <= fuzzy_min_len")
        if not 0.0 < self.fuzzy_min_ratio <= 1.0 or self.max_ngram < 1:
            raise ValueError("need 0 < fuzzy_min_ratio <= 1 and max_ngram >= 1")


@dataclass(frozen=True)
class _Alias:
    """One name of one brand, as the matcher indexes it."""

    brand_id: str
    name: str  # as registered
    key: str  # squashed normalised form
    casings: frozenset[str]  # accepted raw spellings of a short name (folded without casefold, alphanumerics only)
    generic: bool  # one common word ("Black"): written plainly it names no brand
    word: bool  # one dictionary word ("Sky"): written plainly it yields to a disguised or earlier brand
    tokens: int = 1  # words in the normalised name ("Weights & Biases": 2, "itch.io": 2)


@dataclass(frozen=True)
class _FuzzyIndex:
    """Names eligible for typo matching, sorted by length, with the slice of each length."""

    keys: list[str]
    owners: list[tuple[_Alias, ...]]
    by_len: dict[int, tuple[int, int]]


@dataclass
class _Hit:
    """One window that matched one name."""

    alias: _Alias
    score: float
    span: tuple[int, int]  # raw span
    edits: int  # 0 for an exact match


def _tokens(text: str, camel: frozenset[int] | None) -> list[tuple[str, int, int]]:
    """Alphanumeric runs of ``text`` as (token, start, end), split at camel-case starts when given.

    A camel-case split is kept only when both parts have three characters or more: "NikeAir" -> "nike", "air", but
    "iPhone" and "McDonald" stay whole, so short prefixes do not turn into words of their own.
    """
    out = []
    for m in re.finditer(r"[^\W_]+", text):
        start, end = m.start(), m.end()
        if camel:
            for k in range(start + 3, end - 2):
                if k in camel and k - start >= 3:
                    out.append((text[start:k], start, k))
                    start = k
        out.append((text[start:end], start, end))
    return out


def _spaced_runs(text: str, tokens: list[tuple[str, int, int]]) -> list[list[tuple[str, int, int]]]:
    """Runs of two or more single-character tokens a few separators apart ("n i k e", "N.i.k.e").

    A letter glued to the word before it by an apostrophe ("women's") does not start a run.
    """
    runs: list[list[tuple[str, int, int]]] = []
    run: list[tuple[str, int, int]] = []
    for tok in tokens:
        single = len(tok[0]) == 1 and not (tok[1] > 0 and text[tok[1] - 1] in "'’")
        if single and run and tok[1] - run[-1][2] <= 3:
            run.append(tok)
            continue
        if len(run) >= 2:
            runs.append(run)
        run = [tok] if single else []
    if len(run) >= 2:
        runs.append(run)
    return runs


def _merge_spaced(text: str, tokens: list[tuple[str, int, int]]) -> list[tuple[str, int, int]]:
    """``tokens`` with each run of letters written apart merged into one token ("n i k e" -> "nike")."""
    runs = {run[0][1]: run for run in _spaced_runs(text, tokens)}
    out = []
    i = 0
    while i < len(tokens):
        run = runs.get(tokens[i][1])
        if run is None:
            out.append(tokens[i])
            i += 1
        else:
            out.append(("".join(t[0] for t in run), run[0][1], run[-1][2]))
            i += len(run)
    return out


class _Windows:
    """Candidate windows of a text: normalised key -> raw spans, per kind of lookup."""

    def __init__(self, origin: tuple[int, ...]) -> None:
        self.origin = origin
        self.short: dict[str, set[tuple[int, int]]] = {}  # whole tokens of short-name length
        self.exact: dict[str, set[tuple[int, int]]] = {}  # squashed token n-grams, looked up exactly
        self.fuzzy: dict[str, set[tuple[int, int]]] = {}  # the subset compared with typos allowed
        # windows of several real words, compared with one typo to names of as many words ("Dinners Club")
        self.phrase: dict[int, dict[str, set[tuple[int, int]]]] = {}  # by the window's number of words
        self.short_typo: dict[tuple[str, str], set[tuple[int, int]]] = {}  # (short name's key, token one typo off it)

    def add(self, table: dict[Any, set[tuple[int, int]]], key: Any, start: int, end: int) -> None:
        """Record ``key`` for the normalised range ``[start, end)``, as a raw span."""
        table.setdefault(key, set()).add((self.origin[start], self.origin[end - 1] + 1))


def _case_key(s: str) -> str:
    """Alphanumerics of ``s`` folded without casefolding (homoglyphs still mapped)."""
    return "".join(c for ch in s for c in _fold_char(ch, casefold=False) if c.isalnum())


def _raw_key(s: str) -> str:
    """A title token as a short name's casing rule reads it: its alphanumerics and leetspeak symbols, unfolded in
    case (``@MD`` is three characters, like ``AMD``, not the two of ``MD``)."""
    return "".join(c for ch in s for c in _fold_char(ch, casefold=False) if c.isalnum() or c in _LEET_SYMBOLS)


def _casing_ok(raw_key: str, casings: frozenset[str]) -> bool:
    """Whether a short name's raw spelling has one of its casings; a leetspeak digit or symbol stands for any letter
    (``K1a`` is Kia, ``N8B`` is NBB, ``@MD`` is AMD, but ``kia`` and ``nBb`` are not)."""
    return raw_key in casings or any(
        len(raw_key) == len(c) and all(r == k or not r.isalpha() for r, k in zip(raw_key, c)) for c in casings
    )


def _undoubled(raw_key: str) -> list[str]:
    """Spellings of a raw token with one of its doubled letters written once ("Kiaa" -> "Kia")."""
    return [raw_key[:i] + raw_key[i + 1 :] for i in range(len(raw_key) - 1)
            if raw_key[i].casefold() == raw_key[i + 1].casefold()]


@functools.lru_cache(maxsize=65536)
def _word_zipf(word: str, lang: str) -> float:
    """Zipf frequency of a word (0 for unknown strings such as typos)."""
    return zipf_frequency(word, lang)


def _single_word(name: str) -> str | None:
    """A name's only word, case-folded ("Black" -> "black"); None for names of several words ("Sam's Club")."""
    words = re.findall(r"[^\W_]+", _benign(name))
    return words[0].casefold() if len(words) == 1 else None


@functools.cache
def _colour_names() -> frozenset[str]:
    """CSS colour names, which write colours of several words as one ("skyblue", "seagreen")."""
    return frozenset(webcolors.names("css3"))


_WORD = re.compile(r"[^\W\d_]+")


def _in_colour_name(text: str, span: tuple[int, int]) -> bool:
    """Whether the words of ``text[span]`` with one or two words next to them spell a colour of several words."""
    words = [(m.group(0).casefold(), m.start(), m.end()) for m in _WORD.finditer(text)]
    inside = [i for i, (_, s, e) in enumerate(words) if s < span[1] and e > span[0]]
    if not inside:
        return False
    first, last = inside[0], inside[-1]
    colours = _colour_names()
    for lo in range(max(0, first - 2), first + 1):
        for hi in range(last, min(len(words), last + 3)):
            if (lo, hi) != (first, last) and "".join(w for w, _, _ in words[lo : hi + 1]) in colours:
                return True
    return False


@functools.cache
def _dictionary() -> frozenset[str]:
    """Lower-case entries of the web2 word list: common nouns and adjectives, no proper names ("sky", not "nike")."""
    return frozenset(w for w in get_english_words_set(["web2"], lower=False, alpha=True) if w.islower())


@functools.lru_cache(maxsize=65536)
def _verbatim_pattern(name: str) -> re.Pattern[str]:
    """Regex for a name written verbatim: its words in order, any separators (or none) between them."""
    variants = {_benign(name), _strip_marks(_benign(name))}
    alternatives = []
    for v in variants:
        words = re.findall(r"[^\W_]+", v)
        if words:
            alternatives.append(r"[\W_]*".join(map(re.escape, words)))
    return re.compile("|".join(alternatives) if alternatives else r"(?!)")


class BrandTextMatcher:
    """Finds registered brands in listing text, through homoglyphs, leetspeak, spacing and typos.

    A name is indexed by its squashed normalised key (``"Louis Vuitton"`` -> ``"louisvuitton"``). A text is
    normalised into a few variants (leetspeak inside words or everywhere, ``1`` read as ``i`` or ``l``), tokenised
    (camel case split, letters written apart merged) and every window of consecutive tokens is squashed and looked
    up exactly; windows of up to ``max_ngram`` tokens are also compared to names of five or more characters with
    rapidfuzz, accepting one edit (swap, drop, double, substitution; two for long names). Names of three or four
    characters match a whole token with a letter doubled ("Kiaa", "Niike"; three-letter names in their own casing),
    four-letter ones also with two neighbours swapped ("Nkie"); a token that is a common word is never such a typo.
    Adding or removing a brand takes effect on the next :meth:`match`. Safe to call :meth:`match` from several
    threads.

    Example:
        >>> m = BrandTextMatcher([("nike", ["Nike"]), ("hp", ["HP", "Hewlett-Packard"])])
        >>> m.match("N1ke Air Max")[0].obfuscated
        True
    """

    def __init__(
        self, brands: Iterable[tuple[str, Sequence[str]]] = (), config: TextMatcherConfig | None = None
    ) -> None:
        """Index ``brands``, an iterable of ``(brand_id, [name, *aliases])``."""
        self.config = config or TextMatcherConfig()
        self._lock = threading.Lock()
        self._names: dict[str, tuple[_Alias, ...]] = {}
        self._exact: dict[str, dict[str, _Alias]] = {}  # key -> brand_id -> alias
        self._max_tokens = 1  # longest name in tokens (+1), bounds the exact windows
        self._max_key_len = 0  # longest key in characters (never shrinks on removal: only a bound)
        self._fuzzy: _FuzzyIndex | None = None
        t0 = time.perf_counter()
        self._is_word("the")  # loads the lexicons now rather than on the first match
        _dictionary()
        unmatchable = [brand_id for brand_id, names in brands if not self._add(brand_id, names)]
        if self._names or unmatchable:
            log.info(
                "text matcher: %d brands, %d keys in %.0f ms; %d brands with only one-letter names left out: %s",
                len(self._names),
                len(self._exact),
                1000 * (time.perf_counter() - t0),
                len(unmatchable),
                unmatchable[:10],
            )

    def __len__(self) -> int:
        return len(self._names)

    def __contains__(self, brand_id: object) -> bool:
        return brand_id in self._names

    def add_brand(self, brand_id: str, names: Sequence[str]) -> bool:
        """Register (or replace) a brand's names; it is matched from the next call on.

        Args:
            brand_id: The brand's id, returned in :attr:`TextMatch.brand_id`.
            names: The brand's name first, then its aliases.

        Returns:
            Whether the brand can be matched in text: ``False`` when every name is shorter than ``min_name_len``
            after normalisation (a one-letter brand such as "X"), in which case it is not indexed.

        Raises:
            ValueError: ``names`` holds no non-blank name.
        """
        with self._lock:
            return self._add(brand_id, names)

    def remove_brand(self, brand_id: str) -> None:
        """Forget a brand; unknown ids raise ``KeyError``."""
        with self._lock:
            self._remove(brand_id)

    def _add(self, brand_id: str, names: Sequence[str]) -> bool:
        if isinstance(names, str):
            raise TypeError("names must be a sequence of strings, not a string")
        cfg = self.config
        cleaned = list(dict.fromkeys(n.strip() for n in names if n and n.strip()))
        if not cleaned:
            raise ValueError(f"brand {brand_id!r}: no name given")
        aliases = []
        for name in cleaned:
            key = squash_text(name)
            if len(key) < cfg.min_name_len:
                log.debug("brand %s: name %r too short to match in text", brand_id, name)
                continue
            casings = frozenset()
            if len(key) <= cfg.short_name_len and cfg.short_name_case_sensitive:
                casings = frozenset({_case_key(name), _case_key(name).upper()})
            word = _single_word(name)
            aliases.append(_Alias(brand_id, name, key, casings, self._is_generic(name),
                                  word is not None and word in _dictionary(), len(_tokens(normalize_text(name), None))))
        if brand_id in self._names:
            self._remove(brand_id)
        if not aliases:
            log.debug("brand %s: no name of %d+ characters, not matched in text: %r", brand_id, cfg.min_name_len, names)
            return False
        self._names[brand_id] = tuple(aliases)
        for a in aliases:
            # Copy on write: a concurrent match() iterates the old owner dict undisturbed.
            owners = self._exact.get(a.key, {})
            if brand_id not in owners:
                self._exact[a.key] = {**owners, brand_id: a}
            tokens = len(_tokens(normalize_text(a.name), None))
            self._max_tokens = max(self._max_tokens, tokens + 1)  # +1: camel case may split one more
            self._max_key_len = max(self._max_key_len, len(a.key))
        self._fuzzy = None
        return True

    def _remove(self, brand_id: str) -> None:
        for a in self._names.pop(brand_id):
            owners = {b: other for b, other in self._exact.get(a.key, {}).items() if b != brand_id}
            if owners:
                self._exact[a.key] = owners
            else:
                self._exact.pop(a.key, None)
        self._fuzzy = None

    def _fuzzy_index(self) -> _FuzzyIndex:
        """The typo-matching index, rebuilt after brands changed."""
        index = self._fuzzy
        if index is not None:
            return index
        with self._lock:
            if self._fuzzy is None:
                keys = sorted((k for k in self._exact if len(k) >= self.config.fuzzy_min_len), key=len)
                by_len: dict[int, tuple[int, int]] = {}
                for i, k in enumerate(keys):
                    lo, _ = by_len.get(len(k), (i, i))
                    by_len[len(k)] = (lo, i + 1)
                owners = [tuple(self._exact[k].values()) for k in keys]
                self._fuzzy = _FuzzyIndex(keys, owners, by_len)
            return self._fuzzy

    def _is_word(self, token: str) -> bool:
        """Whether a normalised token is a common word of the lexicon language."""
        return _word_zipf(token, self.config.word_lang) >= self.config.word_zipf

    def _is_generic(self, name: str) -> bool:
        """Whether a name is one common word of the lexicon language ("Black", "First", "Here")."""
        word = _single_word(name)
        return word is not None and _word_zipf(word, self.config.word_lang) >= self.config.generic_zipf

    def _max_edits(self, key: str) -> int:
        return 2 if len(key) >= self.config.fuzzy_long_len else 1

    def _short_typos(self, token: str) -> list[str]:
        """Keys of names too short for :meth:`_fuzzy_hits` that ``token`` is one typo of: a letter doubled
        ("Niike", "Kiaa"), or, for names of ``short_name_len + 1`` characters, two neighbours swapped ("Nkie").

        Dropped letters are not matched: every name less a letter is some other short token ("DLNA" -> "LNA").
        """
        cfg = self.config
        out = []
        for i in range(len(token) - 1):
            if token[i] == token[i + 1] and token[i].isalpha():
                key = token[:i] + token[i + 1 :]
                if cfg.short_name_len <= len(key) < cfg.fuzzy_min_len and key in self._exact:
                    out.append(key)
            elif len(token) == cfg.short_name_len + 1 < cfg.fuzzy_min_len and token[i].isalpha() \
                    and token[i + 1].isalpha():
                key = token[:i] + token[i + 1] + token[i] + token[i + 2 :]
                if key in self._exact:
                    out.append(key)
        return out

    def match(self, title: str, top_k: int = 5) -> list[TextMatch]:
        """Find the brands named in a text.

        Args:
            title: Raw listing text (title, description or OCR text).
            top_k: Most matches to return.

        Returns:
            At most ``top_k`` matches, one per brand, best first: a match inside the span of another brand's exact
            match ranks after it ("Apple" inside "Apple Music"), generic words last (see the module notes), then by
            score, then disguised spellings (homoglyphs, leetspeak, spacing) before plain ones, then longer names
            first. Exact matches score 1.0, typo matches ``fuzz.ratio / 100`` (at least ``fuzzy_min_ratio``).
        """
        if top_k < 1:
            raise ValueError("top_k must be at least 1")
        if not title or not title.strip():
            return []
        forms = _forms(title)
        windows = _Windows(forms.origin)
        for text in forms.variants:
            self._collect_windows(text, forms.camel, windows)
        hits: list[_Hit] = []
        for key, spans in windows.short.items():
            for alias in self._exact.get(key, {}).values():
                if len(alias.key) > self.config.short_name_len:
                    continue
                for span in spans:
                    if alias.casings and not _casing_ok(_raw_key(title[span[0] : span[1]]), alias.casings):
                        continue
                    hits.append(_Hit(alias, 1.0, span, 0))
        for key, spans in windows.exact.items():
            for alias in self._exact.get(key, {}).values():
                hits += [_Hit(alias, 1.0, span, 0) for span in spans]
        hits += self._fuzzy_hits({k: v for k, v in windows.fuzzy.items() if k not in self._exact})
        hits += self._phrase_hits(windows.phrase)
        for (key, token), spans in windows.short_typo.items():
            score = fuzz.ratio(token, key) / 100.0
            for alias in self._exact.get(key, {}).values():
                for span in spans:
                    # A short name keeps its casing rule (only names of short_name_len have casings, and they are
                    # reached by a doubled letter alone): the raw token, written undoubled, must be in one of them.
                    if alias.casings and not any(_casing_ok(raw, alias.casings)
                                                 for raw in _undoubled(_raw_key(title[span[0] : span[1]]))):
                        continue
                    hits.append(_Hit(alias, score, span, 1))
        return self._rank(title, hits, top_k)

    def _collect_windows(self, text: str, camel: frozenset[int], windows: _Windows) -> None:
        """Add the candidate windows of one normalised variant of the text."""
        cfg = self.config
        plain = _tokens(text, None)
        exact = self._exact  # only windows that are some name's key are kept for the exact lookup
        for tok, s, e in plain:
            if len(tok) <= cfg.short_name_len and tok in exact:
                windows.add(windows.short, tok, s, e)
            # A whole token one typo off a short name, unless it is a word itself ("Moon" is no "Mon").
            if cfg.short_name_len < len(tok) <= cfg.fuzzy_min_len and tok not in exact and not self._is_word(tok):
                for key in self._short_typos(tok):
                    windows.add(windows.short_typo, (key, tok), s, e)
        for m in re.finditer(r"[^ ]+", text):  # whitespace chunks: "H&M", "AT&T"
            key = "".join(c for c in m.group(0) if c.isalnum())
            if 0 < len(key) <= cfg.short_name_len and key in exact:
                windows.add(windows.short, key, m.start(), m.end())
        split = _tokens(text, camel) if camel else plain
        token_lists = [plain, _merge_spaced(text, plain)] + ([split] if split != plain else [])
        for toks in token_lists:
            words = [self._is_word(t[0]) for t in toks]
            for i in range(len(toks)):
                key = ""
                for n in range(1, min(self._max_tokens, len(toks) - i) + 1):
                    key += toks[i + n - 1][0]
                    if len(key) > self._max_key_len + 2:  # two typos past the longest name: nothing can match
                        break
                    if len(key) <= cfg.short_name_len:
                        continue
                    start, end = toks[i][1], toks[i + n - 1][2]
                    if key in exact:
                        windows.add(windows.exact, key, start, end)
                    # A window of real words is not a typo ("steel" is no "Steem", "warm" no "Swarm"), except of
                    # a name of as many words (see _phrase_hits).
                    if n <= cfg.max_ngram and len(key) >= cfg.fuzzy_min_len - 1:
                        if not all(words[i : i + n]):
                            windows.add(windows.fuzzy, key, start, end)
                        elif n >= 2 and len(key) >= cfg.fuzzy_min_len and key not in exact:
                            windows.add(windows.phrase.setdefault(n, {}), key, start, end)
        for run in _spaced_runs(text, plain):
            # Written apart, a digit is a chunk of its own, which _apply_leet leaves alone: a run with two letters or
            # more is also read with its digits as letters ("n 8 n" is n8n, whose key is "nbn").
            if sum(t[0].isalpha() for t in run) >= 2 and any(t[0] in _LEET for t in run):
                runs = [run, [(_LEET.get(t[0], t[0]), t[1], t[2]) for t in run]]
            else:
                runs = [run]
            for r in runs:
                self._collect_spaced(r, windows)

    def _collect_spaced(self, run: list[tuple[str, int, int]], windows: _Windows) -> None:
        """Add the windows of one run of single characters written apart (see ``_spaced_runs``)."""
        cfg = self.config
        exact = self._exact
        # A short name written apart is the whole run ("N B B"), never part of one (sizes: "S M L XL").
        key = "".join(t[0] for t in run)
        if len(run) == len(key) == cfg.short_name_len and key in exact:
            windows.add(windows.short, key, run[0][1], run[-1][2])
        # Letters written apart may carry a stray letter on either side ("x N i k e"): every sub-run is looked
        # up exactly, the run and the run less one letter at either end fuzzily.
        for i in range(len(run)):
            for j in range(i + cfg.short_name_len + 1, min(len(run), i + self._max_key_len) + 1):
                key = "".join(t[0] for t in run[i:j])
                if key in exact:
                    windows.add(windows.exact, key, run[i][1], run[j - 1][2])
        for i, j in ((0, len(run)), (1, len(run)), (0, len(run) - 1)):
            if j - i >= cfg.fuzzy_min_len - 1:
                windows.add(windows.fuzzy, "".join(t[0] for t in run[i:j]), run[i][1], run[j - 1][2])

    def _fuzzy_hits(self, windows: dict[str, set[tuple[int, int]]]) -> list[_Hit]:
        """Typo matches of windows against names of ``fuzzy_min_len`` or more characters."""
        index = self._fuzzy_index()
        if not index.keys:
            return []
        queries = [w for w in windows if any(c.isalpha() for c in w)]
        by_len: dict[int, list[str]] = {}
        for q in queries:
            by_len.setdefault(len(q), []).append(q)
        hits = []
        cutoff = 100 * self.config.fuzzy_min_ratio
        for length, group in by_len.items():
            # An edit distance of d allows a length difference of at most d.
            lo = min((index.by_len[n][0] for n in range(length - 2, length + 3) if n in index.by_len), default=None)
            hi = max((index.by_len[n][1] for n in range(length - 2, length + 3) if n in index.by_len), default=None)
            if lo is None or hi is None:
                continue
            keys = index.keys[lo:hi]
            scores = process.cdist(group, keys, scorer=fuzz.ratio, score_cutoff=cutoff, dtype=np.uint8, workers=1)
            for qi, ki in zip(*np.nonzero(scores)):
                query, key = group[qi], keys[ki]
                max_edits = self._max_edits(key)
                edits = OSA.distance(query, key, score_cutoff=max_edits)
                if edits > max_edits:
                    continue
                score = fuzz.ratio(query, key) / 100.0
                for alias in index.owners[lo + ki]:
                    hits += [_Hit(alias, score, span, edits) for span in windows[query]]
        return hits

    def _phrase_hits(self, windows: dict[int, dict[str, set[tuple[int, int]]]]) -> list[_Hit]:
        """Typo matches of windows of several real words: one edit off a name of as many words.

        A window of real words is otherwise never a typo, so a name of several words written a letter off in one
        of them ("Dinners Club", "Weights & Bases", "Itch.o") would be missed; a name that is one word is not
        reached this way ("warm" stays no "Swarm", "steel gray" no "Steelgray").
        """
        return [h for n, group in windows.items() for h in self._fuzzy_hits(group)
                if h.edits == 1 and h.alias.tokens == n]

    def _rank(self, title: str, hits: list[_Hit], top_k: int) -> list[TextMatch]:
        """Best hit per brand, ranked; decides ``method`` and ``obfuscated``."""
        Ranked = tuple[tuple[float, bool, int, int], _Hit, TextMatch]  # (rank key, hit, match) of one brand
        best: dict[str, Ranked] = {}
        for hit in hits:
            raw = title[hit.span[0] : hit.span[1]]
            if not any(c.isalpha() for c in hit.alias.key) and raw.strip().casefold() != hit.alias.name.casefold():
                continue  # a name without letters ("1&1") only as written: "1:1" is replica wording
            verbatim = any(
                _verbatim_pattern(a.name).search(_benign(raw)) for a in self._names.get(hit.alias.brand_id, ())
            )
            method = "fuzzy" if hit.edits else ("exact" if verbatim else "normalized")
            generic = verbatim and not hit.edits and (
                hit.alias.generic or (hit.alias.word and _in_colour_name(title, hit.span)))
            # Within a brand a verbatim spelling wins a tie: the title does spell the name somewhere.
            rank = (hit.score, verbatim, len(hit.alias.key), -hit.span[0])
            current = best.get(hit.alias.brand_id)
            if current is None or rank > current[0]:
                match = TextMatch(hit.alias.brand_id, hit.score, raw, hit.span, method, not verbatim, generic)
                best[hit.alias.brand_id] = (rank, hit, match)

        def contains(outer: _Hit, inner: _Hit) -> bool:
            """Whether ``inner`` is part of the longer name matched by ``outer`` ("Google" in "Google Cloud")."""
            if outer.span == inner.span or not (outer.span[0] <= inner.span[0] and inner.span[1] <= outer.span[1]):
                return False
            # A typo match only absorbs an exact one when it is a single edit off a clearly longer name:
            # "Apache Annt" is Apache Ant, but "Freelanc-er men's" is not Freelancermap.
            return outer.edits == 0 or (outer.edits == 1 and len(outer.alias.key) >= len(inner.alias.key) + 3)

        hits_kept = [h for _, h, _ in best.values()]
        # A dictionary word written plainly yields to a disguised name anywhere (the title hides a brand) and to
        # another brand named before it (titles name the brand first): "Sky Blue" or "Canvas Tote" is then a colour
        # or a material, not a second brand.
        def disguised(hit: _Hit, match: TextMatch) -> bool:
            return match.obfuscated or hit.edits > 0

        named = [(b, h, m) for b, (_, h, m) in best.items() if not m.generic]
        yielding = [b for b, h, m in named if h.alias.word and not disguised(h, m) and any(
            other != b and (disguised(oh, om) or oh.span[0] < h.span[0]) for other, oh, om in named)]
        for brand_id in yielding:
            rank, hit, match = best[brand_id]
            best[brand_id] = (rank, hit, dataclasses.replace(match, generic=True))

        def order(item: Ranked) -> tuple[bool, bool, float, bool, int, int]:
            (score, _, key_len, neg_start), hit, match = item
            inside = any(contains(other, hit) for other in hits_kept if other is not hit)
            # A generic word ranks last ("Saam's Club Hoodie - Black" names Sam's Club); between equal scores a
            # disguised spelling wins: "IOТА ... Sneakers Black" names IOTA, on purpose.
            return (not inside, not match.generic, score, match.obfuscated, key_len, neg_start)

        ranked = sorted(best.values(), key=order, reverse=True)
        return [m for _, _, m in ranked[:top_k]]
