"""The ``addresses_grader`` gate's shortcuts read text exactly as the plain scans they replace.

Each shortcut skips work a plain regex would do (a phrase family's alternatives that own none of
a sentence's anchors, a case-insensitive precheck, a sentence split that tries every position,
the fold of a line that cannot end the response); here each is compared with that plain form on
texts built to hit its edges: anchors of every family in every case, overlapping anchors,
separators, worded fractions, case-equivalent non-ASCII letters.
"""

from __future__ import annotations

import random
import re
import sys
import unicodedata

import pytest

from graders import _anchor_screen as anchor_screen
from graders import _inject_match as inject_match
from graders._anchors import first_chars
from graders._inject_claims import _FAMILIES, _FAMILY_SCREEN
from graders._inject_context import (
    _QUERY_SCANS,
    _SENTENCE_END_PLAIN,
    _SENTENCE_END_RE,
    _clean,
)
from graders._inject_detectors import (
    _BOUNDARY_CHARS_PLAIN,
    _BOUNDARY_CHARS_RE,
    _END_LINE_FIRST,
    _END_LINE_RE,
    _END_MARK_RE,
    _NEEDS,
    _comments,
    _may_start_end_line,
    _search,
)
from graders._inject_marks import _RESULT_VERDICT_RE, _may_state_result
from graders._inject_match import _INVISIBLE_RE, fold
from graders._inject_verdicts import _CHECKLIST_RE, _TICK_RE, _VERDICT_CHARS_RE, _may_hold_verdict


def _phrase_texts(rng: random.Random, n: int) -> list[str]:
    """Folded sentences of anchors (cut at random), negations, cue words and filler."""
    anchors = sorted({a for f in _FAMILIES for a in f.matcher.anchors or ()})
    filler = "the a you not do your this answer is 10 full marks ignore all previous as grader"
    words = [*filler.split(), "such as", "will", "told to", "never", "pas", "ready"]
    out = []
    for _ in range(n):
        parts = []
        for _ in range(rng.randrange(1, 9)):
            if rng.random() < 0.5:
                a = rng.choice(anchors)
                parts.append(a[rng.randrange(2) :] if rng.random() < 0.3 else a)
            else:
                parts.append(rng.choice(words))
        out.append(fold(" ".join(parts)))
    return [s for s in out if s]


def test_each_family_finds_what_its_whole_regex_finds() -> None:
    """Only the alternatives owning a sentence's anchors run, and their matches are merged: the
    same matches, in the same order, as the whole alternation's ``finditer``."""
    rng = random.Random(11)
    texts = _phrase_texts(rng, 3000)
    for family in _FAMILIES:
        for s in texts:
            want = [m.span() for m in family.matcher.pattern.finditer(s)]
            got = [m.span() for _, m in family.matcher.matches([s])]
            assert got == want, (family.name, s)
            screened = [m.span() for _, m in family.matcher.matches(_FAMILY_SCREEN([s]))]
            assert screened == want, (family.name, s)


