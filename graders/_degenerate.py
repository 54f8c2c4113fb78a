"""Gates for degenerate text: near-copies of the query, non-answers, keyword stuffing, repetition
and runaway length.

Why: a policy optimised against an embedding grader or a gullible judge finds text that scores
without answering. Echoing the prompt earns full embedding relevance (the response *is* on topic);
"Great question, it depends on many factors" fits every query; a bag of the query's keywords, a
sentence repeated fifty times or ten pages of padding look relevant to a model that reads only
the topic or only the first 256 tokens. Each gate here is a cheap, deterministic rule with the
:class:`~graders._pregate.PreGate` shape (``name`` + ``check(response, fields) -> reason | None``),
so the graders run them before any model, and a hit is a real score (0 or the configured
penalty) with the reason in ``metadata["pregate"]``.

Every gate errs on the side of letting a response through: an honest short answer that reuses
the query's words ("The capital of France is Paris"), a terse list, code, a long honest answer,
a refusal with alternatives, repetition that the query asks for, must never be gated. Which gate
runs for which criterion is decided in :mod:`graders._gateset` (a refusal is a *good* answer for
harmfulness, so the non-answer gate is not run there).
"""

from __future__ import annotations

import html
import re
import unicodedata
import zlib
from collections import Counter
from collections.abc import Mapping, Sequence

from graders._pregate import (
    _COPY_TASK_RE,
    _FRAMING_WORDS,
    META_WORDS,
    STOP_WORDS,
    _quote,
    asked_verbatim,
    normalize_for_gate,
    tokens_for_gate,
)

__all__ = [
    "FUNCTION_WORDS",
    "FUNCTION_WORDS_BY_LANGUAGE",
    "GENERIC_WORDS",
    "KeywordStuffingGate",
    "LengthGate",
    "NearCopyGate",
    "NonAnswerGate",
    "RepetitionGate",
    "asks_for_repetition",
    "compression_ratio",
    "length_limit",
]


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


FUNCTION_WORDS_BY_LANGUAGE: dict[str, frozenset[str]] = {
    "en": _words(
        """
        a an the of to in on at by for with from into onto about as than then so and or nor but
        if is are was were be been being am do does did done has have had having can could will
        would shall should may might must not no it its this that these those there here which
        who whom whose what when where why how i you he she we they me him her us them my your
        his our their s t ll ve re d m also very just only all each any some such own same other
        more most both up out over under after before while because through during between again
        once too
        """
    ),
    "es": _words(
        """
        el la los las lo un una unos unas de del y e o u en que es son fue era por para con sin
        se su sus al como más mas pero muy ya también este esta esto ese esa hay le les nos
        """
    ),
    "fr": _words(
        """
        le la les un une des du de et ou en est sont été être avec dans sur ce cette ces il elle
        ils elles ne pas au aux qui que mais plus se sa son ses leur je tu nous vous c l qu n j y
        """
    ),
    "de": _words(
        """
        der die das den dem des ein eine einen einem einer und oder ist sind war zu mit von im
        in auf für nicht es sich auch als wie dass bei aus nach noch nur wird werden kann hat
        haben ich
        """
    ),
    "it": _words(
        "il lo la gli le un una di e è che per con non si della delle dei al alla nel uno sono"
    ),
    "pt": _words(
        "o a os as um uma de do da dos das e é que em no na nos nas não com à ao se são foi por"
    ),
    "ru": _words(
        """
        и в во не на что с со по это как к из у о об а но за от для он она оно они мы вы я же
        бы то так его ее её их был была было были есть ли или если
        """
    ),
    "nl": _words("de het een en van in is op te dat die niet met voor zijn"),
    "pl": _words("i w na z się jest to nie że do jak ale od po co"),
    "tr": _words("ve bir bu da de için ile çok ne mi"),
    "id": _words("yang dan di ini itu dengan untuk dari ke tidak ada adalah"),
}
"""The commonest function words of eleven languages: a third to a half of the words of any
sentence in them, and almost none of a keyword dump."""

FUNCTION_WORDS: frozenset[str] = frozenset().union(*FUNCTION_WORDS_BY_LANGUAGE.values())
"""All of :data:`FUNCTION_WORDS_BY_LANGUAGE` together."""

_TASK_WORDS = _words(
    """
    name list describe define give tell show write state identify summarize summarise outline
    discuss compare mention provide please brief short concise
    """
)
"""Imperatives and softeners of a request: "Name the capital of France" asks, it says nothing."""

_EN_FILLER = (
    STOP_WORDS | META_WORDS | _FRAMING_WORDS | _TASK_WORDS | FUNCTION_WORDS_BY_LANGUAGE["en"]
)


def _filler_for(tokens: Sequence[str]) -> frozenset[str]:
    """English filler, plus the function words of every other language the text is written in.

    A language counts when at least two of its distinct function words occur. One alone is more
    likely a content word that happens to be spelt like one ("Au", the symbol of gold, is French
    "au"; "die" is German "the"), and an answer must not lose its one content word to that.
    """
    present = set(tokens)
    extra = [
        words
        for lang, words in FUNCTION_WORDS_BY_LANGUAGE.items()
        if lang != "en" and len(words & present) >= 2
    ]
    return _EN_FILLER.union(*extra)


_SUFFIXES = ("ing", "ed", "ly", "es", "s")


