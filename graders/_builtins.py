"""Where each built-in grader type is defined, by the name a config's ``type`` uses.

The registry imports a module when its name is first looked up (:class:`rm_service._registry
.Registry`), so a process that names only ``math`` never imports the judges and their pre-gates.
``tests/graders/test_lazy_graders.py`` checks this table against what the modules register.
"""

from __future__ import annotations

__all__ = ["BUILTIN_GRADERS"]

BUILTIN_GRADERS: dict[str, str] = {
    **dict.fromkeys(
        ("called_tool", "final_answer", "max_turns", "valid_tool_calls"), "graders._agent"
    ),
    "committee": "graders._committee",
    **dict.fromkeys(
        ("correctness", "harmfulness", "instruction_following", "relevance"), "graders._judges"
    ),
    "format": "graders._format",
    "harmless_offline": "graders._harm",
    "length_penalty": "graders._length",
    "llm_judge": "graders._judge",
    "math": "graders._math",
    "number": "graders._number",
    "relevance_embedding": "graders._similarity",
    "similarity": "graders._similarity",
    "remote_reward_model": "graders._remote_rm",
    "reward_model": "graders._reward_model",
    "string_match": "graders._string",
}