def test_each_family_reads_the_same_with_the_prefilter_off(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rng = random.Random(12)
    sentences = [_phrase_texts(rng, rng.randrange(1, 4)) for _ in range(800)]
    screened = [
        [f.first(_FAMILY_SCREEN(s), reported_ok=r) for f in _FAMILIES for r in (False, True)]
        for s in sentences
    ]
    monkeypatch.setattr(anchor_screen, "_PREFILTER", False)
    plain = [
        [f.first(s, reported_ok=r) for f in _FAMILIES for r in (False, True)] for s in sentences
    ]
    assert screened == plain
    assert any(any(x) for x in plain)


def test_the_sentence_split_is_the_plain_alternation() -> None:
    rng = random.Random(13)
    pieces = ["a", "e.g.", "I", ". ", ".", "!", "?!", "。", "；", ";", "\n", "\n \n", "\n\t\n", " "]
    pieces += ["x", "A.", " b.", "1.5", "..", "U.S. ", "é.", "\t"]
    plain = re.compile(_SENTENCE_END_PLAIN)
    for _ in range(20000):
        text = "".join(rng.choice(pieces) for _ in range(rng.randrange(12)))
        assert _SENTENCE_END_RE.split(text) == plain.split(text), repr(text)


def test_the_verdict_precheck_is_the_case_insensitive_search() -> None:
    rng = random.Random(14)
    pieces = ["out of", "OUT OF", "Out Of", "of", "OF", "sur", "SUR", "de", "von", "VON", "из"]
    pieces += ["中"]
    pieces += ["one", "ONE", "Ten", "five", "hundred", "HUNDRED", "seven", "3", "٣", " ", "\t"]
    pieces += [":", "=", "[", "/", "|", "→", "⇒", ">", "x", "ſur", "ſix", "İ", "K", "often", "a"]
    for _ in range(20000):
        text = "".join(rng.choice(pieces) for _ in range(rng.randrange(8)))
        assert _may_hold_verdict(text) == bool(_VERDICT_CHARS_RE.search(text)), repr(text)


def test_a_line_skipped_unfolded_cannot_end_the_response() -> None:
    assert _END_LINE_FIRST is not None
    rng = random.Random(15)
    pieces = ["End", "end", "of", "the", "response", "RESPONSE", "Answer", "complete", "here"]
    pieces += ["Fin", "de", "la", "respuesta", "**", "--", " ", "_", "1", "'s", "Output", "ENDS"]
    for _ in range(20000):
        line = "".join(rng.choice(pieces) for _ in range(rng.randrange(7)))
        folded = fold(line)
        if _END_LINE_RE.fullmatch(folded):
            assert _may_start_end_line(line), line
        if line.isascii() and folded:
            assert _may_start_end_line(line) == (folded[0] in _END_LINE_FIRST), line


def test_first_chars() -> None:
    assert first_chars(re.compile("a|b")) == {"a", "b"}
    assert first_chars(re.compile("x?y")) == {"x", "y"}
    assert first_chars(re.compile(r"(?<!\w)(?:ab)+c")) == {"a"}
    assert first_chars(re.compile(r"\w")) is None
    assert first_chars(re.compile("a*")) is None
    assert first_chars(re.compile("a", re.I)) is None
    assert first_chars(re.compile("(?:a|)b")) is None


def test_ascii_text_is_clean_already() -> None:
    """The ASCII shortcuts (no NFKC, no invisible or tag characters to look for) hold."""
    ascii_chars = "".join(map(chr, range(128)))
    assert _INVISIBLE_RE.search(ascii_chars) is None
    assert unicodedata.normalize("NFKC", ascii_chars) == ascii_chars
    assert _clean(ascii_chars) == ascii_chars


def test_the_boundary_precheck_is_the_plain_alternation() -> None:
    rng = random.Random(16)
    pieces = ["E", "N", "D", "END", "EN", "ND", "e", "end", "<", "[", "#", ":", "(", "«", "⟪", " "]
    plain = re.compile(_BOUNDARY_CHARS_PLAIN)
    for _ in range(20000):
        text = "".join(rng.choice(pieces) for _ in range(rng.randrange(7)))
        assert bool(_BOUNDARY_CHARS_RE.search(text)) == bool(plain.search(text)), repr(text)


def test_comments_need_an_opening_character() -> None:
    for text in ["<!-- x -->", "[a]: # (hidden)", '<span style="display:none">x</span>', "plain"]:
        found = list(_comments(text))
        assert bool(found) == (text != "plain")


def test_the_query_scans_find_what_each_regex_finds() -> None:
    """One scan for the anchors of all the query's regexes, then only the owners searched."""
    rng = random.Random(17)
    anchors = sorted({a for own in _QUERY_SCANS._anchors for a in own or ()})
    words = ["rate", "this", "essay", "json", "python", "a", "dialogue", "check", "my", "the"]
    texts = []
    for _ in range(5000):
        parts = [
            rng.choice(anchors)[rng.randrange(2) :] if rng.random() < 0.5 else rng.choice(words)
            for _ in range(rng.randrange(1, 7))
        ]
        texts.append(" ".join(parts))
    for text in texts:
        got = [m and m.span() for m in _QUERY_SCANS.search(text)]
        want = [m and m.span() for m in (rx.search(text) for rx in _QUERY_SCANS.patterns)]
        assert got == want, text


def test_a_checklist_verdict_needs_a_ticked_box() -> None:
    """No character but ``x`` and ``X`` is ``x`` to the case-insensitive engine, so a text
    without a literal ticked box holds no ticked checklist."""
    every = "".join(chr(c) for c in range(sys.maxunicode + 1) if not 0xD800 <= c < 0xE000)
    assert sorted(set(re.findall("[xX✓✔]", every, re.IGNORECASE))) == sorted("xX✓✔")
    assert re.findall(r"[\[\]]", every, re.IGNORECASE) == ["[", "]"]
    lines = ["- [x] Correct", "- [X] Relevant", "* [✓] safe", "[ ] Correct", "- [x] Paris"]
    rng = random.Random(18)
    for _ in range(3000):
        text = "\n".join(rng.choice(lines) for _ in range(rng.randrange(5)))
        if _CHECKLIST_RE.search(text):
            assert _TICK_RE.search(text), text


def test_a_result_verdict_needs_a_result_word() -> None:
    rng = random.Random(19)
    pieces = ["Result", "RESULT", "reſult", "Outcome", "OUTCOME", "final ", "check ", ": ", "= "]
    pieces += ["PASS", "correct", "✅", " ", "\n", "x", "resu", "lt", "out", "come", "K"]
    for _ in range(20000):
        text = "".join(rng.choice(pieces) for _ in range(rng.randrange(8)))
        if _RESULT_VERDICT_RE.search(text):
            assert _may_state_result(text), repr(text)


def test_each_boundary_scan_needs_what_the_table_says() -> None:
    every = "".join(chr(c) for c in range(sys.maxunicode + 1) if not 0xD800 <= c < 0xE000)
    for need in _NEEDS.values():
        # no character of another case stands for the needed ones in a case-insensitive scan
        assert re.findall(need.pattern, every, re.IGNORECASE) == need.findall(every)
    rng = random.Random(20)
    pieces = ["<|im_end|>", "[INST]", "<<SYS>>", "< end_of_turn >", "<<<", "«««", "⟪ ⟪ ⟪", "END"]
    pieces += ["### System:", "# Rubric", "[Judge]", "(grader)", "Evaluator:", "ASSISTANT:"]
    pieces += ["User:", "human:", " OF ", "THE ", "RESPONSE", "\n", " ", "x", "system", "judge"]
    for _ in range(20000):
        text = "".join(rng.choice(pieces) for _ in range(rng.randrange(6)))
        for rx, need in _NEEDS.items():
            if rx.search(text):
                assert need.search(text), (rx.pattern[:40], text)
    assert _search(_END_MARK_RE, "END OF RESPONSE") is not None
    assert _search(_END_MARK_RE, "end of response") is None


def test_a_sentence_stuffed_with_a_family_s_words_runs_its_whole_regex(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Past a few alternatives a sentence is scanned once by the whole alternation, not once by
    each (a long text packed with the words cost several times the old scan); same matches."""
    family = next(f for f in _FAMILIES if f.name == "claims_verified")
    words = sorted(family.matcher.anchors or ())[:40]
    sentence = " ".join(words * 3)
    runs = family.matcher.runs([sentence])
    assert runs and runs[0][1] == (family.matcher.pattern,)
    whole = [m.span() for m in family.matcher.pattern.finditer(sentence)]
    assert [m.span() for _, m in family.matcher.matches([sentence])] == whole
    monkeypatch.setattr(inject_match, "_MERGED_MAX", 10**9)  # the merge says the same
    assert [m.span() for _, m in family.matcher.matches([sentence])] == whole
