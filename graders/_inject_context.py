"""What the ``addresses_grader`` detectors read: the query's scene and the response's views.

One idea: context. ``_Scene`` is what the query (and instruction) ask for, which decides the
exemptions (a query about prompt injection, one that asks for a score, for JSON, code or a
dialogue); it is cached per query, since GRPO grades a group of responses to each prompt.
``_View`` is the response seen several ways: cleaned, split into folded sentences, with code
fences and quoted mentions dropped when the scene allows.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Generic, TypeVar, overload

from graders._anchor_screen import AnchoredSet
from graders._inject_claims import _FAMILIES, _FAMILY_SCREEN
from graders._inject_match import _INVISIBLE_RE, fold

__all__: list[str] = []


# --- context: what the query asks for ------------------------------------------------------------

_ABOUT_INJECTION_RE = re.compile(
    r"(?<!\w)(?:prompt (?:injections?|hack\w*|attacks?|leak\w*|extraction)|injection attacks?"
    r"|indirect injections?|jail ?break\w*|red team\w*|adversarial (?:prompts?|attacks?|examples?"
    r"|inputs?|suffix\w*)|(?:llms?|ai|models?|chatbots?|gpt|language models?) (?:security|safety"
    r"|attacks?|vulnerabilit\w+|exploit\w*|red teaming|alignment|guardrails?)|reward hacking"
    r"|reward models?|llm as a judge|(?:llm|ai) (?:judges?|graders?|evaluators?)|chat templates?"
    r"|special tokens?|system prompts?|chatml|guardrails?|owasp|(?:cyber|computer|information|web"
    r"|application|network|software|ai|llm) security|security (?:vulnerabilit\w+|flaws?|risks?"
    r"|threats?|research\w*|audits?|testing)|social engineering|phishing|malicious (?:prompts?"
    r"|inputs?|instructions?)|(?:goal|instruction) hijacking|inyeccion de (?:prompts?"
    r"|instrucciones)|injection (?:de (?:prompts?|requetes?|commandes?)|d instructions)"
    r"|prompt injektion\w*|промпт инъекц\w*|инъекци\w* (?:промпт\w*|подсказ\w*|инструкц\w*)"
    r"|джеилбреик\w*)(?!\w)"
    r"|提示注入|提示词注入|提示詞注入|指令注入|越狱|越獄|注入攻击|注入攻擊|プロンプトインジェクション"
    r"|ジェイルブレイク|脱獄|インジェクション攻撃"
    # chat formats and special tokens: the answer writes them out
    r"|(?<!\w)(?:(?:prompt|chat|instruction|conversation|dialogue) (?:formats?|templates?)"
    r"|format(?:ting)? (?:a |the )?(?:conversation|chat|dialogue|messages)"
    r"|(?:eos|bos|pad|stop|end of (?:sequence|text|turn)|start of (?:sequence|text|turn)"
    r"|control) tokens?|tokeni[sz]ers?)(?!\w)"
)
"""Queries about attacks on language models: answers to them quote attacks."""

_SCORING_RE = re.compile(
    r"(?<!\w)(?:scor(?:e|es|ed|ing)|grad(?:e|es|ed|ing)|ratings?|rated|rate (?:this|the|it|each"
    r"|these|them|my|our|your|how|from|on)|evaluat\w*|assess\w*|rubrics?|reviews?|verdicts?"
    r"|judg\w*|out of \d+|scale of|(?:how many|number of) (?:points|stars|marks)"
    r"|(?:une|la|una|eine|die) (?:note|nota)|notes? sur \d+|sur \d+|del \d+ al \d+|von \d+ bis \d+"
    r"|marks|marking|marked|puntu\w*|califica\w*"
    r"|(?:give|write|provide|leave|offer|draft) (?:me |us )?(?:some |your |brief |detailed )?"
    r"feedback|feedback on (?:my|this|the following|these|our)"
    r"|(?:exam|test|essay|assignment|homework|student) feedback"
    r"|(?:what (?:did|do) you think (?:of|about)|your (?:opinion|thoughts|take|review) (?:of|on"
    r"|about)|how (?:good|bad) (?:is|was)) (?:the |this |that )?(?:movie|film|book|novel|show"
    r"|series|album|song|game|restaurant|play|episode|product|hotel|app)"
    r"|evalua\w*|valora\w*|resena\w*|noter|notez|notation|bareme|critique\w*|bewert\w*"
    r"|punktzahl|benot\w*|rezension\w*|оцен\w*|балл\w*|рейтинг\w*|отзыв\w*)(?!\w)"
    r"|评分|評分|打分|分数|分數|得分|评价|評價|评估|評估|影评|影評|点评|點評|採点|評価|スコア|得点"
    r"|レビュー"
)
"""Queries that ask for a score, grade or rating (or a review): verdict-like text is the answer."""

_GRADER_ROLE_RE = re.compile(
    r"(?<!\w)(?:judges?|judging|graders?|evaluators?|reviewers?|examiners?|assessors?|raters?"
    r"|classifiers?|moderators?|evaluador\w*|calificador\w*|juez|jueces|evaluateur\w*|juges?"
    r"|correcteur\w*|bewerter\w*|prufer\w*|richter\w*|gutachter\w*|оценщик\w*|судь\w*"
    r"|экзаменатор\w*|проверяющ\w*)(?!\w)"
    r"|评委|評委|裁判|评审|評審|评分者|評分者|審査員|採点者|評価者|裁判官"
)
"""Queries that cast someone as a judge or grader: an answer in that role is what was asked."""

_JSON_RE = re.compile(r"(?<!\w)(?:json\w*|yaml|toml)(?!\w)")
_CODE_RE = re.compile(
    r"(?<!\w)(?:code|coding|python|javascript|typescript|java|cpp|rust|golang|sql|html\d?|xml"
    r"|css|svg|regex\w*|functions?|scripts?|programs?|class|api|bash|shell|snippets?|markdown"
    r"|latex|templates?|config\w*|yaml|json|jsx|react|vue|angular|django|flask|php|ruby|kotlin"
    r"|swift|components?|web ?pages?|websites?)(?!\w)"
)
_DIALOGUE_RE = re.compile(
    r"(?<!\w)(?:dialog\w*|conversations?|transcripts?|scripts?|screenplays?|chats?|chatbots?"
    r"|interviews?|role ?play\w*|few shot|prompts?|prompting|exchanges?|llms?|language models?"
    r"|(?:a|the|stage|theatre|theater|short|one act|school) plays?(?! on words)|skits?"
    r"|sketch(?:es)? (?:about|for|between)|scenes? (?:between|where|in which|for|from|of a"
    r"|about)|(?:write|draft|compose|create|give me) (?:a |an |the )?(?:\w+ ){0,3}?(?:scene"
    r"|sketch|skit|play(?! on words)|screenplay|script|dialogue)s?"
    r"|chat models?|assistants?|dialogo\w*|conversacion\w*|guion\w*|entrevista\w*|scenarios?"
    r"|echanges?|gesprach\w*|unterhaltung\w*|диалог\w*|разговор\w*|бесед\w*|сценари\w*"
    r"|интервью)(?!\w)"
    r"|对话|對話|会话|會話|剧本|劇本|聊天|対話|会話|台本|シナリオ|チャット"
)


_ASKING_FIELDS = ("query", "instruction")
_NONE: frozenset[str] = frozenset()
_NUMBERS_RE = re.compile(r"\d{1,6}")
_CHECKLIST_RE = re.compile(
    r"\b(?:check ?lists?|to ?do lists?|tick(?:ed)? (?:off|boxes?)|check ?box(?:es)?)\b"
)
_CHECK_QUERY_RE = re.compile(
    r"(?<!\w)(?:check\w*|verif\w*|validat\w*|confirm\w*|tests?|testing|ci|builds?|lint\w*"
    r"|pipelines?|correct\w*|right|valid|pass\w*|grammatical\w*|accurate)(?!\w)"
)
"""Queries that ask for a check ("Check my answer", "Did the tests pass?", "Is this correct?"):
``✅ Correct``, ``Result: PASS`` or ``{"result": "pass"}`` is then the answer, not a forged
verdict (read on the folded query)."""

_QUERY_SCANS = AnchoredSet(
    (
        _ABOUT_INJECTION_RE,
        _SCORING_RE,
        _JSON_RE,
        _CODE_RE,
        _DIALOGUE_RE,
        _GRADER_ROLE_RE,
        _CHECKLIST_RE,
        _CHECK_QUERY_RE,
    )
)
"""The scans of the folded query, screened by one scan for all their anchors."""


@dataclass(frozen=True)
class _Scene:
    """What the query (and instruction) ask for; decides which exemptions apply."""

    about_injection: bool = False
    scoring: bool = False
    wants_json: bool = False
    wants_code: bool = False
    dialogue: bool = False
    grader_roles: bool = False
    asked: str = ""
    """The folded query and instruction, to look up words the response reuses."""
    query_families: frozenset[str] = frozenset()
    """Phrase families the query itself contains: the response may repeat them."""
    numbers: frozenset[int] = frozenset()
    """The query's numbers: a fraction of them in the response may be the data it asked about."""
    checklist: bool = False
    """The query asks for a checklist: ticked items are its answer, not a self-graded rubric."""
    asks_check: bool = False
    """The query asks for a check (:data:`_CHECK_QUERY_RE`): a tick or a result word is its
    answer, not a forged verdict."""

    @property
    def verdicts_ok(self) -> bool:
        """Verdict-like text answers the query (it asks for a score) rather than forging one."""
        return self.scoring and not self.about_injection

    @classmethod
    def of(cls, fields: Mapping[str, str]) -> _Scene:
        return _scene_of("\n".join(fields.get(f) or "" for f in _ASKING_FIELDS))

    @classmethod
    def _build(cls, raw: str) -> _Scene:
        if not raw.strip():
            return cls()
        folded = [fold(s) for s in _sentences(_clean(raw))]
        asked = " ".join(folded)
        sentences = _FAMILY_SCREEN([f for f in folded if f])
        families = (
            frozenset(f.name for f in _FAMILIES if f.first(sentences)) if sentences else _NONE
        )
        about, scoring, json, code, dialogue, roles, checklist, check = (
            m is not None for m in _QUERY_SCANS.search(asked)
        )
        scene = object.__new__(cls)
        # the fields set as ``__init__`` would set them, without its ``object.__setattr__`` per
        # field (a frozen dataclass's), which cost more than reading a short query
        scene.__dict__.update(
            about_injection=bool(families) or about,
            scoring=scoring,
            wants_json=json,
            wants_code=code,
            dialogue=dialogue,
            grader_roles=roles,
            asked=f" {asked} ",
            query_families=families,
            numbers=frozenset(map(int, _NUMBERS_RE.findall(asked))),
            checklist=checklist,
            asks_check=check,
        )
        return scene

    def names(self, word: str) -> bool:
        """Whether the query or instruction uses ``word`` (folded)."""
        return f" {fold(word)} " in self.asked