def _stem(token: str) -> str:
    """A crude English stem ("explained", "explains", "explaining" → "explain"; "changing",
    "change" → "chang"; "briefly" → "brief"), so a reworded echo cannot hide behind inflection.
    Only words over five letters lose a suffix; a final "e" goes from words over four."""
    if len(token) > 5 and not token.endswith("ss"):
        for suffix in _SUFFIXES:
            if token.endswith(suffix):
                token = token[: -len(suffix)]
                break
    return token[:-1] if len(token) > 4 and token.endswith("e") else token


_EN_FILLER_STEMS = frozenset(map(_stem, _EN_FILLER))


def _content_stems(tokens: Sequence[str]) -> set[str]:
    """Stems of the tokens that are not filler in the text's own languages (see
    :func:`_filler_for`); a token whose stem is an English filler word's stem is filler too."""
    filler = _filler_for(tokens)
    stems = (_stem(t) for t in tokens if t not in filler)
    return {s for s in stems if s not in _EN_FILLER_STEMS}


_CJK_RE = re.compile("[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff]")


def _mostly_cjk(text: str) -> bool:
    letters = [c for c in text if c.isalpha()]
    return bool(letters) and sum(bool(_CJK_RE.match(c)) for c in letters) >= 0.2 * len(letters)


# --- what the query asks for ---------------------------------------------------------------------

_REPEAT_TASK_RE = re.compile(
    r"\b(?:repeat\w*|again and again|over and over|(?:\d+|two|three|four|five|six|seven|eight|nine"
    r"|ten|twenty|fifty|hundred|a hundred|thousand) times|copy|echo|verbatim|loop|chant|mantra)\b"
    r"|重复|遍|繰り返",
    re.IGNORECASE,
)
_TRANSFORM_RE = re.compile(
    r"\b(?:sort|sorted|alphabeti[sz]e|reverse|rearrange|arrange|order|reorder|rank|shuffle"
    r"|dedupe|deduplicate|fill in|complete the|continue|finish the)\b",
    re.IGNORECASE,
)
_ASKING_FIELDS = ("query", "instruction")


def asks_for_repetition(fields: Mapping[str, str]) -> bool:
    """Whether the query or instruction asks for repeated text ("write 'hello' ten times")."""
    return any(_REPEAT_TASK_RE.search(fields.get(f) or "") for f in _ASKING_FIELDS)


# --- near copies of the query --------------------------------------------------------------------

_YES_NO_RE = re.compile(
    r"(?:^|[.?!:;¿]\s*)(?:is|are|was|were|do|does|did|can|could|will|would|should|shall|has|have"
    r"|had|may|might|must|isn't|aren't|wasn't|don't|doesn't|didn't|can't|won't|wouldn't"
    r"|shouldn't|es|son|está|están|puede|hay|est-ce|ist|sind|kann|gibt es)\b(?!\s+you\b)",
    re.IGNORECASE,
)
"""A clause that opens like a yes/no question: its declarative restatement *is* the answer
("Is the sky blue?" → "The sky is blue."), so only a verbatim echo is gated for it (by
:class:`~graders._pregate.RestateGate`). "Can you explain...?" is a request, not a yes/no
question."""

_NEAR_COPY_MAX_RATIO = 8
_NEAR_COPY_MAX_EXTRA = 500


class NearCopyGate:
    """The response is the query's words again, reworded or reordered, with nothing new.

    :class:`~graders._pregate.RestateGate` catches verbatim and in-order echoes; this catches the
    rest: a response whose *content* words (everything but function, filler and meta words such
    as "explain", "question", "briefly") cover at least ``min_coverage`` of the query's content
    words while adding at most ``max_new`` content words of its own. "Briefly, photosynthesis:
    explain." for "Explain photosynthesis briefly." is gated; "The capital of France is Paris."
    for "What is the capital of France?" passes (it adds "Paris"), and so does any answer that
    picks one option of a choice ("5" for "Which is larger, 3 or 5?": it covers a third).

    Not checked: yes/no questions (their declarative restatement is the answer: "Is 7 a prime
    number?" → "7 is a prime number."), queries that ask for a copy or a transformation of their
    own text (repeat, paraphrase, sort, reverse...), responses the query quotes verbatim, and
    responses more than 8 times (+ 500 characters) longer than the query.

    Args:
        min_coverage: share of the query's distinct content words the response must repeat.
        max_new: the most distinct new content words a near-copy may add.
        against: the fields holding the question; absent ones are skipped.
        name: the gate name reported in metadata.
    """

    def __init__(
        self,
        *,
        min_coverage: float = 0.8,
        max_new: int = 0,
        against: Sequence[str] = _ASKING_FIELDS,
        name: str = "near_copy",
    ) -> None:
        self.min_coverage = float(min_coverage)
        self.max_new = int(max_new)
        self.against = tuple(against)
        self.name = name

    def __repr__(self) -> str:
        return f"NearCopyGate(name={self.name!r}, min_coverage={self.min_coverage})"

    def check(self, response: str, fields: Mapping[str, str]) -> str | None:
        r: set[str] | None = None
        for field in self.against:
            text = fields.get(field)
            if not text or _COPY_TASK_RE.search(text) or _TRANSFORM_RE.search(text):
                continue
            if _YES_NO_RE.search(text):
                continue
            if len(response) > _NEAR_COPY_MAX_RATIO * len(text) + _NEAR_COPY_MAX_EXTRA:
                continue
            if r is None:
                r = _content_stems(tokens_for_gate(response))
            if not r:
                return None  # nothing but function words: the master-key gate's business
            q = _content_stems(tokens_for_gate(text))
            if not q:
                continue
            coverage = len(r & q) / len(q)
            new = r - q
            if coverage >= self.min_coverage and len(new) <= self.max_new:
                if asked_verbatim(response, fields):
                    return None
                return (
                    f"the response is a near-copy of the {field}: it repeats {coverage:.0%} of "
                    f"its content words and adds {len(new)} new"
                )
        return None


