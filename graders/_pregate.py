"""Pre-gates: cheap rule checks that score a worthless response low *before* any judge call.

Why they exist: LLM judges are fooled by responses with no content at all. "One Token to Fool
LLM-as-a-Judge" (arXiv 2507.08794) reports 80-90 % false-positive rates for "master keys" such as
``":"``, ``"Thought process:"`` or ``"Let's solve this problem step by step."``, and an RL policy
trained against such a judge collapses to emitting them. Prompting and majority voting did not
remove the effect; the robust fix is to never ask the judge about such a response. The same holds
for a response that merely restates the question (judges often call it "relevant").

A gate is any object with a ``name`` and ``check(response, fields) -> reason | None``. A hit is a
*real* low score (the response is genuinely worthless), not a failure: the judge grader returns
``GraderScore(score=gate_score, reason="pre-gate: <reason>", metadata={"pregate": name})``.

Matching is done on a normalised form (Unicode NFKC, casefolded, every character that is not a
letter or a digit turned into a space), so ``**Solution:**``, ``SOLUTION`` and ``solution…`` are
one key, and the phrase lists are written once, in plain words. The gates are conservative on
purpose: a short honest answer (``"4"``, ``"Paris"``, ``"Yes"``, ``"x = 3"``) must never be gated,
so a response passes as soon as any content-bearing word survives the stripping.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from typing import Protocol, runtime_checkable

from rm_service._exceptions import ConfigError
from rm_service._result import GraderScore

__all__ = [
    "CRITERION_PREGATES",
    "DEFAULT_MASTER_KEYS",
    "DEFAULT_PREGATES",
    "META_WORDS",
    "PREGATE_TYPES",
    "STOP_WORDS",
    "AddressesGraderGate",
    "EmptyGate",
    "MasterKeyGate",
    "PreGate",
    "RestateGate",
    "asked_verbatim",
    "check_pregate_score",
    "default_pregates",
    "first_gate_hit",
    "normalize_for_gate",
    "pregate_result",
    "resolve_pregates",
    "tokens_for_gate",
]


@runtime_checkable
class PreGate(Protocol):
    """A rule run before the judge; ``check`` returns why the response is worthless, or ``None``.

    ``fields`` holds the text of every field the grader received (``query``, ``reference_response``,
    ...), so a gate can compare the response with them.
    """

    name: str

    def check(self, response: str, fields: Mapping[str, str]) -> str | None: ...


# --- normalisation -------------------------------------------------------------------------------

_CJK_CLASS = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff"
"""Hiragana, katakana, CJK ideographs (base, extension A, compatibility) and hangul syllables."""
_CJK_RE = re.compile(f"([{_CJK_CLASS}])")
_NON_CONTENT_RE = re.compile(
    r"(?:[^\w∞∅"  # letters and digits; ∞ and ∅ are whole answers on their own
    r"\u0300-\u036f"  # combining diacritics
    r"\u0900-\u0963\u0966-\u0dff"  # Indic scripts with their vowel signs (not the danda)
    r"\u0e31\u0e34-\u0e3a\u0e47-\u0e4e"  # Thai vowel and tone marks
    r"]|_)+"
)
"""A run of characters that carry no content: punctuation, symbols, whitespace, underscores."""


def _is_cjk(ch: str) -> bool:
    return bool(_CJK_RE.fullmatch(ch))


def normalize_for_gate(text: str) -> str:
    """NFKC, casefold, every run of non-letter/non-digit characters to one space, stripped.

    ``"**Let’s solve it step-by-step:**"`` → ``"let s solve it step by step"``. Apostrophes become
    spaces on both sides of a comparison (phrases go through the same function), so curly and
    straight quotes match. Combining marks stay in their word (Devanagari vowel signs). One
    regex pass, so a 100 kB response costs a few milliseconds.
    """
    t = unicodedata.normalize("NFKC", text).casefold()
    return _NON_CONTENT_RE.sub(" ", t).strip()


def tokens_for_gate(text: str) -> list[str]:
    """Words of :func:`normalize_for_gate`, with each CJK character its own token.

    CJK text has no spaces, so without this a whole Chinese sentence would be one "word" and
    overlap measures would see nothing in common between a question and its restatement.
    """
    return _CJK_RE.sub(r" \1 ", normalize_for_gate(text)).split()


# --- gates ---------------------------------------------------------------------------------------

_QUOTED_RE = re.compile(
    r'"([^"\n]{1,300})"|“([^”\n]{1,300})”|‘([^’\n]{1,300})’|`([^`\n]{1,300})`|「([^」\n]{1,300})」'
    r"|(?<!\w)'([^'\n]{1,300})'(?!\w)"
)
_ASKING_FIELDS = ("query", "instruction")


def asked_verbatim(response: str, fields: Mapping[str, str]) -> bool:
    """Whether the query or instruction quotes exactly this response (``Reply with "OK"``).

    Then a short or restating response is what was asked for, not a trick. The exemption cannot
    be abused: the policy writes the response, not the query.
    """
    target = normalize_for_gate(response)
    if not target:
        return False
    for field in _ASKING_FIELDS:
        for m in _QUOTED_RE.finditer(fields.get(field) or ""):
            quoted = next(g for g in m.groups() if g is not None)
            if normalize_for_gate(quoted) == target:
                return True
    return False


_VISIBLE_RE = re.compile(r"[^\s\u200b-\u200f\u2060-\u2064\ufeff\u00ad\u034f\u180e]")


class EmptyGate:
    """The response is empty, or only whitespace and invisible characters (zero-width spaces).

    Args:
        name: the gate name reported in metadata.
    """

    def __init__(self, *, name: str = "empty") -> None:
        self.name = name

    def check(self, response: str, fields: Mapping[str, str]) -> str | None:
        if _VISIBLE_RE.search(response):
            return None
        return "the response is empty or whitespace only"

    def __repr__(self) -> str:
        return f"EmptyGate(name={self.name!r})"


DEFAULT_MASTER_KEYS: tuple[str, ...] = (
    # Reasoning openers (One-Token paper) and their paraphrases.
    "thought process",
    "thinking process",
    "my thought process",
    "thoughts",
    "thinking",
    "think",
    "let's solve this problem step by step",
    "let's solve this step by step",
    "let's solve the problem step by step",
    "let's solve this problem",
    "let's solve this",
    "let's solve it",
    "let's think step by step",
    "let's think about this step by step",
    "let's think about this",
    "let's think",
    "let us think step by step",
    "let us solve this problem step by step",
    "let me think step by step",
    "let me think about this",
    "let me think",
    "let me solve this step by step",
    "let me solve this",
    "let me work through this",
    "let me explain",
    "let me",
    "let us",
    "let's",
    "let's break this down",
    "let's break it down",
    "let's work through this",
    "let's begin",
    "let's start",
    "let's get started",
    "let's see",
    "step by step",
    "to solve this problem",
    "to solve this",
    "in order to solve this problem",
    "we need to",
    "first we need to",
    "firstly",
    # Announcements of an answer that never comes.
    "solution",
    "the solution",
    "solution process",
    "full solution",
    "detailed solution",
    "step by step solution",
    "answer",
    "the answer",
    "the answer is",
    "my answer",
    "my answer is",
    "final answer",
    "the final answer",
    "the final answer is",
    "correct answer",
    "the correct answer is",
    "response",
    "explanation",
    "reasoning",
    "analysis",
    "proof",
    "result",
    "the result is",
    "here is the answer",
    "here's the answer",
    "here is my answer",
    "here's my answer",
    "here is the solution",
    "here's the solution",
    "here is how",
    "here's how",
    "here is",
    "here's",
    "here you go",
    "as follows",
    "the following",
    # Fillers, acknowledgements and greetings.
    "okay",
    "ok",
    "sure",
    "certainly",
    "of course",
    "absolutely",
    "alright",
    "all right",
    "well",
    "hmm",
    "um",
    "uh",
    "great question",
    "good question",
    "interesting question",
    "what a great question",
    "thanks for asking",
    # Multilingual openers and "answer:"/"solution:" labels.
    "解",
    "解答",
    "解析",
    "解法",
    "答",
    "答案",
    "回答",
    "思路",
    "分析",
    "解题思路",
    "解题过程",
    "思考过程",
    "首先",
    "让我们一步一步地思考",
    "让我们一步步思考",
    "让我们一步一步来",
    "我们一步一步来",
    "嗯",
    "好的",
    "考え方",
    "解説",
    "答え",
    "ステップバイステップで考えましょう",
    "かいせつ",
    "かいとう",
    "こたえ",
    "풀이",
    "답",
    "해설",
    "lösung",
    "antwort",
    "denkprozess",
    "lass uns schritt für schritt denken",
    "solución",
    "respuesta",
    "proceso de pensamiento",
    "pensemos paso a paso",
    "vamos a resolver este problema paso a paso",
    "réponse",
    "raisonnement",
    "processus de réflexion",
    "réfléchissons étape par étape",
    "решение",
    "ответ",
    "ход мыслей",
    "давайте подумаем шаг за шагом",
    "давайте решим эту задачу шаг за шагом",
    "solução",
    "resposta",
    "vamos pensar passo a passo",
    "soluzione",
    "risposta",
    "ragionamento",
    "الحل",
    "الجواب",
    "الإجابة",
    "हल",
    "उत्तर",
)
"""Phrases that carry no answer on their own, matched after :func:`normalize_for_gate`.