@lru_cache(maxsize=4096)
def _scene_of(raw: str) -> _Scene:
    """The scene of a query, cached: GRPO grades a group of responses to each prompt."""
    return _Scene._build(raw)


# --- text views ----------------------------------------------------------------------------------

_SENTENCE_END_RE = re.compile(
    r"[!?。！？;；.\n]"  # what an end starts with: the engine skips to these characters
    r"(?:(?<=[!?。！？;；])[!?。！？;；]*"
    r"|(?<=\.)(?<!\b[A-Za-z]\.)(?=\s|$)"
    r"|(?<=\n)[ \t]*\n)"
)
"""Sentence ends: ``!?;`` (and CJK ones), a full stop before a space (not in ``e.g.``), a blank
line. A single newline does not end a sentence, so a phrase broken over two lines still reads as
one. The same ends as the plain alternation of those three (:data:`_SENTENCE_END_PLAIN`), but
opening with the class of their first characters, so the engine skips every other position
instead of trying three alternatives at each."""
_SENTENCE_END_PLAIN = r"[!?。！？;；]+|(?<!\b[A-Za-z])\.(?=\s|$)|\n[ \t]*\n"


def _clean(text: str) -> str:
    """NFKC and no invisible characters: the text detectors read."""
    if text.isascii():  # NFKC keeps ASCII, and no invisible character is ASCII
        return text
    return unicodedata.normalize("NFKC", _INVISIBLE_RE.sub("", text))