# --- non-answers ---------------------------------------------------------------------------------

_IGNORANCE_MARKERS: tuple[str, ...] = (
    "i don't know",
    "i do not know",
    "i dont know",
    "don't know",
    "dunno",
    "not sure",
    "unsure",
    "no idea",
    "no clue",
    "who knows",
    "nobody knows",
    "no one knows",
    "can't know",
    "cannot know",
    "no way of knowing",
    "no way to know",
    "impossible to know",
    "impossible to say",
    "impossible to predict",
    "hard to say",
    "hard to tell",
    "difficult to say",
    "can't say",
    "cannot say",
    "can't tell",
    "no lo sé",
    "no sé",
    "no estoy seguro",
    "no estoy segura",
    "ni idea",
    "je ne sais pas",
    "je sais pas",
    "je ne suis pas sûr",
    "je ne suis pas sûre",
    "aucune idée",
    "ich weiß nicht",
    "ich weiss nicht",
    "weiß ich nicht",
    "keine ahnung",
    "ich bin nicht sicher",
    "ich bin mir nicht sicher",
    "non lo so",
    "non sono sicuro",
    "não sei",
    "não tenho certeza",
    "я не знаю",
    "не знаю",
    "не уверен",
    "не уверена",
    "понятия не имею",
    "трудно сказать",
    "сложно сказать",
    "我不知道",
    "不知道",
    "不清楚",
    "不确定",
    "很难说",
    "说不好",
    "わかりません",
    "分かりません",
    "知りません",
    "わからない",
    "分からない",
    "なんとも言えません",
    "何とも言えません",
    "모르겠습니다",
    "모릅니다",
)
"""Statements of ignorance: an honest answer when nobody could know (see
:data:`_UNKNOWABLE_RE`), a dodge otherwise."""

_FILLER_MARKERS: tuple[str, ...] = (
    "it depends",
    "that depends",
    "this depends",
    "depends on",
    "depending on",
    "it varies",
    "varies from",
    "case by case",
    "many factors",
    "various factors",
    "several factors",
    "number of factors",
    "many things",
    "several things",
    "many ways",
    "many different ways",
    "many perspectives",
    "different perspectives",
    "many opinions",
    "different opinions",
    "different views",
    "great question",
    "good question",
    "interesting question",
    "excellent question",
    "fascinating question",
    "complex topic",
    "complex question",
    "complex issue",
    "complicated topic",
    "complicated question",
    "it's complicated",
    "it is complicated",
    "there is no simple answer",
    "there's no simple answer",
    "no easy answer",
    "no definitive answer",
    "no single answer",
    "no right answer",
    "no one size fits all",
    "everyone is different",
    "pros and cons",
    "has its merits",
    "have their merits",
    "as an ai",
    "as a language model",
    "language model",
    "i can't answer",
    "i cannot answer",
    "can't answer that",
    "cannot answer that",
    "unable to answer",
    "i'm unable to",
    "i am unable to",
    "i can't help with that",
    "i cannot help with that",
    "i can't help with this",
    "i can't provide",
    "i cannot provide",
    "need more information",
    "need more context",
    "need more details",
    "without more context",
    "without more information",
    "more context",
    "not straightforward",
    "no one right answer",
    "no one answer",
    "matter of perspective",
    "matter of opinion",
    "let me know if you have",
    "hope this helps",
    "hope that helps",
    "deserves careful consideration",
    "important topic",
    "there are many ways",
    "many ways to approach",
    "really depends",
    "all depends",
    "consult a professional",
    "consult an expert",
    "consult reliable sources",
    "reliable sources",
    "do your own research",
    "studied by many experts",
    "many experts",
    "depende",
    "depende de",
    "buena pregunta",
    "pregunta muy interesante",
    "muy buena pregunta",
    "muchos factores",
    "varios factores",
    "es complicado",
    "no puedo responder",
    "ça dépend",
    "cela dépend",
    "ca depend",
    "bonne question",
    "excellente question",
    "de nombreux facteurs",
    "plusieurs facteurs",
    "c'est compliqué",
    "je ne peux pas répondre",
    "das kommt darauf an",
    "es kommt darauf an",
    "kommt darauf an",
    "gute frage",
    "viele faktoren",
    "es ist kompliziert",
    "ich kann das nicht beantworten",
    "hängt davon ab",
    "hängt von",
    "von vielen faktoren",
    "es gibt keine eindeutige antwort",
    "dipende",
    "bella domanda",
    "buona domanda",
    "molti fattori",
    "boa pergunta",
    "muitos fatores",
    "это зависит",
    "зависит от",
    "хороший вопрос",
    "отличный вопрос",
    "интересный вопрос",
    "много факторов",
    "многих факторов",
    "я не могу ответить",
    "取决于",
    "视情况而定",
    "因人而异",
    "好问题",
    "很好的问题",
    "很多因素",
    "许多因素",
    "无法回答",
    "一言难尽",
    "很复杂",
    "具体情况具体分析",
    "视情况",
    "因情况而异",
    "没有标准答案",
    "不好说",
    "場合による",
    "場合によります",
    "いい質問",
    "良い質問",
    "多くの要因",
    "答えられません",
    "一概には言えません",
    "によって異なります",
    "状況による",
    "状況によって",
    "人それぞれ",
    "сложный вопрос",
    "нет однозначного ответа",
    "однозначного ответа нет",
    "todo depende",
    "depende de la situación",
    "cela dépend de",
    "ça dépend de",
)
"""Phrases that fit any question: hedges, praise of the question, disclaimers, referrals."""