Extend per task with ``MasterKeyGate(extra_phrases=...)``. Bare numbers and ``yes``/``no`` are
deliberately absent: they are complete answers.
"""

_ENUMERATOR_RE = re.compile(
    r"(?:step|part|stage|phase|schritt|paso|étape|шаг|步骤|第)\s*(?:\d+|one|two|three|i{1,3}|一|二|三)"
    r"(?:\s*步)?"
)
"""``Step 1``, ``Part II``, ``第一步``: scaffolding, not content."""

_DANGLING_MAX_WORDS = 12


def _word_set(text: str) -> frozenset[str]:
    return frozenset(text.split())


META_WORDS: frozenset[str] = _word_set(
    """
    solve solving solved solution solutions answer answers answering step steps problem problems
    question questions reasoning thought thoughts thinking process analyze analyse analyzing
    analysing analysis approach explanation explain explaining proof prove figure breakdown
    consider considering understand understanding calculate calculating compute computing
    determine determining evaluate evaluating tackle begin beginning start started starting dive
    walk final result response help
    """
)
"""Words that talk *about* answering. A response made only of these and :data:`STOP_WORDS`, with
at least one of these, says nothing ("Let me analyze this problem carefully.")."""

STOP_WORDS: frozenset[str] = _word_set(
    """
    a an the this that these those it its is are was were be been being am to of in on for with
    by and or but as at about into through from what how why which who do does did doing just s
    t ll ve re d m i me my we us our you your let lets then now next first firstly second so well
    here there carefully careful closely quickly briefly think look looking see need needs going
    go will would can could should must shall may might try trying out up down over some bit
    little more detail details detailed following follows below above way best simple simply
    easy clearly get make sense one all boxed therefore thus hence finally overall conclusion
    summary basically essentially happy glad pleased
    """
)
"""Function words and soft fillers: neutral on their own ("It is." passes), no content either."""


class MasterKeyGate:
    """The response is a "master key": punctuation only, or openers and fillers with no content.

    Three checks after normalisation, each content-free by construction:

    1. Nothing but punctuation and symbols (``":"``, ``"..."``, ``"**"``).
    2. Known phrases and step enumerators stripped from the front again and again (longest
       first, on word boundaries; CJK phrases need none) leave nothing: the response only
       *announces* reasoning or an answer ("Thought process:", "**Solution**\\n\\nStep 1:",
       "Sure! Let me think.", "解：").
    3. What is left is made only of :data:`META_WORDS` and :data:`STOP_WORDS`, and either has a
       meta word or followed a strong opener ("Let me analyze this problem carefully.", "Let me
       think about it."). This generalises the phrase list to openers nobody listed, while any
       content word (a number, a name, "yes") lets the response through, and a filler before a
       real short answer does not count ("Sure, it is." passes).

    Independently, a short response (at most 12 words) that ends in a colon is an opener that
    never delivers ("Here is how we approach this:"). A response that the query or instruction
    quotes verbatim (``Reply with "OK"``) is never gated: it is exactly what was asked.

    Args:
        phrases: the base phrase list (default :data:`DEFAULT_MASTER_KEYS`).
        extra_phrases: more phrases for a task or language, added to ``phrases``.
        dangling_colon: also gate short responses ending in a colon.
        vocabulary: apply check 3 (English meta-word vocabulary).
        name: the gate name reported in metadata.
    """

    def __init__(
        self,
        *,
        phrases: Iterable[str] = DEFAULT_MASTER_KEYS,
        extra_phrases: Iterable[str] = (),
        dangling_colon: bool = True,
        vocabulary: bool = True,
        name: str = "master_key",
    ) -> None:
        normalized = {normalize_for_gate(p) for p in (*phrases, *extra_phrases)}
        normalized.discard("")
        # Longest first, so "the answer is" is removed whole rather than leaving "is".
        self.phrases: tuple[str, ...] = tuple(sorted(normalized, key=lambda p: (-len(p), p)))
        self._strong = frozenset(p for p in self.phrases if _is_strong(p))
        self.dangling_colon = dangling_colon
        self.vocabulary = vocabulary
        self.name = name

    def __repr__(self) -> str:
        return f"MasterKeyGate(name={self.name!r}, phrases={len(self.phrases)})"

    def _strip_openers(self, text: str) -> tuple[str, bool]:
        """Strip known phrases and enumerators from the front; also say if a strong one went.

        A phrase is *strong* when it announces reasoning or an answer (it has a meta word,
        starts with "let", is a step enumerator, or is not plain ASCII, as the multilingual
        answer labels are); fillers such as "sure" or "here" are weak.
        """
        strong = False
        while text:
            m = _ENUMERATOR_RE.match(text)
            if m and (m.end() == len(text) or text[m.end()] == " "):
                text, strong = text[m.end() :].lstrip(), True
                continue
            for p in self.phrases:
                if text.startswith(p):
                    end = len(p)
                    if end == len(text) or text[end] == " " or _is_cjk(p[-1]):
                        text = text[end:].lstrip()
                        strong = strong or p in self._strong
                        break
            else:
                break
        return text, strong

    def check(self, response: str, fields: Mapping[str, str]) -> str | None:
        reason = self._reason(response)
        if reason is None or asked_verbatim(response, fields):
            return None
        return reason

    def _reason(self, response: str) -> str | None:
        norm = normalize_for_gate(response)
        if not norm:
            if not response.strip():
                return None  # empty: EmptyGate's business, so the reason names the right gate
            return "the response contains only punctuation or symbols (a master key)"
        rest, strong = self._strip_openers(norm)
        if not rest:
            return f"the response is only an opener with no content: {_quote(response)}"
        words = _ENUMERATOR_RE.sub(" ", rest).split()
        if (
            self.vocabulary
            and all(w in META_WORDS or w in STOP_WORDS for w in words)
            and (strong or any(w in META_WORDS for w in words))
        ):
            return f"the response talks about answering but says nothing: {_quote(response)}"
        stripped = response.strip().rstrip("*_`~ \t")
        if (
            self.dangling_colon
            and stripped.endswith((":", "："))
            and len(norm.split()) <= _DANGLING_MAX_WORDS
        ):
            return f"the response announces an answer and stops: {_quote(response)}"
        return None


def _is_strong(phrase: str) -> bool:
    words = phrase.split()
    return (
        not phrase.isascii() or words[0] in ("let", "lets") or any(w in META_WORDS for w in words)
    )


_COPY_TASK_RE = re.compile(
    r"\b(?:repeat|copy|echo|verbatim|word for word|restate|rephrase|paraphrase|reword|quote"
    r"|capitali[sz]e|uppercase|lowercase|upper case|lower case|title case|spell|proofread"
    r"|transliterate|reformat|format|extract|fix the|correct the|normali[sz]e)\b"
    r"|重复|复述|改写|转述",
    re.IGNORECASE,
)
"""Queries whose answer is legitimately (almost) a copy of their own text."""
_RESTATE_FRAMING: tuple[str, ...] = (
    "question",
    "the question",
    "the question is",
    "your question",
    "your question is",
    "you asked",
    "you are asking",
    "you're asking",
    "the user asked",
    "the user asks",
    "to restate the question",
    "restating the question",
    "query",
    "problem",
    "the problem",
    "the problem is",
    "task",
    "问题",
    "题目",
)


_RESTATE_MAX_RATIO = 8
_RESTATE_MAX_EXTRA = 500
_FRAMING_WORDS = _word_set(
    """
    restating restate restated rephrasing rephrase asked asking ask asks question query problem
    user wants want know repeat repeating your you
    """
)


class RestateGate:
    """The response restates the query (or the instruction) instead of answering it.

    After dropping a leading "Question:" / "You asked:" framing, a response of at least
    ``min_tokens`` tokens is gated when, against one of the ``against`` fields, any of these holds:

    * its token set is nearly that field's (Jaccard >= ``threshold``) and in the field's order;
    * it is a contiguous copy of a large part of the field (at least ``min_coverage`` of the
      field's tokens);
    * it repeats the field in order (the shared words cover at least ``echo_coverage`` of the
      field, in its order) and everything it adds is framing, function or meta words ("So you
      want to know what the capital of France is. Let me think about this question.").

    Short answers quoted from the query ("Which is larger, 3 or 5?" → "5"; a multiple-choice
    option) are safe by the length conditions; a reordering (sorting words, "Is the sky blue?" →
    "The sky is blue.") or an added content word ("... It is Paris.") is not a restatement. A
    field that asks for a copy or a transformation of its own text (repeat, paraphrase, quote,
    capitalize, extract...), or quotes the response verbatim (``Say "I love Python"``), is
    skipped, since restating is then the task. A response more than 8 times (+ 500 characters)
    longer than the field is not checked at all, which bounds the work on long responses.

    Args:
        threshold: the Jaccard similarity at or above which the response is a restatement.
        min_coverage: the share of the field a contiguous copy must cover.
        echo_coverage: the share of the field an in-order echo with only filler added must cover.
        min_tokens: responses shorter than this are never gated here.
        against: the fields holding the question; absent ones are skipped.
        name: the gate name reported in metadata.
    """

    def __init__(
        self,
        *,
        threshold: float = 0.9,
        min_coverage: float = 0.6,
        echo_coverage: float = 0.8,
        min_tokens: int = 3,
        against: Sequence[str] = ("query", "instruction"),
        name: str = "restates_query",
    ) -> None:
        self.threshold = threshold
        self.min_coverage = min_coverage
        self.echo_coverage = echo_coverage
        self.min_tokens = min_tokens
        self.against = tuple(against)
        self.name = name
        self._framing = MasterKeyGate(
            phrases=_RESTATE_FRAMING, dangling_colon=False, vocabulary=False
        )

    def __repr__(self) -> str:
        return f"RestateGate(name={self.name!r}, threshold={self.threshold})"

    def check(self, response: str, fields: Mapping[str, str]) -> str | None:
        for field in self.against:
            text = fields.get(field)
            if not text or _COPY_TASK_RE.search(text):
                continue
            if len(response) > _RESTATE_MAX_RATIO * len(text) + _RESTATE_MAX_EXTRA:
                continue  # far longer than the question: not a restatement (and cheap to skip)
            reason = self._against(response, field, text)
            if reason is not None:
                return None if asked_verbatim(response, fields) else reason
        return None

    def _against(self, response: str, field: str, text: str) -> str | None:
        r = tokens_for_gate(self._framing._strip_openers(normalize_for_gate(response))[0])
        q = tokens_for_gate(text)
        if len(r) < self.min_tokens or not q:
            return None
        rs, qs = set(r), set(q)
        # Restating keeps the query's word order; an answer to a yes/no question often reuses its
        # words in a different order ("Is the sky blue?" → "The sky is blue."), so every rule
        # below wants the shared words in the query's order.
        in_order = _ordered_prefix(q, [t for t in r if t in qs]) >= self.echo_coverage * len(q)
        jaccard = len(rs & qs) / len(rs | qs)
        if jaccard >= self.threshold and in_order:
            return f"the response restates the {field} (token Jaccard {jaccard:.2f})"
        if len(r) >= self.min_coverage * len(q) and _contains(q, r):
            return f"the response is a copy of the {field}'s text"
        if in_order and all(_is_filler(t) for t in r if t not in qs):
            return f"the response repeats the {field} and adds nothing"
        return None


def _is_filler(token: str) -> bool:
    return token in _FRAMING_WORDS or token in META_WORDS or token in STOP_WORDS


def _ordered_prefix(haystack: Sequence[str], needle: Sequence[str]) -> int:
    """How many leading tokens of ``needle`` occur in ``haystack`` in the same order (greedy).

    Linear time, and it stops at the first token out of order, so a reordering scores low.
    """
    i = matched = 0
    for tok in needle:
        while i < len(haystack) and haystack[i] != tok:
            i += 1
        if i == len(haystack):
            break
        matched += 1
        i += 1
    return matched


def _contains(haystack: Sequence[str], needle: Sequence[str]) -> bool:
    n = len(needle)
    return any(haystack[i : i + n] == needle for i in range(len(haystack) - n + 1))


def _quote(text: str, limit: int = 80) -> str:
    t = " ".join(text.split())
    return repr(t if len(t) <= limit else t[:limit] + "…")


# Imported here, not at the top: the grader-addressing gate uses this module's normalisation,
# so it must load after everything above is defined (graders/__init__ always loads this first).
from graders._degenerate import (  # noqa: E402
    KeywordStuffingGate,
    LengthGate,
    NearCopyGate,
    NonAnswerGate,
    RepetitionGate,
)
from graders._inject_gate import AddressesGraderGate  # noqa: E402

DEFAULT_PREGATES: tuple[PreGate, ...] = (
    EmptyGate(),
    MasterKeyGate(),
    RestateGate(),
    AddressesGraderGate(),
    NearCopyGate(),
    RepetitionGate(),
    KeywordStuffingGate(),
)
"""The gates the named judges run by default: empty, master key, restates the query, addresses
the grader, near-copy of the query, degenerate repetition, keyword stuffing. Each criterion adds
its own (:data:`CRITERION_PREGATES`)."""

PREGATE_TYPES: dict[str, type] = {
    "empty": EmptyGate,
    "master_key": MasterKeyGate,
    "restates_query": RestateGate,
    "addresses_grader": AddressesGraderGate,
    "near_copy": NearCopyGate,
    "repetition": RepetitionGate,
    "keyword_stuffing": KeywordStuffingGate,
    "non_answer": NonAnswerGate,
    "length": LengthGate,
}
"""The built-in gates by the name a YAML config uses (``pregates: [empty, master_key]``)."""

CRITERION_PREGATES: dict[str, tuple[PreGate, ...]] = {
    "relevance": (NonAnswerGate(), LengthGate()),
    "relevance_embedding": (NonAnswerGate(), LengthGate()),
    "similarity": (NonAnswerGate(), LengthGate()),
    "instruction_following": (NonAnswerGate(), LengthGate()),
    "correctness": (NonAnswerGate(),),
    "harmfulness": (),
}
"""What each criterion runs on top of :data:`DEFAULT_PREGATES`, keyed by the grader's default
name. No non-answer gate for harmfulness: a refusal is the *right* answer to a harmful request.
No length gate for correctness (a reasoning trace before a short final answer is legitimately
long) nor harmfulness (harm is not a matter of length)."""


def default_pregates(criterion: str = "") -> tuple[PreGate, ...]:
    """The default gate set of a criterion: :data:`DEFAULT_PREGATES` plus its own."""
    return DEFAULT_PREGATES + CRITERION_PREGATES.get(criterion, ())


def _edit_pregates(base: Sequence[PreGate], edits: Mapping[object, object]) -> list[PreGate]:
    """``base`` with gates switched off (``false``), on (``true``) or re-parametrised (a map)."""
    gates = list(base)
    for kind, value in edits.items():
        if kind not in PREGATE_TYPES:
            raise ConfigError(f"unknown pre-gate {kind!r}; known: {sorted(PREGATE_TYPES)}")
        if value is True and any(g.name == kind for g in gates):
            continue
        gates = [g for g in gates if g.name != kind]
        if value is False:
            continue
        if value is not True and not isinstance(value, Mapping):
            raise ConfigError(
                f"pre-gate {kind!r}: expected true, false or parameters, got {value!r}"
            )
        try:
            gates.append(PREGATE_TYPES[kind](**({} if value is True else value)))
        except TypeError as exc:
            raise ConfigError(f"pre-gate {kind!r}: {exc}") from None
    return gates


def resolve_pregates(specs: object, *, criterion: str = "") -> tuple[PreGate, ...]:
    """Gate objects from what a grader was given: gate objects, names, or ``{type: ...}`` maps.

    A config spells gates by name (``pregates: [empty, master_key, restates_query]`` turns the
    ``addresses_grader`` gate off; ``pregates: []`` turns every gate off) or with parameters
    (``{type: master_key, extra_phrases: [...]}``); Python callers pass gate objects.
    ``None``, ``true``, ``"default"`` or :data:`DEFAULT_PREGATES` itself stand for the
    criterion's default set (:func:`default_pregates`), ``false`` for none, and a map of gate
    names edits that default set: ``{length: false}`` drops a gate, ``{length: true}`` adds one,
    ``{repetition: {max_compression: 0.05}}`` re-parametrises one.

    Raises:
        ConfigError: an unknown name, bad parameters, or an object that is not a gate.
    """
    if specs is None or specs is True or specs is DEFAULT_PREGATES or specs == "default":
        return default_pregates(criterion)
    if specs is False:
        return ()
    if isinstance(specs, Mapping) and "type" not in specs:
        return tuple(_edit_pregates(default_pregates(criterion), specs))
    if isinstance(specs, str | Mapping):
        specs = [specs]
    gates: list[PreGate] = []
    for spec in specs:
        if isinstance(spec, str | Mapping):
            params = {"type": spec} if isinstance(spec, str) else dict(spec)
            kind = params.pop("type", None)
            if kind not in PREGATE_TYPES:
                raise ConfigError(
                    f"unknown pre-gate {kind!r}; known: {sorted(PREGATE_TYPES)} (or a gate object)"
                )
            try:
                gates.append(PREGATE_TYPES[kind](**params))
            except TypeError as exc:
                raise ConfigError(f"pre-gate {kind!r}: {exc}") from None
        elif isinstance(spec, PreGate):
            gates.append(spec)
        else:
            raise ConfigError(
                f"a pre-gate must be a name, a {{type: ...}} map or a gate, got {spec!r}"
            )
    return tuple(gates)


def check_pregate_score(value: object) -> float:
    """``value`` as the score of a gated response, or a ``ConfigError``: a number in [0, 1]."""
    if isinstance(value, bool) or not (isinstance(value, int | float) and 0.0 <= value <= 1.0):
        raise ConfigError(f"pregate_score must be in [0, 1], got {value!r}")
    return float(value)


def pregate_result(
    gates: Iterable[PreGate], response: str, fields: Mapping[str, str], *, name: str, score: float
) -> GraderScore | None:
    """The verdict on a gated response, or ``None`` when no gate fires.

    A hit is a real score (the response was graded, and it is worthless), never an error:
    ``GraderScore(score, "pre-gate: <reason>", metadata={"pregate": <gate name>})``.
    """
    hit = first_gate_hit(gates, response, fields)
    if hit is None:
        return None
    gate, reason = hit
    return GraderScore(
        name=name, score=score, reason=f"pre-gate: {reason}", metadata={"pregate": gate}
    )


def first_gate_hit(
    gates: Iterable[PreGate], response: str, fields: Mapping[str, str]
) -> tuple[str, str] | None:
    """``(gate name, reason)`` of the first gate that fires, or ``None``."""
    for gate in gates:
        reason = gate.check(response, fields)
        if reason:
            return gate.name, reason
    return None