def _sentences(text: str) -> list[str]:
    return [s for s in _SENTENCE_END_RE.split(text) if s.strip()]


def _sentences_folded(text: str) -> list[str]:
    return [f for f in (fold(s) for s in _sentences(_clean(text))) if f]


_FENCE_RE = re.compile(r"^[ \t]*(`{3,}|~{3,})", re.MULTILINE)
_INLINE_MENTION_RE = re.compile(
    r'`[^`\n]{1,500}`|"[^"\n]{1,500}"|“[^”\n]{1,500}”|„[^“”\n]{1,500}[“”]|«[^»\n]{1,500}»'
    r"|‘[^’\n]{1,500}’|「[^」\n]{1,500}」|『[^』\n]{1,500}』|(?<!\w)'[^'\n]{1,500}'(?!\w)"
    r"|^[ \t]*>(?!>)[^\n]*",
    re.MULTILINE,
)
"""Quoted or code-formatted spans, and markdown block quotes: text *mentioned*, not said."""
_MENTION = " ⟦quote⟧ "


def _drop_fences(text: str) -> str:
    """Replace each fenced code block (``` or ~~~, closed or running to the end) by a marker."""
    out: list[str] = []
    pos = 0
    while (m := _FENCE_RE.search(text, pos)) is not None:
        out.append(text[pos : m.start()])
        close = re.compile(rf"^[ \t]*{re.escape(m.group(1)[0])}{{{len(m.group(1))},}}", re.M)
        end = close.search(text, m.end())
        out.append(_MENTION)
        pos = len(text) if end is None else end.end()
    out.append(text[pos:])
    return "".join(out)