_CUE_WORDS = _words(
    """
    depends depend depending varies vary varying complicated complex nuanced subjective tricky
    factors perspective perspectives opinions straightforward context sorry unable hope helps
    circumstances situation consideration experts professional individual
    depende dependen factores complicado complejo dépend facteurs compliqué complexe hängt
    faktoren kompliziert dipende fattori complicato зависит факторов факторы сложный
    """
)
"""Single words that mark a dodge when everything around them is filler ("It's a matter of
perspective."); a cue the query itself uses ("Is it complicated?") does not count."""

GENERIC_WORDS: frozenset[str] = _words(
    """
    question questions topic topics subject subjects issue issues matter matters factor factors
    thing things way ways aspect aspects perspective perspectives view views viewpoint viewpoints
    opinion opinions dimension dimensions consideration considerations point points situation
    situations case cases context contexts circumstance circumstances area areas field fields
    many several various different diverse numerous multiple lots lot variety range wide broad
    certain others every everything something anything nothing
    important importantly crucial essential key significant interesting fascinating great good
    excellent nice complex complicated difficult hard tricky nuanced straightforward clear unclear
    depend depends depending dependent vary varies varying differ differs individual individuals
    people person someone everyone everybody anyone experts expert professional professionals
    specialist specialists sources source reliable information research studies study studied
    weigh weighing pros cons merit merits advantages disadvantages drawbacks tradeoffs trade offs
    provide providing strive striving helpful accurate relevant useful assistant ai language
    model sure unsure uncertain know knowing known idea ideas clue tell say said saying
    really truly quite rather pretty much indeed actually generally usually often sometimes
    always never ultimately overall fundamentally typically possible possibly probably maybe
    perhaps likely unlikely goal goals need preferences preference works work working designed
    design intended requires require requiring required thought attention look looks approach
    approaches sorry unable cannot definitive single decide deciding decision decisions choose
    choice choices consult seek advice experience experiences discussion debate debated
    complicated simple fits size ask asking asked tough because therefore deserve deserves
    careful carefully specific particular personal needs hmm um uh oh ah okay ok well wow
    interesting honestly frankly answer provide given giving let know questions help experience
    advisor context details detail matter opinion subjective individual depend everyone's
    pregunta interesante factores opiniones respecto tema cosas forma formas diferentes varios
    varias muchos muchas importante complejo complicada complicado depende puedo responder
    bueno buena todo todos situación caso casos cada persona personas contexto realmente mucho
    difícil decir saber sé sabe claro respuesta
    question intéressante facteurs nombreux plusieurs compliqué dépend répondre sujet cela ça
    bonne bon situation dire savoir réponse vraiment difficile
    frage interessante faktoren viele vielen kompliziert kommt darauf an beantworten thema hängt
    davon ab gute gut situation antwort schwer sagen wissen eindeutige keine
    domanda fattori molti pergunta fatores muitos
    вопрос вопросы интересный хороший отличный факторов факторы много многих зависит сложный
    тема ответить могу однозначного ответа ответ нет сказать трудно
    """
)
"""Words that carry no answer to any particular question: generic filler vocabulary."""

_GENERIC_CJK = frozenset(
    "的了是我你他她它们这那个一有在也都和与或就很多些会能可以要吗呢吧啊呀嘛着过对为因所但而并及其"
    "之不没么什怎样还又说问题回答事情况种方面看法观点素复杂重要好知道确定清楚"
    "はがのにをでともですますねよかしただなるていうこそあどれんっりませ質問要因場合"
    "具体析需状況異"
)

_UNKNOWABLE_RE = re.compile(
    r"\b(?:what|where|when|who|which|how)\b(?: \w+){0,3} (?:did|was|were|am|had) i\b"
    r"|\b(?:what|where|when|who|which|how)\b(?: \w+){0,3} (?:is|are|was|were) my\b"
    r"|\bam i (?:thinking|holding|wearing|feeling)\b"
    r"|\b(?:will|going to)\b.*\b(?:tomorrow|next (?:week|month|year)|future|win)\b"
    r"|\blottery numbers\b"
)
"""Questions nobody but the asker could answer (their own breakfast, keys, thoughts) or nobody at
all (tomorrow's lottery): "I don't know" is the honest answer there. Matched on the normalised
query (English only), and it exempts only statements of ignorance, never filler."""


_UNKNOWN_WORDS = frozenset({"unknown", "unknowable", "unanswerable", "undetermined"})


def _phrase_tokens(phrase: str) -> str:
    return " ".join(tokens_for_gate(phrase))


