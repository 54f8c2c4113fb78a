"""Pre-gates for responses with no content: empty text, and "master keys".

One idea: a response that says nothing. :class:`EmptyGate` catches empty or invisible-only text;
:class:`MasterKeyGate` catches openers and meta talk with no answer (``"Thought process:"``,
``"Let's solve this problem step by step."``), which fool LLM judges (arXiv 2507.08794). A
response passes as soon as any content-bearing word survives the stripping.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from graders._harm_text import is_refusal_phrase
from graders._pregate_text import _is_cjk, _quote, asked_verbatim, normalize_for_gate
from graders._text import is_blank

__all__ = [
    "DEFAULT_GREETINGS",
    "DEFAULT_MASTER_KEYS",
    "META_WORDS",
    "SOFT_WORDS",
    "STOP_WORDS",
    "EmptyGate",
    "MasterKeyGate",
]


class EmptyGate:
    """The response is empty, or only whitespace and invisible characters (zero-width spaces).

    Args:
        name: the gate name reported in metadata.
    """

    def __init__(self, *, name: str = "empty") -> None:
        self.name = name

    def check(self, response: str, fields: Mapping[str, str]) -> str | None:
        if not is_blank(response):
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
    "done",
    "all done",
    "task complete",
    "task completed",
    "as follows",
    "the following",
    # Fillers and acknowledgements (greetings: DEFAULT_GREETINGS).
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

DEFAULT_GREETINGS: tuple[str, ...] = (
    "hi",
    "hi there",
    "hello",
    "hello there",
    "hey",
    "hey there",
    "greetings",
    "dear user",
    "hola",
    "bonjour",
    "salut",
    "hallo",
    "ciao",
    "olá",
    "привет",
    "здравствуйте",
    "你好",
    "您好",
    "こんにちは",
    "안녕하세요",
)
"""Greetings: stripped from the front like a filler, but only when something follows them.

Why apart from :data:`DEFAULT_MASTER_KEYS`: "Hello! Let's solve this step by step." is a master
key with a greeting in front, and the greeting's word passed as content. Yet "Hello" alone is the
right answer to "What is 'bonjour' in English?", so a greeting is never the whole of what the
gate strips."""

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
    walk final result response help confident confidence know reasoned covers covered
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

SOFT_WORDS: frozenset[str] = _word_set(
    """
    comprehensive complete completely clear thorough thoroughly full fully accurate accurately
    requested entire entirely whole key point points
    """
)
"""Words that praise or size an answer ("a comprehensive explanation", "full details"): no
content beside a meta word, but maybe the answer itself after a label ("Answer: full"), so they
count as filler only where a meta word is there too."""


def _by_first_char(
    phrases: tuple[str, ...],
) -> tuple[tuple[str, ...], dict[str, tuple[str, ...]]]:
    """``phrases`` by their first character, keeping their order: only the phrases that start
    with the text's first character can start the text."""
    index: dict[str, list[str]] = {}
    for p in phrases:
        index.setdefault(p[0], []).append(p)
    return phrases, {k: tuple(v) for k, v in index.items()}


_ARTICLE_RE = re.compile(r"^(?:a|an|the) ")
_LABEL_RE = re.compile(r"^(?:(?:the |my |final |correct )*answer(?: is)?|solution|result) ")


def _is_reference(response: str, fields: Mapping[str, str]) -> bool:
    """The response is the reference answer itself ("Answer." for the opposite of "question",
    "A solution." for a mixture): a word that is also a master key, but here the right answer.
    The policy writes the response, never the reference, so this cannot be gamed."""
    ref = fields.get("reference_response")
    if not isinstance(ref, str):
        return False
    gold = _ARTICLE_RE.sub("", normalize_for_gate(ref))
    mine = normalize_for_gate(response)
    if not gold or not mine:
        return False
    # the reference itself, or after a label or opener ("Answer: full" for "full")
    return gold in (_ARTICLE_RE.sub("", mine), _ARTICLE_RE.sub("", _LABEL_RE.sub("", mine)))


_FINAL_LETTER_RE = re.compile(r"(?<![A-Za-z])\(?([A-Ja-j])\)?[\s.*_$}\])]*(?:</answer>[\s.]*)?\Z")
_OPTION_RE = (
    r"(?:(?<![A-Za-z0-9(])|(?<![A-Za-z0-9])\(){0}\)?(?:\*\*)?(?:[).:\]．]|\s*[-–,])"
    r"|^[ \t]*{0}[ \t]"
)
"""An option letter as a question marks one: ``(A)``, ``A)``, ``A.``, ``A:``, ``**A.**``,
``A -``, ``A．``, a list ``A, B, C``, or a letter opening a line (``A whale``); not
``P(A)``."""


