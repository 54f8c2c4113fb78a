"""A tiny reward model saved to a folder, with no download: the tests' stand-in for a real RM.

:func:`make_tiny_rm` writes a randomly initialised ``LlamaForSequenceClassification``
(``num_labels=1``, two layers, hidden size 32, seeded, fp32) and a byte-level fast tokenizer
built with ``tokenizers`` (every byte a token, no merges, so any text round-trips; bos prepended
when special tokens are added) with a chat template, exactly as ``save_pretrained`` writes them.
``AutoModelForSequenceClassification`` and ``AutoTokenizer`` load the folder as they would a real
reward model's.

The tokenizer has an eos token and *no* pad token, as most causal-LM reward models ship; TRL's
convention (pad falls back to eos) is then actually exercised. Its ``model_max_length`` is small
(:data:`TINY_MAX_LENGTH`), so a truncation test needs only a few hundred characters.

Plain functions, no fixtures: any test module (or bench) can call it with its own folder.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["CHAT_TEMPLATE", "TINY_MAX_LENGTH", "make_tiny_rm"]

TINY_MAX_LENGTH = 96
"""The tokenizer's ``model_max_length``; the model's position limit is larger (256)."""

CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}</s>{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)
"""A minimal template: role tag, content, eos after each turn."""

_SPECIALS = ("<s>", "</s>", "<unk>")


def make_tiny_rm(folder: str | Path, *, seed: int = 0, chat_template: bool = True) -> Path:
    """Build and save the tiny reward model and its tokenizer into ``folder``; returns it.

    Args:
        folder: where to save (created if missing).
        seed: the initialisation seed; the same seed gives the same weights.
        chat_template: give the tokenizer :data:`CHAT_TEMPLATE` (``False``: none, as a base
            model's tokenizer).
    """
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import LlamaConfig, LlamaForSequenceClassification, PreTrainedTokenizerFast

    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)

    alphabet = pre_tokenizers.ByteLevel.alphabet()
    vocab = {tok: i for i, tok in enumerate(_SPECIALS)}
    for ch in sorted(alphabet):
        vocab[ch] = len(vocab)
    core = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    core.decoder = decoders.ByteLevel()
    # bos before every text when special tokens are added, as Llama tokenizers do: TRL tokenizes
    # reward inputs with add_special_tokens=False, and with this a reader that forgot would differ
    core.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", vocab["<s>"])]
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core,
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
        model_max_length=TINY_MAX_LENGTH,
    )
    if chat_template:
        tokenizer.chat_template = CHAT_TEMPLATE
    tokenizer.save_pretrained(out)

    config = LlamaConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        num_labels=1,  # type: ignore[call-arg]  # a PretrainedConfig kwarg
        bos_token_id=vocab["<s>"],
        eos_token_id=vocab["</s>"],
        pad_token_id=None,
        tie_word_embeddings=False,
    )
    torch.manual_seed(seed)
    model = LlamaForSequenceClassification(config)
    with torch.no_grad():  # a head with visible spread: random init gives logits near 0
        model.score.weight.normal_(0.0, 0.1)
    model.save_pretrained(out)
    return out