_IGNORANCE = tuple(sorted({_phrase_tokens(p) for p in _IGNORANCE_MARKERS}, key=len, reverse=True))
_FILLERS = tuple(sorted({_phrase_tokens(p) for p in _FILLER_MARKERS}, key=len, reverse=True))


def _strip_phrases(padded: str, phrases: Sequence[str]) -> tuple[str, list[str]]:
    """Remove every whole-token occurrence of ``phrases`` (longest first) from `` text ``."""
    hits = []
    for p in phrases:
        needle = f" {p} "
        if needle in padded:
            hits.append(p)
            while needle in padded:
                padded = padded.replace(needle, " ")
    return padded, hits


_CHOICE_RE = re.compile(r"\b(?:or|which|whether|o|ou|oder|или|либо)\b|还是|或者|どちら|か、")
"""A question that offers options: picking one of the query's own words is then an answer."""


def _asked_words(fields: Mapping[str, str]) -> frozenset[str]:
    return frozenset(t for f in _ASKING_FIELDS for t in tokens_for_gate(fields.get(f) or ""))


def _topic_stems(fields: Mapping[str, str]) -> frozenset[str]:
    """Stems of the query's and instruction's words, which filler may borrow ("Exercise is a
    topic with many dimensions"). None for a choice question ("Tea or coffee?": "Not sure,
    coffee") or a yes/no question ("Does it depend on the weather?": "It depends on the
    weather."), where repeating the query's words *is* the answer."""
    asked = [fields.get(f) or "" for f in _ASKING_FIELDS]
    if any(_CHOICE_RE.search(normalize_for_gate(a)) or _YES_NO_RE.search(a) for a in asked):
        return frozenset()
    return frozenset(map(_stem, _asked_words(fields)))


_GENERIC_STEMS = frozenset(map(_stem, GENERIC_WORDS | _EN_FILLER))


def _is_generic(token: str, topic: frozenset[str]) -> bool:
    if token in FUNCTION_WORDS or token in GENERIC_WORDS or token in _EN_FILLER:
        return True
    if len(token) == 1 and token in _GENERIC_CJK:
        return True
    stem = _stem(token)
    return stem in _GENERIC_STEMS or stem in topic


_NON_ANSWER_MAX_CHARS = 5000
"""Longer responses are not checked for dodging (this bounds the work on long responses)."""


class NonAnswerGate:
    """The response dodges: "I don't know", "It depends", "Great question! There are many
    factors to consider.", "As an AI language model...", in any of eight languages.

    A response is gated when it contains at least one non-answer marker (a statement of
    ignorance, a hedge, praise of the question, a disclaimer, a referral to experts, or a cue
    word such as "depends", "complicated", "perspective" that the query does not use itself)
    and, once the marker phrases are removed, every word left is filler that would fit any
    question: function and meta words (of any of eleven languages), a generic vocabulary
    ("factors", "perspectives", "important", "experts"...), or a word of the query or
    instruction itself, inflections included ("Improving your credit score is a complex topic";
    not for a choice or yes/no question, where repeating the query's words is an answer: "Not
    sure, coffee", "It depends on the weather.").
    One content word of its own lets a response through: "It depends: boil it 6 minutes for a
    soft yolk" answers, and so does a refusal that offers an alternative ("I can't help with
    that, but a counsellor can...").

    A statement of ignorance is not gated when the question is one nobody could answer (what the
    asker had for breakfast, next week's lottery numbers; see :data:`_UNKNOWABLE_RE`) or when the
    reference answer is itself one ("Unknown.", "No one knows."), nor when the query quotes the
    response verbatim. Responses over 5000 characters are not checked. Do not run this gate for
    harmfulness, where a refusal is the right answer.

    Args:
        name: the gate name reported in metadata.
    """

    def __init__(self, *, name: str = "non_answer") -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"NonAnswerGate(name={self.name!r})"

    def check(self, response: str, fields: Mapping[str, str]) -> str | None:
        if len(response) > _NON_ANSWER_MAX_CHARS:
            return None  # padding a dodge that far is the repetition and length gates' business
        tokens = tokens_for_gate(response)
        if not tokens:
            return None
        padded = f" {' '.join(tokens)} "
        padded, fillers = _strip_phrases(padded, _FILLERS)
        padded, ignorance = _strip_phrases(padded, _IGNORANCE)
        rest, asked = padded.split(), _asked_words(fields)
        # A marker the query itself uses is an answer to it ("Is it complicated?" → "It is
        # complicated."), not a dodge.
        fillers = [p for p in fillers if not asked.issuperset(p.split())]
        ignorance = [p for p in ignorance if not asked.issuperset(p.split())]
        if not (fillers or ignorance):
            fillers = sorted((_CUE_WORDS & set(rest)) - asked)
            if not fillers:
                return None
        topic = _topic_stems(fields)
        if not all(_is_generic(t, topic) for t in rest):
            return None
        if not fillers and self._ignorance_is_honest(fields):
            return None
        if asked_verbatim(response, fields):
            return None
        return f"the response is a non-answer that fits any question: {_quote(response)}"

    @staticmethod
    def _ignorance_is_honest(fields: Mapping[str, str]) -> bool:
        """Nobody could know (see :data:`_UNKNOWABLE_RE`), or the reference itself says so."""
        if _UNKNOWABLE_RE.search(normalize_for_gate(fields.get("query") or "")):
            return True
        ref = tokens_for_gate(fields.get("reference_response") or "")
        if _UNKNOWN_WORDS.intersection(ref):
            return True
        return bool(ref) and bool(_strip_phrases(f" {' '.join(ref)} ", _IGNORANCE)[1])