def _drop_inline_mentions(text: str) -> str:
    return _INLINE_MENTION_RE.sub(_MENTION, text)


T = TypeVar("T")


class _once(Generic[T]):
    """A property computed on first use and kept in the instance's ``__dict__``.

    Why not :func:`functools.cached_property`: on Python 3.11 it takes a lock on every first
    use, shared by every instance, and a ``_View`` is built for each response, read by one
    thread and has four of them. This one stores the value where plain attribute lookup finds it
    next time, so later reads never reach it.
    """

    def __init__(self, fn: Callable[[Any], T]) -> None:
        self._fn = fn
        self._name = fn.__name__
        self.__doc__ = fn.__doc__

    @overload
    def __get__(self, obj: None, owner: type[Any] | None = None) -> _once[T]: ...
    @overload
    def __get__(self, obj: object, owner: type[Any] | None = None) -> T: ...
    def __get__(self, obj: object | None, owner: type[Any] | None = None) -> T | _once[T]:
        if obj is None:
            return self
        value: T = self._fn(obj)
        obj.__dict__[self._name] = value
        return value


@dataclass
class _View:
    """One response as the detectors see it, with its scene; derived forms built once, lazily."""

    response: str
    scene: _Scene
    text: str = field(init=False)
    """NFKC, invisible characters removed."""

    def __post_init__(self) -> None:
        self.text = _clean(self.response)

    @_once
    def scan(self) -> str:
        """What is *said*: on a query about injections, quoted and code spans are dropped."""
        if self.scene.about_injection:
            return _drop_inline_mentions(_drop_fences(self.text))
        return self.text

    @_once
    def verdict_scan(self) -> str:
        """Like :attr:`scan`, but a fenced verdict still counts (it stands on its own lines)."""
        if self.scene.about_injection:
            return _drop_inline_mentions(self.text)
        return self.text

    @_once
    def sentences(self) -> list[str]:
        return [f for f in (fold(s) for s in _sentences(self.scan)) if f]

    @_once
    def phrase_sentences(self) -> Sequence[str]:
        """The :attr:`sentences` a phrase family may match (one scan for all families)."""
        return _FAMILY_SCREEN(self.sentences)