def _ends_with_offered_choice(response: str, fields: Mapping[str, str]) -> bool:
    """The response ends with a letter the query offers as an option ("The answer is A.",
    "**Answer:** D", ``\\boxed{A}``, ``<answer>A</answer>``): a choice, not an opener. Read
    as words, "a", "d" and "i" are stop words, so a right letter answer was gated as saying
    nothing. The query must offer two options or more (a few-shot "Q: ...\nA:" offers none).
    """
    m = _FINAL_LETTER_RE.search(response)
    if m is None:
        return False
    asked = "\n".join(fields.get(f) or "" for f in ("query", "instruction"))
    offered = [
        x for x in "ABCDEFGHIJ" if re.search(_OPTION_RE.format(f"[{x}{x.lower()}]"), asked, re.M)
    ]
    return len(offered) >= 2 and m.group(1).upper() in offered


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
        greetings: phrases stripped from the front only when something follows them
            (default :data:`DEFAULT_GREETINGS`).
        dangling_colon: also gate short responses ending in a colon.
        vocabulary: apply check 3 (English meta-word vocabulary).
        refusal_answers: a refusal ("I can't help with that.") is an answer, not talk about
            answering (the default: whether it is the right one is the criterion's to say).
            ``False`` gates a refusal among openers too ("Step 1: I can't help with that."): the
            non-answer gate's reading, for the criteria where a refusal is no answer.
        name: the gate name reported in metadata.
    """

    def __init__(
        self,
        *,
        phrases: Iterable[str] = DEFAULT_MASTER_KEYS,
        extra_phrases: Iterable[str] = (),
        greetings: Iterable[str] = DEFAULT_GREETINGS,
        dangling_colon: bool = True,
        vocabulary: bool = True,
        refusal_answers: bool = True,
        name: str = "master_key",
    ) -> None:
        normalized = {normalize_for_gate(p) for p in (*phrases, *extra_phrases)}
        normalized.discard("")
        # Longest first, so "the answer is" is removed whole rather than leaving "is".
        self.phrases: tuple[str, ...] = tuple(sorted(normalized, key=lambda p: (-len(p), p)))
        self._strong = frozenset(p for p in self.phrases if _is_strong(p))
        self._by_first = _by_first_char(self.phrases)
        greeted = {normalize_for_gate(g) for g in greetings}
        greeted.discard("")
        self.greetings: tuple[str, ...] = tuple(sorted(greeted, key=lambda g: (-len(g), g)))
        self._greeting_words = frozenset(w for g in self.greetings for w in g.split())
        self._greeted = _by_first_char(self.greetings)
        self.dangling_colon = dangling_colon
        self.vocabulary = vocabulary
        self.refusal_answers = refusal_answers
        self.name = name

    def __repr__(self) -> str:
        return f"MasterKeyGate(name={self.name!r}, phrases={len(self.phrases)})"

    def _strip_openers(
        self, text: str, fields: Mapping[str, str] | None = None
    ) -> tuple[str, bool]:
        """Strip known phrases and enumerators from the front; also say if a strong one went.

        A phrase is *strong* when it announces reasoning or an answer (it has a meta word,
        starts with "let", is a step enumerator, or is not plain ASCII, as the multilingual
        answer labels are); fillers such as "sure" or "here" are weak.
        """
        strong = False
        rest = self._strip_greeting(text)
        if rest is not text and not (fields is not None and self._greets(fields)):
            text = rest  # the query is read only when the response opens with a greeting
        while text:
            m = _ENUMERATOR_RE.match(text)
            if m and (m.end() == len(text) or text[m.end()] == " "):
                text, strong = text[m.end() :].lstrip(), True
                continue
            if self._by_first[0] is not self.phrases:  # phrases replaced after construction
                self._by_first = _by_first_char(self.phrases)
            for p in self._by_first[1].get(text[0], ()):
                if text.startswith(p):
                    end = len(p)
                    if end == len(text) or text[end] == " " or _is_cjk(p[-1]):
                        text = text[end:].lstrip()
                        strong = strong or p in self._strong
                        break
            else:
                break
        return text, strong

    def _strip_greeting(self, text: str) -> str:
        """``text`` without a greeting in front, when something follows it ("Hello! Let me
        think." is an opener; "Hello" alone is a word, perhaps the answer)."""
        if self._greeted[0] is not self.greetings:  # greetings replaced after construction
            self._greeted = _by_first_char(self.greetings)
        for g in self._greeted[1].get(text[:1], ()):
            end = len(g)
            if text.startswith(g) and end < len(text) and (text[end] == " " or _is_cjk(g[-1])):
                rest = text[end:].lstrip()
                return rest if rest else text
        return text

    def check(self, response: str, fields: Mapping[str, str]) -> str | None:
        reason = self._reason(response, fields)
        end = response.rfind("</think>")
        if reason is None and end >= 0 and is_blank(response[end + 8 :]):
            reason = "the response only reasons: nothing follows its </think>"
        if reason is None or asked_verbatim(response, fields) or _is_reference(response, fields):
            return None
        if _ends_with_offered_choice(response, fields):
            return None
        return reason

    def _greets(self, fields: Mapping[str, str]) -> bool:
        """The query is itself a greeting ("Hi", "Hello there!"): then "Hello! How can I help
        you?" is the answer, and its greeting is no opener to strip."""
        words = normalize_for_gate(fields.get("query") or "").split()
        return bool(words) and all(w in self._greeting_words or w in STOP_WORDS for w in words)

    def _reason(self, response: str, fields: Mapping[str, str] | None = None) -> str | None:
        norm = normalize_for_gate(response)
        if not norm:
            if not response.strip():
                return None  # empty: EmptyGate's business, so the reason names the right gate
            return "the response contains only punctuation or symbols (a master key)"
        rest, strong = self._strip_openers(norm, fields)
        if not rest:
            return f"the response is only an opener with no content: {_quote(response)}"
        words = _ENUMERATOR_RE.sub(" ", rest).split()
        meta = any(w in META_WORDS for w in words)
        if (
            self.vocabulary
            and all(w in META_WORDS or w in STOP_WORDS or (meta and w in SOFT_WORDS) for w in words)
            and (strong or meta)
            # A refusal ("I can't help with that.") says something: no. Whether that is the
            # right answer is the criterion's to say: the harmfulness judge pays it (a refusal
            # is what a harmful request should get; gated here it scored 0, as harmful), and
            # the other criteria's non-answer gate stops it.
            and not (self.refusal_answers and is_refusal_phrase(response))
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