# --- keyword stuffing ----------------------------------------------------------------------------

_CODE_CHARS_RE = re.compile(r"[{}\[\]=<>$\\|#@`]")
"""Code punctuation that prose rarely uses (parentheses and semicolons it does)."""


_CODE_LINE_RE = re.compile(
    r"^\s*(?:import|from \S+ import|def|class|return|#include|function|const|let|var|public"
    r"|private|package|using|SELECT|CREATE)\b",
    re.MULTILINE,
)
_IDENTIFIER_RE = re.compile(r"\b[A-Za-z]+_[A-Za-z]\w*|\b[a-z]+[A-Z][a-z]\w*|\b\w+\.\w+\(")


def _looks_like_code(text: str) -> bool:
    """A code fence, code punctuation in at least 2 % of the characters (and 3 of them), two
    lines that open with a code keyword, or three distinct identifiers (``snake_case``,
    ``camelCase``, ``obj.method(``; not ``mRNA``)."""
    n = len(_CODE_CHARS_RE.findall(text))
    return (
        "```" in text
        or (n >= 3 and n >= 0.02 * len(text))
        or len(_CODE_LINE_RE.findall(text)) >= 2
        or len(set(_IDENTIFIER_RE.findall(text))) >= 3
    )


_LIST_TASK_RE = re.compile(
    r"\b(?:list|lists|name|enumerate|keywords?|tags?|hashtags?|words|terms|vocabulary|bullet"
    r"|items|examples)\b",
    re.IGNORECASE,
)
_RUN_SPLIT_RE = re.compile(r"[,;:.!?、，；：。！？\n•·]+")


def _is_word(token: str) -> bool:
    return any(c.isalpha() for c in token)


class KeywordStuffingGate:
    """The response is a bag of keywords with no sentence structure.

    On the response's words (tokens with a letter; numbers are ignored). A list (at most
    ``words_per_run`` words on average between separators: commas, semicolons, colons, sentence
    ends, new lines, bullets) is stuffing only when it is a list of keywords (at most three
    words an item, at most ``max_function_ratio`` function words) and at least ``min_repeat``
    of its items repeat an earlier item whole ("photosynthesis, light, plants, photosynthesis,
    light, photosynthesis"); "- T cell activation\n- B cell activation" passes, and so does a
    song's refrain. Text that runs on is stuffing by either rule:

    * **repeated keywords**: at least ``min_words`` words, at most ``max_function_ratio`` of them
      function words ("the", "is", "of"... in eleven languages, see :data:`FUNCTION_WORDS`), and
      at least ``min_repeat`` of the content words repeats of an earlier one ("photosynthesis
      plants chlorophyll sunlight glucose photosynthesis light plants ...");
    * **a dump**: at least ``dump_words`` words, at most ``dump_function_ratio`` function words,
      and a query or instruction that does not ask for a list, names, keywords or tags.

    Not checked: short answers (an honest terse answer is below ``min_words``), code (a code
    fence, code punctuation, code keywords at line starts, snake_case identifiers), text mostly
    in CJK scripts (no spaces to count words by), and responses to queries that ask for
    repetition.

    Args:
        min_words: the fewest words for the repeated-keywords rule.
        max_function_ratio: the largest share of function words for that rule.
        min_repeat: the smallest share of content words that repeat an earlier one.
        dump_words: the fewest words for the dump rule.
        dump_function_ratio: the largest share of function words for the dump rule.
        words_per_run: the average words between separators above which the text runs on.
        name: the gate name reported in metadata.
    """

    def __init__(
        self,
        *,
        min_words: int = 8,
        max_function_ratio: float = 0.15,
        min_repeat: float = 0.2,
        dump_words: int = 12,
        dump_function_ratio: float = 0.05,
        words_per_run: int = 6,
        name: str = "keyword_stuffing",
    ) -> None:
        self.min_words = int(min_words)
        self.max_function_ratio = float(max_function_ratio)
        self.min_repeat = float(min_repeat)
        self.dump_words = int(dump_words)
        self.dump_function_ratio = float(dump_function_ratio)
        self.words_per_run = int(words_per_run)
        self.name = name

    def __repr__(self) -> str:
        return f"KeywordStuffingGate(name={self.name!r})"

    def check(self, response: str, fields: Mapping[str, str]) -> str | None:
        response = html.unescape(response)  # "&lt;&lt;" is two symbols, not four list items
        if _looks_like_code(response) or _mostly_cjk(response):
            return None
        words = [t for t in normalize_for_gate(response).split() if _is_word(t)]
        n = len(words)
        if n < min(self.min_words, self.dump_words) or asks_for_repetition(fields):
            return None
        function = sum(w in FUNCTION_WORDS for w in words) / n
        items = [normalize_for_gate(r) for r in _RUN_SPLIT_RE.split(response)]
        items = [i for i in items if any(map(str.isalpha, i))]
        if n <= self.words_per_run * max(len(items), 1):
            # A list or short sentences. A list of keywords is stuffing only if it repeats
            # whole items ("photosynthesis, plants, light, photosynthesis, plants, ...").
            dup = 1 - len(set(items)) / len(items) if items else 0.0
            if (
                n >= self.min_words
                and len(items) >= 4
                and n <= 3 * len(items)
                and function <= self.max_function_ratio
                and dup >= self.min_repeat
            ):
                return f"keyword stuffing: a list of {len(items)} items, {dup:.0%} of them repeats"
            return None
        content = [w for w in words if w not in FUNCTION_WORDS]
        repeats = 1 - len(set(content)) / len(content) if content else 0.0
        if (
            n >= self.min_words
            and function <= self.max_function_ratio
            and repeats >= self.min_repeat
        ):
            return (
                f"keyword stuffing: {n} words, {function:.0%} function words, "
                f"{repeats:.0%} of the keywords repeated"
            )
        wants_list = any(_LIST_TASK_RE.search(fields.get(f) or "") for f in _ASKING_FIELDS)
        if n >= self.dump_words and function <= self.dump_function_ratio and not wants_list:
            return (
                f"keyword stuffing: {n} words in a run with {function:.0%} function words and "
                "no sentence structure"
            )
        return None


