"""What an LLM judge is shown: an ``LLMGrader``'s template fields and the messages it renders.

Construction reads the template's ``$fields`` (which are record fields, which optional) and
checks them against the rubric and output mode; each call then renders a record's texts, fenced
and defanged (see :mod:`graders._prompt`), into the system and user messages. Apart from
:mod:`graders._judge`, which asks the judge and scores its verdict, because rendering is the
grader's whole prompt surface, read on its own when hardening it. A mixin, not functions: it
reads the grader's settings (rubric, scale, labels) and memoises the split templates on the
instance, rebuilt when those settings change.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, ClassVar

from graders._judge_config import JudgeOutput
from graders._prompt import (
    _field_label,
    _Parts,
    _prompt_text,
    _template,
    fence,
    load_prompt,
    neutralize,
    new_nonce,
)
from rm_service._exceptions import ConfigError

__all__ = ["NOT_PROVIDED", "JudgeRendering"]

NOT_PROVIDED = "(not provided)"
"""What an absent optional field renders as."""

_RESERVED = frozenset({"rubric", "scale_min", "scale_max", "labels"})


class JudgeRendering:
    """Mixin of :class:`~graders._judge.LLMGrader`: its template fields and rendered messages.

    The class provides the settings it reads (declared below); ``_init_templates`` sets the
    templates and the field lists at construction.
    """

    required_fields: tuple[str, ...]
    optional_fields: tuple[str, ...]
    default_optional_fields: ClassVar[tuple[str, ...]]
    rubric: str
    scale: tuple[int, int]
    output: JudgeOutput
    labels: dict[str, int]
    allow_float: bool
    untrusted_fields: frozenset[str]
    # Built on first use and rebuilt when what they were built from changes (see _compiled).
    _parts: tuple[tuple[Any, ...], _Parts, _Parts]
    _fence_labels: tuple[tuple[str, ...], dict[str, str]]

    # -- construction helpers --

    def _init_templates(
        self,
        template: str | Path,
        system_template: str | Path,
        optional_fields: Iterable[str] | None,
    ) -> None:
        self.template_text = load_prompt(template)
        self._user_tpl = _template(self.template_text, "template")
        self._system_tpl = _template(load_prompt(system_template), "system_template")
        sys_ids = set(self._system_tpl.get_identifiers())
        if not sys_ids <= {"nonce", "output_format"} or "nonce" not in sys_ids:
            raise ConfigError(
                "system_template must use $nonce (so the judge knows the real fence markers) "
                f"and may use only $nonce and $output_format; it uses {sorted(sys_ids)}"
            )
        ids = self._user_tpl.get_identifiers()
        fields = [i for i in ids if i not in _RESERVED]
        if "response" not in fields:
            raise ConfigError("the template must place the graded text with $response")
        if "rubric" in ids and not self.rubric.strip():
            raise ConfigError("the template has $rubric but no rubric= was given")
        if self.rubric and "rubric" not in ids:
            raise ConfigError("rubric= was given but the template has no $rubric placeholder")
        if "labels" in ids and self.output != "label":
            raise ConfigError("$labels is only available with output='label'")
        optional = tuple(
            self.default_optional_fields if optional_fields is None else optional_fields
        )
        unknown = [f for f in optional if f not in fields]
        if unknown or "response" in optional:
            raise ConfigError(
                f"optional_fields {unknown or ['response']} must be template fields other than "
                f"response (template fields: {fields})"
            )
        # Per-instance field lists shadow the class defaults (as FunctionGrader does).
        self.required_fields = tuple(f for f in fields if f not in optional)
        self.optional_fields = optional
        self._output_format = self._render_output_format()

    def _render_output_format(self) -> str:
        lo, hi = self.scale
        if self.output == "label":
            return _template(load_prompt("output_label"), "output_label").substitute(
                labels=", ".join(self.labels)
            )
        return _template(load_prompt("output_json"), "output_json").substitute(
            scale_min=lo,
            scale_max=hi,
            score_type="a number" if self.allow_float else "an integer",
        )

    # -- rendering --

    def render(
        self, fields: Mapping[str, Any], *, nonce: str | None = None
    ) -> list[dict[str, str]]:
        """The chat messages for one record (a fresh random nonce unless one is given).

        Raises:
            Unscored: a field is not text (``invalid_input``).
        """
        safe = self._defang(self._texts(fields))
        return self._messages(safe, new_nonce() if nonce is None else nonce)

    def _texts(self, fields: Mapping[str, Any]) -> dict[str, str | None]:
        return {
            f: _prompt_text(fields[f], f) if fields.get(f) is not None else None
            for f in (*self.required_fields, *self.optional_fields)
        }

    def _defang(self, texts: Mapping[str, str | None]) -> dict[str, str | None]:
        return {
            f: None if t is None else neutralize(t, verdicts=f in self.untrusted_fields)
            for f, t in texts.items()
        }

    def _messages(
        self, safe: Mapping[str, str | None], nonce: str, *, wire: bool = False
    ) -> list[dict[str, str]]:
        """The chat messages; with ``wire``, each content carries its JSON encoding (the
        messages that are sent; a cache key's need none)."""
        user_parts, system_parts = self._compiled()
        labels = self._labels_of
        values: dict[str, str] = {}
        for f, text in safe.items():
            values[f] = (
                NOT_PROVIDED
                if text is None
                else fence(labels.get(f) or _field_label(f), text, nonce)
            )
        if wire:
            system: str = system_parts.render_json({"nonce": nonce})
            user: str = user_parts.render_json(values)
        else:
            system, user = system_parts.render({"nonce": nonce}), user_parts.render(values)
        return [{"role": "system", "content": system}, {"role": "user", "content": user}]

    def _compiled(self) -> tuple[_Parts, _Parts]:
        """The user and system templates split once (see :class:`graders._prompt._Parts`), with
        the grader's fixed values (rubric, scale, labels, output format) already in.

        Rebuilt whenever one of those inputs is no longer what they were built from, so a
        grader whose ``rubric`` (or template) is replaced after construction renders the new one.
        """
        key = (
            self._user_tpl,
            self._user_tpl.template,
            self._system_tpl,
            self._system_tpl.template,
            self.rubric,
            self.scale,
            self._output_format,
            self.labels,
        )
        built = self.__dict__.get("_parts")
        if built is not None and built[0] == key:
            return built[1], built[2]
        fixed = {
            "rubric": self.rubric,
            "scale_min": self.scale[0],
            "scale_max": self.scale[1],
            "labels": ", ".join(self.labels),
        }
        user = _Parts(self._user_tpl, fixed)
        system = _Parts(self._system_tpl, {"output_format": self._output_format})
        # The key keeps a copy of the labels: an in-place edit of the dict must not match.
        self._parts = ((*key[:-1], dict(self.labels)), user, system)
        return user, system

    @property
    def _labels_of(self) -> dict[str, str]:
        """Each field's fence label (``reference_response`` -> ``REFERENCE_RESPONSE``)."""
        fields = (*self.required_fields, *self.optional_fields)
        cached = self.__dict__.get("_fence_labels")
        if cached is None or cached[0] != fields:
            cached = (fields, {f: _field_label(f) for f in fields})
            self._fence_labels = cached
        return cached[1]
