"""Training a small proofstep model from nothing: a byte-level BPE tokenizer and a GPT-NeoX.

The tokenizer is trained on the data itself, with ``[GOAL]``, ``[PROOFSTEP]``
and ``[END]`` as single special tokens plus ``<|endoftext|>`` (eos),
``<|padding|>`` and ``<s>``, a BOS that starts every encoding as LLaMA's does;
byte-level BPE round-trips any Lean text (⊢ ∀ ℕ α …) exactly. Text is split
into words as GPT-2 splits it, except that a newline joins the word after it,
as newlines join neighbouring whitespace in GPT-2's and LLaMA 3's vocabularies:
so a newline is usually inside a longer token (``\n⊢``), and code that assumed
one token per stop string, or a prompt without its BOS, goes wrong on these
models in tests too.
The presets are for tests, demos and benchmarks, not for good suggestions:
``tiny`` memorises a dozen pairs in seconds on a CPU. The training itself is
``finetune.train_model``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmstep.data.jsonl import read_proofsteps
from llmstep.errors import ConfigError
from llmstep.protocol.prompt import LLMSTEP_FORMAT
from llmstep.train.finetune import TrainConfig, TrainResult, data_metadata, resume_checkpoint, train_model

__all__ = [
    "BOS_TOKEN",
    "EOS_TOKEN",
    "PAD_TOKEN",
    "PRESETS",
    "PROMPT_TOKENS",
    "ScratchPreset",
    "build_model",
    "build_tokenizer",
    "scratch_config",
    "train_from_scratch",
    "train_scratch_run",
]

EOS_TOKEN = "<|endoftext|>"
PAD_TOKEN = "<|padding|>"
BOS_TOKEN = "<s>"
#: GPT-2's split into words, with a newline kept on the word after it (``\n⊢``, ``\nh``).
WORDS = r"\n[^\s\p{L}\p{N}]+|\n\p{L}+|'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"
#: The markers of llmstep's format; each must be one token so the model can't split or misspell them.
PROMPT_TOKENS = ("[GOAL]", "[PROOFSTEP]", "[END]")


@dataclass(frozen=True)
class ScratchPreset:
    """A model size and the training defaults that suit it."""

    hidden_size: int
    num_layers: int
    num_heads: int
    intermediate_size: int
    vocab_size: int  # an upper bound: BPE stops early on little data
    learning_rate: float
    batch_size: int


PRESETS: dict[str, ScratchPreset] = {
    # ~0.2M parameters besides embeddings: memorises ~10 pairs in a few hundred steps on a CPU.
    "tiny": ScratchPreset(64, 2, 2, 256, vocab_size=4096, learning_rate=3e-3, batch_size=16),
    # ~3M parameters besides embeddings: a smoke test on real data, still CPU-trainable.
    "small": ScratchPreset(256, 4, 4, 1024, vocab_size=8192, learning_rate=1e-3, batch_size=16),
}


def _preset(name: str) -> ScratchPreset:
    try:
        return PRESETS[name]
    except KeyError:
        raise ConfigError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}") from None


def build_tokenizer(texts: Iterable[str], vocab_size: int) -> Any:
    """A ``PreTrainedTokenizerFast`` with byte-level BPE trained on ``texts``, adding a BOS to every encoding."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(WORDS), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[EOS_TOKEN, PAD_TOKEN, BOS_TOKEN, *PROMPT_TOKENS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),  # all 256 bytes, so nothing is ever unknown
        show_progress=False,
    )
    core.train_from_iterator(texts, trainer)
    bos_id = core.token_to_id(BOS_TOKEN)
    core.post_processor = processors.TemplateProcessing(
        single=f"{BOS_TOKEN} $A", pair=f"{BOS_TOKEN} $A $B", special_tokens=[(BOS_TOKEN, bos_id)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=core,
        bos_token=BOS_TOKEN,
        eos_token=EOS_TOKEN,
        pad_token=PAD_TOKEN,
        additional_special_tokens=list(PROMPT_TOKENS),
        clean_up_tokenization_spaces=False,  # the default cleanup would rewrite " ." and " ," in Lean text
        model_max_length=2048,
        padding_side="right",
    )


def build_model(tokenizer: Any, preset: str | ScratchPreset) -> Any:
    """A freshly initialised GPT-NeoX sized by ``preset`` for ``tokenizer``'s vocabulary.

    Its generation config stops at ``[END]`` as well as at eos, so a plain
    ``generate`` call returns just the tactic and its marker.
    """
    from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

    p = _preset(preset) if isinstance(preset, str) else preset
    eos_id, bos_id = tokenizer.eos_token_id, tokenizer.bos_token_id
    end_id = tokenizer.convert_tokens_to_ids("[END]")
    config = GPTNeoXConfig(
        vocab_size=len(tokenizer),
        hidden_size=p.hidden_size,
        num_hidden_layers=p.num_layers,
        num_attention_heads=p.num_heads,
        intermediate_size=p.intermediate_size,
        max_position_embeddings=2048,  # rotary, so only the cache size; longer pairs are dropped anyway
        bos_token_id=bos_id,
        eos_token_id=eos_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    model = GPTNeoXForCausalLM(config)
    model.generation_config.eos_token_id = [end_id, eos_id]
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model


def _texts(records: list[dict[str, str]]) -> Iterable[str]:
    for r in records:
        yield r["prompt"] + r["completion"]
    # The bare markers, so the format is covered even by data that never shows an empty state.
    yield LLMSTEP_FORMAT.render("")


def scratch_config(preset: str, output_dir: str | Path, **overrides: Any) -> TrainConfig:
    """A ``TrainConfig`` with the preset's learning rate and batch size; ``overrides`` win."""
    p = _preset(preset)
    settings: dict[str, Any] = {
        "learning_rate": p.learning_rate,
        "batch_size": p.batch_size,
        "warmup_ratio": 0.0,
        "lr_scheduler": "constant",  # memorising a small set converges faster without decay
    }
    settings.update({k: v for k, v in overrides.items() if v is not None})
    return TrainConfig(output_dir=Path(output_dir), **settings)


def train_scratch_run(
    preset: str,
    train_path: str | Path,
    config: TrainConfig,
    eval_path: str | Path | None = None,
) -> TrainResult:
    """Build tokenizer and model for ``preset`` on ``train_path``, then train and save.

    On ``config.resume`` the tokenizer and architecture come from the checkpoint,
    not from the data, so the run continues with exactly what it started with.
    """
    from transformers import AutoConfig, AutoTokenizer, GPTNeoXForCausalLM, set_seed

    p = _preset(preset)
    checkpoint = resume_checkpoint(config)
    train_records = read_proofsteps(train_path)
    eval_records = read_proofsteps(eval_path) if eval_path is not None else None
    set_seed(config.seed)  # the weights are drawn here, before the Trainer seeds anything
    if checkpoint is not None:
        tokenizer = AutoTokenizer.from_pretrained(checkpoint)
        model = GPTNeoXForCausalLM(AutoConfig.from_pretrained(checkpoint))
        model.generation_config.eos_token_id = [tokenizer.convert_tokens_to_ids("[END]"), tokenizer.eos_token_id]
        model.generation_config.pad_token_id = tokenizer.pad_token_id
    else:
        tokenizer = build_tokenizer(_texts(train_records), p.vocab_size)
        model = build_model(tokenizer, p)
    metadata = {"preset": preset, **data_metadata(train_path, eval_path)}
    return train_model(model, tokenizer, train_records, config, eval_records, metadata)


def train_from_scratch(
    data_path: str | Path,
    output_dir: str | Path,
    preset: str = "tiny",
    *,
    max_steps: int = 300,
    seed: int = 0,
    eval_path: str | Path | None = None,
    progress: bool = False,
    **overrides: Any,
) -> Path:
    """Train a ``preset`` model on proofstep JSONL into ``output_dir`` and return that folder.

    The folder loads with ``AutoModelForCausalLM`` / ``AutoTokenizer`` and serves
    with ``llmstep serve --model``. ``overrides`` are ``TrainConfig`` fields
    (``learning_rate``, ``batch_size``, ``eval_steps``, ...). Defaults suit a
    test fixture: quiet, no checkpoints beyond the final one.
    """
    overrides.setdefault("eval_steps", max_steps)  # one checkpoint, at the end
    overrides.setdefault("logging_steps", max(1, max_steps // 20))
    config = scratch_config(preset, output_dir, max_steps=max_steps, seed=seed, progress=progress, **overrides)
    train_scratch_run(preset, data_path, config, eval_path)
    return Path(output_dir)