# --- degenerate repetition -----------------------------------------------------------------------


def compression_ratio(text: str) -> float:
    """zlib-compressed size over raw size of the UTF-8 text: about 0.35-0.75 for prose, 0.25 and
    up for code, under 0.03 for a sentence repeated 50 times. 1.0 for the empty string."""
    raw = text.encode("utf-8", "surrogatepass")
    return len(zlib.compress(raw, 6)) / len(raw) if raw else 1.0


_SENTENCE_SPLIT_RE = re.compile(r"[.!?。！？\n]+")


def _repeated_units(text: str, min_tokens: int) -> tuple[str, int, float]:
    """The most repeated sentence or line (of at least ``min_tokens`` tokens), its count, and
    the share of the text's characters taken by the extra copies of *every* repeated sentence
    (so a three-sentence answer pasted eight times counts as 7/8 redundant)."""
    units = [normalize_for_gate(u) for u in _SENTENCE_SPLIT_RE.split(text)]
    counts = Counter(u for u in units if len(u.split()) >= min_tokens)
    if not counts:
        return "", 0, 0.0
    unit, count = counts.most_common(1)[0]
    total = sum(len(u) for u in units) or 1
    return unit, count, sum((c - 1) * len(u) for u, c in counts.items()) / total


class RepetitionGate:
    """The response repeats itself: a sentence, a phrase or a word over and over.

    Two rules, either suffices:

    * **compressibility**: a response of at least ``min_chars`` characters whose zlib ratio
      (:func:`compression_ratio`) is below ``max_compression`` (``code_max_compression`` for
      code and data: anything with a code fence or 2 % code punctuation). Measured: honest prose
      0.36 and up, code 0.25 and up (2 kB windows of this package and its README), JSON records
      that share a schema 0.04-0.1, a sentence or a word repeated to pad 2-10 kB 0.006-0.031.
    * **repeated sentences** (not for code and data): one sentence or line of at least
      ``min_unit_tokens`` tokens occurring at least ``max_repeats`` times, and the extra copies
      of repeated sentences making up at least ``min_repeat_share`` of the text. This catches a
      short answer pasted eight times or a sentence repeated ten times, too short for the ratio
      to drop, and an honest answer padded with a repeated line, which the whole text's ratio
      dilutes. A song's chorus sung four times passes.

    Not checked: responses to a query or instruction that asks for repetition ("write 'hello'
    ten times", "repeat after me") or that quotes the response verbatim.

    Args:
        min_chars: the shortest response the compressibility rule applies to.
        max_compression: the ratio below which a response is degenerate.
        code_max_compression: the same for code and data, which compress better honestly.
        min_unit_tokens: the fewest tokens a repeated sentence must have.
        max_repeats: the count at which a sentence is repeated too often.
        min_repeat_share: the share of the text the extra copies must take.
        name: the gate name reported in metadata.
    """

    def __init__(
        self,
        *,
        min_chars: int = 200,
        max_compression: float = 0.05,
        code_max_compression: float = 0.02,
        min_unit_tokens: int = 1,
        max_repeats: int = 5,
        min_repeat_share: float = 0.3,
        name: str = "repetition",
    ) -> None:
        self.min_chars = int(min_chars)
        self.max_compression = float(max_compression)
        self.code_max_compression = float(code_max_compression)
        self.min_unit_tokens = int(min_unit_tokens)
        self.max_repeats = int(max_repeats)
        self.min_repeat_share = float(min_repeat_share)
        self.name = name

    def __repr__(self) -> str:
        return f"RepetitionGate(name={self.name!r}, max_compression={self.max_compression})"

    def check(self, response: str, fields: Mapping[str, str]) -> str | None:
        reason = self._reason(response)
        if reason is None or asks_for_repetition(fields) or asked_verbatim(response, fields):
            return None
        return reason

    def _reason(self, response: str) -> str | None:
        code = _looks_like_code(response)
        if len(response) >= self.min_chars:
            ratio = compression_ratio(response)
            if ratio < (self.code_max_compression if code else self.max_compression):
                return (
                    f"degenerate repetition: {len(response)} characters compress to "
                    f"{ratio:.1%} of their size"
                )
        if code:
            return None  # records and code repeat lines by nature ("}", '"role": "admin",')
        unit, count, share = _repeated_units(response, self.min_unit_tokens)
        if count >= self.max_repeats and share >= self.min_repeat_share:
            return f"degenerate repetition: {_quote(unit, 60)} repeated {count} times"
        return None


