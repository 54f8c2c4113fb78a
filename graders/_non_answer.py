"""The ``non_answer`` gate: responses that answer nothing.

One idea: text that stands in for an answer without being one. :class:`NonAnswerGate` catches
statements of ignorance and generic filler that fit every query ("Great question, it depends on
many factors"), unless the query is unknowable or asks for exactly that. The query echoed back is
:mod:`graders._near_copy`'s; the family overview is in :mod:`graders._degenerate`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from functools import lru_cache

from graders._degenerate_words import (
    _ASKING_FIELDS,
    _EN_FILLER,
    FUNCTION_WORDS,
    _stem,
    _words,
)
from graders._harm_text import is_refusal_phrase
from graders._master_key import MasterKeyGate
from graders._near_copy import _YES_NO_RE
from graders._pregate_text import (
    _MEMO_MAX_CHARS,
    _quote,
    asked_verbatim,
    normalize_for_gate,
    tokens_for_gate,
)

__all__ = ["GENERIC_WORDS", "NonAnswerGate"]


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


def _by_first_token(phrases: Sequence[str]) -> dict[str, tuple[int, ...]]:
    index: dict[str, list[int]] = {}
    for i, p in enumerate(phrases):
        index.setdefault(p.split(" ", 1)[0], []).append(i)
    return {k: tuple(v) for k, v in index.items()}


_PHRASE_INDEX = {id(ps): (ps, _by_first_token(ps)) for ps in (_IGNORANCE, _FILLERS)}


def _strip_phrases(padded: str, phrases: Sequence[str]) -> tuple[str, list[str]]:
    """Remove every whole-token occurrence of ``phrases`` (longest first) from `` text ``.

    Only phrases whose first token is in the text are tried, in their given order: removing a
    phrase never adds a token, so no other phrase can come to occur.
    """
    known = _PHRASE_INDEX.get(id(phrases))
    index = known[1] if known is not None and known[0] is phrases else _by_first_token(phrases)
    tried = sorted({i for t in set(padded.split()) for i in index.get(t, ())})
    hits = []
    for p in (phrases[i] for i in tried):
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


_OPENERS = MasterKeyGate(refusal_answers=False)
"""The master-key gate's reading of openers, for a refusal among them (stateless, shared)."""

_NON_ANSWER_MAX_CHARS = 5000
"""Longer responses are not checked for dodging (this bounds the work on long responses)."""


def _dodge(response: str, asking: tuple[tuple[str, str], ...]) -> str | None:
    """How ``response`` dodges the query and instruction in ``asking``: ``"filler"``,
    ``"ignorance"`` (a statement of ignorance alone, which the reference may make honest), or
    ``None`` when it answers.

    Remembered (:data:`_dodge_memo`, when the asking fields are short): it reads only the
    response and the asking fields, while the gate also reads the reference, so the graders of
    one record that differ only in their reference (relevance has none, correctness has one)
    share this work.
    """
    fields = dict(asking)
    tokens = tokens_for_gate(response)
    if not tokens:
        return None
    asked = _asked_words(fields)
    if _has_own_word(tokens, asked):
        return None
    padded = f" {' '.join(tokens)} "
    padded, fillers = _strip_phrases(padded, _FILLERS)
    padded, ignorance = _strip_phrases(padded, _IGNORANCE)
    rest = padded.split()
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
    if asked_verbatim(response, fields):
        return None
    return "filler" if fillers else "ignorance"


_dodge_memo = lru_cache(maxsize=1024)(_dodge)
"""The last records' analyses (responses are at most :data:`_NON_ANSWER_MAX_CHARS` long here)."""


_MARKER_WORDS = frozenset(w for p in (*_FILLERS, *_IGNORANCE) for w in p.split())
"""Every word of a marker phrase: the only words :func:`_strip_phrases` can take out."""


def _has_own_word(tokens: Sequence[str], asked: frozenset[str]) -> bool:
    """A word of the response's own that no marker phrase holds and that is not generic even
    against every stem of the query's words: :func:`_dodge` answers ``None`` for it whatever
    the markers (stripping them leaves it, and the topic it is checked against is at most
    those stems).

    Why: most responses have one, and finding it costs a few set lookups, where stripping
    the marker phrases first (which a dodge needs) is most of the gate's cost on them."""
    topic: frozenset[str] | None = None
    for t in tokens:
        if t in _MARKER_WORDS or t in FUNCTION_WORDS or t in GENERIC_WORDS or t in _EN_FILLER:
            continue
        if topic is None:
            topic = frozenset(map(_stem, asked))
        if not _is_generic(t, topic):
            return True
    return False


class NonAnswerGate:
    """The response dodges: "I don't know", "It depends", "Great question! There are many
    factors to consider.", "As an AI language model...", in any of eight languages.

    A response is gated when it contains at least one non-answer marker (a statement of
    ignorance, a hedge, praise of the question, a disclaimer, a referral to experts, or a cue
    word such as "depends", "complicated", "perspective" that the query does not use itself)
    and, once the marker phrases are removed, every word left is filler that would fit any
    question: function and meta words (of any of fifteen languages), a generic vocabulary
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
        asking = tuple((f, fields[f]) for f in _ASKING_FIELDS if fields.get(f))
        short = sum(len(t) for _, t in asking) <= _MEMO_MAX_CHARS
        dodge = (_dodge_memo if short else _dodge)(response, asking)
        if dodge is None:
            # The master-key gate lets a refusal among openers through ("Step 1: I can't help
            # with that.", "解： I can't help with that."), for the harmfulness judge to pay; its
            # openers are words this gate reads as content, so here it is caught.
            if is_refusal_phrase(response) and _OPENERS.check(response, fields):
                return f"the response is a refusal among openers, no answer: {_quote(response)}"
            return None
        if dodge == "ignorance" and self._ignorance_is_honest(fields):
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