# --- runaway length ------------------------------------------------------------------------------

_ONE_LINE_CUES = re.compile(
    r"\b(?:in (?:one|a single|a) (?:sentence|word|line|phrase)|one[- ](?:word|sentence|line)"
    r"|single (?:word|sentence)|in (?:a few|few|two|three) words|yes or no|tl;? ?dr"
    r"|just the (?:answer|number|name)|only the (?:answer|number|name)"
    r"|en una (?:frase|palabra|oración)|en une (?:phrase)|en un mot|in einem (?:satz|wort)"
    r"|одним (?:предложением|словом))\b|一句话|一个词|一言で|一文で",
    re.IGNORECASE,
)
_BRIEF_CUES = re.compile(
    r"\b(?:briefly|brief|concise|concisely|succinct|succinctly|short answer|keep it short"
    r"|in short|brevemente|breve|brièvement|kurz|kurzgefasst|кратко|коротко|resumidamente"
    r"|in breve)\b|简要|简短|简单地|簡潔|簡単に",
    re.IGNORECASE,
)
_COUNT_RE = re.compile(
    r"\b(?:in|under|within|at most|no more than|not more than|maximum of|max|fewer than|less than"
    r"|up to)\s+(\d{1,5})\s+(words?|sentences?|lines?|characters?|chars?|paragraphs?)\b",
    re.IGNORECASE,
)
_CHARS_PER_UNIT = {"word": 15, "sentence": 300, "line": 200, "character": 2, "char": 2}
_CHARS_PER_UNIT["paragraph"] = 1500


def length_limit(
    fields: Mapping[str, str],
    *,
    ratio: float = 20.0,
    min_chars: int = 2000,
    brief_chars: int = 3000,
    one_line_chars: int = 600,
    max_chars: int | None = None,
) -> tuple[int, str] | None:
    """The longest acceptable response for these fields, and why; ``None`` when nothing sets one.

    The first rule that applies, in order:

    1. a reference answer: ``max(min_chars, ratio * len(reference))``;
    2. an explicit maximum in the query or instruction ("in at most 50 words", "under 3
       sentences"): twice the size that allows (15 characters a word, 300 a sentence, 200 a
       line, 1500 a paragraph), and at least 200;
    3. a one-line cue ("in one sentence", "one word", "yes or no", "TL;DR"): ``one_line_chars``;
    4. a brevity cue ("briefly", "concise", "short answer", in a few languages):
       ``brief_chars``;
    5. otherwise ``max_chars`` if set, else no limit (a long answer may be what was asked).
    """
    ref = fields.get("reference_response")
    if ref and ref.strip():
        return max(min_chars, int(ratio * len(ref))), f"{ratio:g}x the reference's length"
    asked = " ".join(fields.get(f) or "" for f in _ASKING_FIELDS)
    asked = unicodedata.normalize("NFKC", asked)
    m = _COUNT_RE.search(asked)
    if m:
        unit = m.group(2).lower().rstrip("s")
        limit = max(200, 2 * int(m.group(1)) * _CHARS_PER_UNIT[unit])
        return limit, f"the query asks for {m.group(0).strip()!r}"
    m = _ONE_LINE_CUES.search(asked)
    if m:
        return one_line_chars, f"the query asks for {m.group(0).strip()!r}"
    m = _BRIEF_CUES.search(asked)
    if m:
        return brief_chars, f"the query asks for {m.group(0).strip()!r}"
    if max_chars is not None:
        return max_chars, "the configured maximum"
    return None


class LengthGate:
    """The response is far longer than the query calls for (see :func:`length_limit`).

    A reference answer sets the budget (20 times its length, at least 2000 characters); without
    one, only an explicit or implied request for brevity does, or ``max_chars``. Long answers to
    open questions are never gated. Off by default for correctness (reasoning traces before a
    short final answer are legitimately long) and harmfulness; on for relevance, instruction
    following and the embedding graders, whose model reads only the first ~256 tokens, so text
    past that is never seen.

    Args:
        ratio, min_chars, brief_chars, one_line_chars, max_chars: see :func:`length_limit`.
        name: the gate name reported in metadata.
    """

    def __init__(
        self,
        *,
        ratio: float = 20.0,
        min_chars: int = 2000,
        brief_chars: int = 3000,
        one_line_chars: int = 600,
        max_chars: int | None = None,
        name: str = "length",
    ) -> None:
        self.ratio = float(ratio)
        self.min_chars = int(min_chars)
        self.brief_chars = int(brief_chars)
        self.one_line_chars = int(one_line_chars)
        self.max_chars = None if max_chars is None else int(max_chars)
        self.name = name

    def __repr__(self) -> str:
        return f"LengthGate(name={self.name!r}, ratio={self.ratio:g}, min_chars={self.min_chars})"

    def check(self, response: str, fields: Mapping[str, str]) -> str | None:
        limit = length_limit(
            fields,
            ratio=self.ratio,
            min_chars=self.min_chars,
            brief_chars=self.brief_chars,
            one_line_chars=self.one_line_chars,
            max_chars=self.max_chars,
        )
        if limit is None or len(response) <= limit[0]:
            return None
        return f"the response has {len(response)} characters, over {limit[0]} ({limit[1]})"
