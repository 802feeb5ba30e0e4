# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # 06 · A language model the way 2026 builds one
#
# Assignment 04 built a GPT-2-era model: characters as tokens, learned position embeddings,
# layer norm, a GELU MLP, one key and value per head. Today's open models (Llama, Mistral, Qwen,
# Gemma) keep the same skeleton but change almost every part. You build each change from
# scratch and check it against PyTorch:
#
# 1. a **byte-level BPE tokenizer**: training the merges, encoding, decoding, special tokens;
# 2. a **modern decoder block**: RMSNorm, rotary position embeddings (RoPE), a SwiGLU MLP,
#    grouped-query attention (GQA) with a key/value cache, and a model with tied weights;
#
# Fill in every `YOUR CODE HERE`, then run the test cell below it. Every requirement is stated in
# the text and checked by a visible test; hidden tests, run when the notebook is graded, add more
# cases of the same requirements (other sizes, other texts), so make your code general. Every
# test cell prints one line when it passes. Run the cells in order; a cell that needs an exercise
# you have not written yet stops with one line naming it.
#
# **Data.** The course loader gives *tiny Shakespeare* (1.1 MB) when it can download it (Colab),
# and otherwise, always while grading, CPython's own documentation (`pydoc_data.topics`, about
# 0.46 MB of English that every Python install carries): a stand-in, and every printed result
# says which of the two it comes from.
#
# **Time.** Run All takes well under a minute on a 2-core CPU (measured: the tokenizer trains in about 10 s); under the grader every run
# shrinks to a few steps and nothing graded depends on how well a model trains.

# %%
import math
import os
import re
import time
from collections import Counter
from contextlib import ExitStack, contextmanager
from unittest import mock

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm.auto import tqdm

import dlcourse
from dlcourse.checks import assert_close, assert_shape, assert_true

device = dlcourse.get_device()
# The tests compare in float64, which Apple's MPS backend lacks; they run on the CPU there.
test_device = torch.device("cpu") if device.type == "mps" else device
dlcourse.seed_everything(0)
print(f"torch {torch.__version__} | training on: {device} | tests on: {test_device}")


def progress_bar(iterable, desc):
    """A tqdm progress bar, silent while grading and when $DLCOURSE_PROGRESS=0."""
    quiet = dlcourse.is_grading() or os.environ.get("DLCOURSE_PROGRESS") == "0"
    return tqdm(iterable, desc=desc, disable=quiet)


def assert_equal(got, expected, *, name, hint=None):
    """Exact equality of Python values (lists, dicts, tuples of ids), with both in the message."""
    assert_true(got == expected, f"{name}: got {got!r}, expected {expected!r}", hint=hint)


@contextmanager
def no_shortcuts():
    """Inside this block PyTorch's fused RMSNorm and attention raise: the tests call your layers
    inside it, because the point is to write them (they are the oracles the tests compare with)."""
    def forbidden(name):
        def fail(*args, **kwargs):
            raise AssertionError(f"{name} is off limits in this exercise: compute it yourself")
        return fail

    banned = [(F, "rms_norm"), (F, "scaled_dot_product_attention"), (F, "multi_head_attention_forward")]
    with ExitStack() as stack:
        for owner, name in banned:
            stack.enter_context(mock.patch.object(owner, name, forbidden(f"F.{name}")))
        yield


# %% [markdown]
# ## 1. A byte-level BPE tokenizer
#
# A character model (04) spends one prediction per character; a word-level model cannot spell a
# word it has never seen. **Byte-pair encoding** sits between the two. Start from the 256 possible
# bytes of UTF-8, so that *every* string, in any script and with emoji, can be written; then
# repeat: find the most frequent pair of adjacent tokens in the training text and add it to the
# vocabulary as a new token. After $m$ merges the vocabulary has $256 + m$ tokens, frequent words
# are single tokens, and rare words fall back to pieces or bytes.
#
# Like GPT-2 and its successors we first split the text into **words** with a regular expression
# (a word keeps the space in front of it, punctuation and digits form their own pieces), and never
# merge across two words: a token never spans `"the end"`. Training then works on the *distinct*
# words and how often each occurs, which is much faster than working on the whole text.

# %%
# a letter run (with its leading space), a digit run, a punctuation run, or whitespace;
# [^\W\d_] is "a letter" in any script, (?:[^\s\w]|_) "punctuation" (the underscore included)
WORD_PATTERN = r"'(?:[sdmt]|ll|ve|re)| ?[^\W\d_]+| ?\d+| ?(?:[^\s\w]|_)+|\s+(?!\S)|\s+"


def split_words(text):
    """The text cut into words: ''.join(split_words(text)) == text."""
    return re.findall(WORD_PATTERN, text)


print(split_words("Hello, world! Isn't  2026 the year_of BPE? Ça va 🙂"))
assert "".join(split_words("a  b\n\n c's_d  ")) == "a  b\n\n c's_d  "

# %% [markdown]
# ### 1.1 Counting and merging pairs
#
# A word is a tuple of token ids (at the start, its UTF-8 bytes). The training text is summarised
# as `words`, a dict from each distinct word to how many times it occurs.
#
# * `count_pairs(words)` returns a `Counter` from each pair of adjacent ids `(a, b)` to how often
#   it occurs in the text: a pair inside a word that occurs 5 times counts 5 times, and a pair
#   that occurs twice inside one word counts twice.
# * `merge_pair(ids, pair, new_id)` returns a new list in which every occurrence of `pair` is
#   replaced by `new_id`, scanning left to right: occurrences do not overlap, so merging `(1, 1)`
#   in `[1, 1, 1]` gives `[new_id, 1]`.

# %% solution="bpe_pairs"
def count_pairs(words):
    """words: dict {tuple of ids: count}. Returns Counter {(a, b): occurrences in the text}."""
    ### BEGIN SOLUTION
    pairs = Counter()
    for word, count in words.items():
        for pair in zip(word, word[1:]):
            pairs[pair] += count
    return pairs
    ### END SOLUTION


def merge_pair(ids, pair, new_id):
    """A new list: ids with each non-overlapping occurrence of pair (left to right) replaced by new_id."""
    ### BEGIN SOLUTION
    merged, i = [], 0
    while i < len(ids):
        if i + 1 < len(ids) and ids[i] == pair[0] and ids[i + 1] == pair[1]:
            merged.append(new_id)
            i += 2
        else:
            merged.append(ids[i])
            i += 1
    return merged
    ### END SOLUTION


# %% tests="test_bpe_pairs" points=2
from collections import Counter

words = {(1, 2, 3): 5, (2, 3, 2, 3): 1, (7,): 4}
assert_equal(dict(count_pairs(words)), {(1, 2): 5, (2, 3): 7, (3, 2): 1}, name="count_pairs",
             hint="each pair inside a word counts as many times as the word occurs; a one-id word has no pair")
assert_true(isinstance(count_pairs(words), Counter), "count_pairs must return a Counter",
            hint="return collections.Counter(...)")
assert_equal(merge_pair([1, 2, 3, 1, 2], (1, 2), 9), [9, 3, 9], name="merge_pair([1, 2, 3, 1, 2], (1, 2), 9)",
             hint="replace every occurrence, the last one included")
assert_equal(merge_pair([1, 1, 1], (1, 1), 9), [9, 1], name="merge_pair([1, 1, 1], (1, 1), 9)",
             hint="after a merge, continue after the pair: occurrences do not overlap")
assert_equal(merge_pair((5, 6), (6, 5), 9), [5, 6], name="merge_pair((5, 6), (6, 5), 9)",
             hint="a pair is ordered: (6, 5) does not occur in (5, 6); a tuple input gives a list")
### BEGIN HIDDEN TESTS
assert_equal(merge_pair([], (1, 2), 9), [], name="merge_pair of an empty list")
assert_equal(merge_pair([4], (4, 4), 9), [4], name="merge_pair of one id")
assert_equal(merge_pair([3, 3, 3, 3], (3, 3), 8), [8, 8], name="merge_pair([3, 3, 3, 3])")
assert_equal(merge_pair([2, 1, 2, 1, 2], (1, 2), 7), [2, 7, 7], name="merge_pair([2, 1, 2, 1, 2], (1, 2))")
assert_equal(dict(count_pairs({(4, 4, 4): 3})), {(4, 4): 6}, name="count_pairs of a repeated id")
assert_equal(dict(count_pairs({})), {}, name="count_pairs of no words")
### END HIDDEN TESTS
print("count_pairs and merge_pair: all visible tests passed")

# %% [markdown]
# ### 1.2 Training the merges
#
# `train_bpe(text, vocab_size)` splits the text with `split_words`, turns each distinct word into
# the tuple of its UTF-8 bytes (`tuple(word.encode("utf-8"))`), and then repeats until the
# vocabulary has `vocab_size` tokens: count the pairs, pick the most frequent one, give it the next
# id (256, 257, ...), and merge it in every word. When two pairs are equally frequent, take the
# **smallest** pair (compare them as tuples: `(32, 116) < (101, 32)`), so that training is
# deterministic. Stop early when no pair is left. Return the merges in the order they were made,
# as a list of `((a, b), new_id)`. A `vocab_size` below 256 is a `ValueError`.

# %% solution="bpe_train"
def train_bpe(text, vocab_size):
    """The merges [((a, b), new_id), ...] that grow the 256 bytes to vocab_size tokens on text."""
    ### BEGIN SOLUTION
    if vocab_size < 256:
        raise ValueError(f"vocab_size must be at least 256 (the bytes), got {vocab_size}")
    words = Counter(tuple(word.encode("utf-8")) for word in split_words(text))
    merges = []
    for new_id in range(256, vocab_size):
        pairs = count_pairs(words)
        if not pairs:
            break
        best = min(pairs, key=lambda pair: (-pairs[pair], pair))
        merged = Counter()
        for word, count in words.items():
            merged[tuple(merge_pair(word, best, new_id))] += count
        words = merged
        merges.append((best, new_id))
    return merges
    ### END SOLUTION


# %% tests="test_bpe_train" points=3
# "aaabdaaabac": the pairs are aa 4, ab 2, bd 1, da 1, ba 1, ac 1 -> aa becomes 256; then (256, a) and
# (a, b) occur twice each: the tie goes to the smaller pair, (97, 98) -> 257; then (256, 257) -> 258
assert_equal(train_bpe("aaabdaaabac", 259), [((97, 97), 256), ((97, 98), 257), ((256, 257), 258)],
             name='train_bpe("aaabdaaabac", 259)',
             hint="most frequent pair first; ties go to the smallest pair (compare as tuples); ids from 256")
assert_equal(train_bpe("abc", 300), [((97, 98), 256), ((256, 99), 257)],
             name='train_bpe("abc", 300)', hint="stop early when no pair is left")
sentence = "the cat sat on the mat, the end. the cat ate the rat."
for (pair, new_id) in train_bpe(sentence, 300):
    assert_true(new_id >= 256, f"merge {pair} got id {new_id}", hint="new ids start at 256")
vocab = {i: bytes([i]) for i in range(256)}
for (a, b), new_id in train_bpe(sentence, 300):
    vocab[new_id] = vocab[a] + vocab[b]
    assert_true(b" " not in vocab[new_id][1:], f"token {vocab[new_id]!r} spans two words",
                hint="split the text with split_words and never merge across two words")
assert_true(len(train_bpe(sentence, 270)) == 14, "train_bpe(sentence, 270) must make 14 merges",
            hint="make vocab_size - 256 merges")
assert_equal(train_bpe("ééé", 258), [((195, 169), 256), ((256, 256), 257)], name='train_bpe("ééé", 258)',
             hint="start from the UTF-8 bytes of each word: word.encode('utf-8')")
try:
    train_bpe("abc", 100)
    raise AssertionError("train_bpe('abc', 100) did not raise")
except ValueError:
    pass
### BEGIN HIDDEN TESTS
def reference_bpe(text, vocab_size):
    """A plain reference (not the student's helpers): every occurrence of every word, merged in place."""
    sequences = [list(w.encode("utf-8")) for w in split_words(text)]
    result = []
    for next_id in range(256, vocab_size):
        counts = {}
        for seq in sequences:
            for pair in zip(seq, seq[1:]):
                counts[pair] = counts.get(pair, 0) + 1
        if not counts:
            break
        top = max(counts.values())
        best = min(p for p, c in counts.items() if c == top)
        for seq in sequences:
            i = 0
            while i < len(seq) - 1:
                if (seq[i], seq[i + 1]) == best:
                    seq[i:i + 2] = [next_id]
                i += 1
        result.append((best, next_id))
    return result


hidden_text = ("Rotary embeddings rotate queries and keys; grouped-query attention shares keys and values. "
               "Les données, naïve café — 東京 🙂🙂 1234 1234 snake_case snake_case. " * 3)
assert_equal(train_bpe(hidden_text, 320), reference_bpe(hidden_text, 320), name="train_bpe on a mixed-script text")
assert_equal(train_bpe("", 300), [], name="train_bpe of an empty text")
assert_equal(train_bpe("ab", 256), [], name="train_bpe with vocab_size 256")
### END HIDDEN TESTS
print("train_bpe: all visible tests passed")

# %% [markdown]
# ### 1.3 Encoding and decoding
#
# `BPETokenizer(merges, special_tokens)` holds the merges and builds:
#
# * `self.vocab`: a dict from every id to its bytes (ids 0-255 are the bytes themselves; a merged
#   id's bytes are its two parts' bytes, joined);
# * `self.special_ids`: a dict from each special token (a string such as `"<|endoftext|>"`, which
#   marks where one document ends) to its id, the ids after the merges, in the order given;
# * `self.vocab_size`: 256 + the number of merges + the number of special tokens.
#
# `encode(text)` returns a list of ids. A special token in the text becomes its id (split the
# text on them first; `re.escape` makes a string safe inside a pattern); the rest is split with
# `split_words`, and each word goes from its bytes to tokens by applying the merges **in the order
# they were learned**: while the word has a pair that was merged, merge the pair with the smallest
# new id (`merge_pair` does the rest). The order matters: with the merges `(b, c)` then `(a, b)`,
# `"abc"` is `[a, bc]`, not `[ab, c]`.
#
# `decode(ids)` joins the ids' bytes and decodes them as UTF-8 with `errors="replace"`: a list of
# ids can end in the middle of a character (a model may generate that), and that must give
# `"\ufffd"` (�), not an exception. `decode(encode(s)) == s` for every string.

# %% solution="bpe_tokenizer"
class BPETokenizer:
    def __init__(self, merges, special_tokens=()):
        self.merges = {pair: new_id for pair, new_id in merges}
        ### BEGIN SOLUTION
        self.vocab = {i: bytes([i]) for i in range(256)}
        for (a, b), new_id in merges:
            self.vocab[new_id] = self.vocab[a] + self.vocab[b]
        first_special = 256 + len(self.merges)
        self.special_ids = {token: first_special + i for i, token in enumerate(special_tokens)}
        self.vocab_size = first_special + len(self.special_ids)
        self._word_cache = {}
        ### END SOLUTION

    def encode(self, text):
        """The list of ids of text (special tokens included)."""
        ### BEGIN SOLUTION
        if self.special_ids:
            pattern = "(" + "|".join(re.escape(token) for token in self.special_ids) + ")"
            pieces = re.split(pattern, text)
        else:
            pieces = [text]
        ids = []
        for piece in pieces:
            if piece in self.special_ids:
                ids.append(self.special_ids[piece])
                continue
            for word in split_words(piece):
                if word not in self._word_cache:  # real text repeats its words: encode each once
                    self._word_cache[word] = self._encode_word(word)
                ids.extend(self._word_cache[word])
        return ids

    def _encode_word(self, word):
        ids = list(word.encode("utf-8"))
        while len(ids) >= 2:
            pair = min(zip(ids, ids[1:]), key=lambda p: self.merges.get(p, math.inf))
            if pair not in self.merges:
                break
            ids = merge_pair(ids, pair, self.merges[pair])
        return ids
        ### END SOLUTION

    def decode(self, ids):
        """The text of ids; bytes that are not valid UTF-8 become '\ufffd'."""
        ### BEGIN SOLUTION
        special_by_id = {i: token.encode("utf-8") for token, i in self.special_ids.items()}
        data = b"".join(special_by_id[i] if i in special_by_id else self.vocab[i] for i in ids)
        return data.decode("utf-8", errors="replace")
        ### END SOLUTION


# %% tests="test_bpe_tokenizer" points=3
order = BPETokenizer([((98, 99), 256), ((97, 98), 257)])
assert_equal(order.encode("abc"), [97, 256], name='encode("abc") with the merges (b, c) then (a, b)',
             hint="apply the merges in the order they were learned: the pair with the smallest new id first")
assert_true(order.vocab[256] == b"bc" and order.vocab[97] == b"a" and order.vocab_size == 258,
            "vocab: ids 0-255 are the bytes, 256 is b'bc'; vocab_size is 258",
            hint="self.vocab[new_id] = self.vocab[a] + self.vocab[b]")
merges = [((97, 97), 256), ((97, 98), 257), ((256, 257), 258)]
tokenizer = BPETokenizer(merges, special_tokens=["<|endoftext|>", "<|pad|>"])
assert_true(tokenizer.special_ids == {"<|endoftext|>": 259, "<|pad|>": 260} and tokenizer.vocab_size == 261,
            f"special_ids is {tokenizer.special_ids}, vocab_size {tokenizer.vocab_size}",
            hint="special tokens get the ids after the merges, in the order given")
assert_equal(tokenizer.encode("aaabdaaabac"), [258, 100, 258, 97, 99], name='encode("aaabdaaabac")',
             hint="split with split_words, start from the UTF-8 bytes, merge while a learned pair is left")
assert_equal(tokenizer.encode("ab<|endoftext|>ab"), [257, 259, 257], name='encode("ab<|endoftext|>ab")',
             hint="split the text on the special tokens first; a special token becomes its id")
assert_true(tokenizer.decode([257, 259, 260]) == "ab<|endoftext|><|pad|>", "decode of a special token",
            hint="decode a special id to its string")
for text in ["", "aaab", "Ça va? naïve café", "東京 2026", "emoji 🙂🚀!", "snake_case  and\n\n tabs\t"]:
    assert_true(tokenizer.decode(tokenizer.encode(text)) == text, f"decode(encode({text!r})) != {text!r}",
                hint="encode the UTF-8 bytes of every character; decode with bytes.decode('utf-8')")
half_a_character = list("€".encode("utf-8"))[:2]
assert_true(tokenizer.decode(half_a_character) == "\ufffd", "decode of half a character must give '\\ufffd'",
            hint="decode with errors='replace'")
### BEGIN HIDDEN TESTS
text = "the theme of the thesis: these are the three theses. " * 4
learned = BPETokenizer(train_bpe(text, 280), ["<|endoftext|>"])
ids = learned.encode(text + "<|endoftext|>" + "thesaurus ñ")
assert_true(learned.decode(ids) == text + "<|endoftext|>" + "thesaurus ñ", "round trip with a learned tokenizer")
assert_true(len(learned.encode(text)) < len(text.encode("utf-8")) / 3, "a learned tokenizer must compress its text")
for word in set(split_words(text)):
    expected_ids = list(word.encode("utf-8"))
    for pair, new_id in train_bpe(text, 280):
        expected_ids = merge_pair(expected_ids, pair, new_id)
    assert_equal(learned.encode(word), expected_ids, name=f"encode({word!r}) against the merges applied in training order")
assert_equal(BPETokenizer([]).encode("hé"), [104, 195, 169], name="encode without merges")
assert_true(BPETokenizer([], ["<s>"]).decode([256, 104]) == "<s>h", "decode of a special token without merges")
### END HIDDEN TESTS
print("BPETokenizer: all visible tests passed")

# %% [markdown]
# ### 1.4 Training on real text: how much does BPE compress?
#
# We train the tokenizer on the training split of the corpus (the first 90%; the last 10% is held
# out) and measure it on the held-out text: how many tokens per character, and how many bytes of
# UTF-8 a token covers on average.

# %%
dlcourse.require_written(count_pairs, merge_pair, train_bpe, BPETokenizer)
text = dlcourse.data.load_prose("tiny_shakespeare")
corpus_name = ("CPython's documentation (pydoc_data.topics, the offline stand-in for tiny Shakespeare)"
               if dlcourse.data.is_offline_subset(text) else "tiny Shakespeare")
corpus_short = "CPython docs (stand-in)" if dlcourse.data.is_offline_subset(text) else "tiny Shakespeare"
text = dlcourse.budget(full=str(text), grading=str(text)[:30_000])
split = int(0.9 * len(text))
train_text, val_text = text[:split], text[split:]
BPE_VOCAB = dlcourse.budget(full=1024 if device.type == "cuda" else 512, grading=256 + 32)

started = time.perf_counter()
merges = train_bpe(train_text, BPE_VOCAB - 1)  # one id left for <|endoftext|>
tokenizer = BPETokenizer(merges, special_tokens=["<|endoftext|>"])
print(f"trained {len(merges)} merges on {len(train_text):,} characters of {corpus_name} "
      f"in {time.perf_counter() - started:.1f} s: vocabulary of {tokenizer.vocab_size}")
val_ids = tokenizer.encode(val_text)
val_bytes = len(val_text.encode("utf-8"))
print(f"held-out text: {len(val_text):,} characters, {val_bytes:,} bytes -> {len(val_ids):,} tokens: "
      f"{len(val_text) / len(val_ids):.2f} characters and {val_bytes / len(val_ids):.2f} bytes per token")
print("first merges:", [tokenizer.vocab[i].decode("utf-8", "replace") for i in range(256, 276)])
print("last merges: ", [tokenizer.vocab[i].decode("utf-8", "replace") for _, i in merges[-10:]])
sample = val_text[:200]
print("a held-out passage, token by token:")
print("|".join(tokenizer.decode([i]) for i in tokenizer.encode(sample)))
for s in ["naïve café", "東京", "🙂", "<|endoftext|>"]:
    print(f"{s!r}: {len(s)} character(s) -> {tokenizer.encode(s)}")

# %% [markdown]
# Read the output above: the first merges are the commonest pieces of English (a space and a
# letter, `the`, `in`), the last ones whole frequent words. Text the tokenizer never saw (accents,
# Japanese, emoji) still round-trips: it falls back to its UTF-8 bytes, several tokens per character.

# %% [markdown]
# ## 2. A modern decoder block
#
# ### 2.1 RMSNorm
#
# Layer norm subtracts the mean and divides by the standard deviation. **RMSNorm** (Zhang and
# Sennrich, 2019; used by Llama and its successors) skips the mean: it divides each vector by its
# root mean square and multiplies by a learned gain $g$ (initialised to ones), with no bias:
#
# $$\operatorname{RMSNorm}(x) = \frac{x}{\sqrt{\tfrac1d \sum_j x_j^2 + \epsilon}} \odot g.$$
#
# The $\epsilon$ sits **inside** the square root. It is cheaper and works as well. Compare with
# `torch.nn.RMSNorm(dim, eps=eps)`; the tests forbid `F.rms_norm`.

# %% solution="rmsnorm"
class RMSNorm(nn.Module):
    def __init__(self, dim, eps=1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        """x: (..., dim) -> same shape, normalised over the last dimension."""
        ### BEGIN SOLUTION
        mean_square = x.pow(2).mean(dim=-1, keepdim=True)
        return x * torch.rsqrt(mean_square + self.eps) * self.weight
        ### END SOLUTION


# %% tests="test_rmsnorm" points=2
torch.manual_seed(0)
f64 = dict(dtype=torch.float64, device=test_device)
for dim, eps, shape in [(8, 1e-6, (2, 5, 8)), (6, 0.5, (3, 6))]:
    ours = RMSNorm(dim, eps=eps).to(**f64)
    theirs = nn.RMSNorm(dim, eps=eps).to(**f64)
    with torch.no_grad():
        ours.weight.copy_(torch.randn(dim))
        theirs.weight.copy_(ours.weight)
    x = 3 * torch.randn(*shape, **f64) + 1
    with no_shortcuts():
        got = ours(x)
    assert_close(got, theirs(x), name=f"RMSNorm({dim}, eps={eps}) on {shape}",
                 hint="x / sqrt(mean of x**2 over the last dim + eps) * weight: no mean subtracted, eps inside "
                      "the square root")
assert_true(sum(p.numel() for p in RMSNorm(8).parameters()) == 8, "RMSNorm(8) must have 8 parameters",
            hint="a gain per feature, no bias")
### BEGIN HIDDEN TESTS
ours, theirs = RMSNorm(1, eps=1e-3).to(**f64), nn.RMSNorm(1, eps=1e-3).to(**f64)
x = torch.randn(4, 1, **f64)
with no_shortcuts():
    got = ours(x)
assert_close(got, theirs(x), name="RMSNorm(1)")
x32 = torch.randn(2, 3, 16, device=test_device)
with no_shortcuts():
    got = RMSNorm(16).to(test_device)(x32)
assert_close(got, nn.RMSNorm(16, eps=1e-6).to(test_device)(x32), name="RMSNorm in float32")
### END HIDDEN TESTS
print("RMSNorm: all visible tests passed")

# %% [markdown]
# ### 2.2 Rotary position embeddings (RoPE)
#
# 04 added a position vector to each token. **RoPE** (Su et al., 2021) instead *rotates* the
# query and the key of the token at position $p$. Cut a head's vector of size $d$ into $d/2$ pairs
# of coordinates; pair $i$ is rotated by the angle $p\,\theta_i$ with $\theta_i = b^{-2i/d}$
# ($b$ = `base` = 10,000): the first pairs turn fast, the last ones slowly. Because a rotation by
# $p\theta$ followed (in the dot product) by the inverse rotation by $n\theta$ is a rotation by
# $(p - n)\theta$, the score $q_p \cdot k_n$ depends on the positions **only through the distance
# $p - n$**: attention becomes relative, with no table of positions to learn.
#
# We pair coordinate $j$ with coordinate $j + d/2$ (the "rotate half" layout Llama's code uses):
# with $x_1$ the first half of the vector and $x_2$ the second,
#
# $$\operatorname{RoPE}(x, p) = \big[\,x_1 \cos(p\theta) - x_2 \sin(p\theta),\;\; x_1 \sin(p\theta) + x_2 \cos(p\theta)\,\big].$$
#
# `apply_rope(x, positions, base)`: `x` is `(..., L, d)`, `positions` an integer tensor `(L,)`
# (the position of each of the $L$ rows); compute the angles in float64 when `x` is float64 and in
# float32 otherwise, and return a tensor of `x`'s shape and dtype.

# %% solution="rope"
def apply_rope(x, positions, base=10000.0):
    """Rotate each pair (x[..., j], x[..., j + d/2]) of x (..., L, d) by positions * base**(-2j/d)."""
    ### BEGIN SOLUTION
    half = x.size(-1) // 2
    angle_dtype = torch.float64 if x.dtype == torch.float64 else torch.float32
    frequencies = base ** (-torch.arange(half, dtype=angle_dtype, device=x.device) * 2 / x.size(-1))
    angles = positions.to(angle_dtype)[:, None] * frequencies[None, :]
    cos, sin = angles.cos().to(x.dtype), angles.sin().to(x.dtype)
    x1, x2 = x[..., :half], x[..., half:]
    return torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1)
    ### END SOLUTION


# %% tests="test_rope" points=3
f64 = dict(dtype=torch.float64, device=test_device)
positions = torch.arange(4, device=test_device)
x = torch.tensor([[1.0, 0.0]] * 4, **f64)
expected = torch.stack([positions.double().cos(), positions.double().sin()], dim=-1).to(test_device)
assert_close(apply_rope(x, positions), expected, name="apply_rope of (1, 0) at positions 0..3 (d = 2)",
             hint="pair 0 turns by the angle p * 1 (theta_0 = 1), counterclockwise: (cos p, sin p)")
e1 = torch.tensor([[0.0, 1.0, 0.0, 0.0]], **f64)
one = torch.tensor([1], device=test_device)
assert_close(apply_rope(e1, one), torch.tensor([[0.0, math.cos(0.01), 0.0, math.sin(0.01)]], **f64),
             name="apply_rope of coordinate 1 at position 1 (d = 4)",
             hint="coordinate j pairs with j + d/2 (here 1 with 3); pair 1 turns by 10000**(-2/4) = 0.01")
assert_close(apply_rope(e1, one, base=100.0), torch.tensor([[0.0, math.cos(0.1), 0.0, math.sin(0.1)]], **f64),
             name="apply_rope(..., base=100)", hint="theta_i = base**(-2i/d)")
torch.manual_seed(0)
q, k = torch.randn(1, 16, **f64), torch.randn(1, 16, **f64)


def score(m, n):
    return (apply_rope(q, torch.tensor([m], device=test_device)) *
            apply_rope(k, torch.tensor([n], device=test_device))).sum()


assert_close(torch.stack([score(3, 1), score(10, 8), score(102, 100)]), score(2, 0).repeat(3),
             name="q.k at positions (m, n) with the same distance m - n = 2",
             hint="rotate both halves by the same angles: then the score depends on m - n only")
assert_true(not torch.allclose(score(3, 1), score(3, 2)), "the score must change with the distance",
            hint="apply the rotation (positions must matter)")
x = torch.randn(2, 3, 5, 8, **f64)
rotated = apply_rope(x, torch.arange(5, device=test_device))
assert_close(rotated.norm(dim=-1), x.norm(dim=-1), name="norms after apply_rope",
             hint="a rotation keeps each vector's length")
assert_shape(rotated, (2, 3, 5, 8), name="apply_rope(x (2, 3, 5, 8))", hint="positions index the second-to-last dim")
assert_true(apply_rope(x.float(), torch.arange(5, device=test_device)).dtype == torch.float32,
            "apply_rope of a float32 tensor must be float32", hint="return the input's dtype")
### BEGIN HIDDEN TESTS
def rope_as_complex(x, positions, base):
    half = x.size(-1) // 2
    theta = base ** (-torch.arange(half, dtype=torch.float64) * 2 / x.size(-1))
    turn = torch.polar(torch.ones(len(positions), half, dtype=torch.float64), positions.double()[:, None] * theta)
    z = torch.complex(x[..., :half].cpu(), x[..., half:].cpu()) * turn
    return torch.cat([z.real, z.imag], dim=-1).to(x.device)


x = torch.randn(3, 7, 12, **f64)
positions = torch.tensor([0, 5, 1, 9, 100, 3, 2], device=test_device)
assert_close(apply_rope(x, positions, base=500.0), rope_as_complex(x, positions, 500.0), name="apply_rope, d = 12")
x = torch.randn(1, 2, **f64)
assert_close(apply_rope(x, torch.tensor([7], device=test_device)), rope_as_complex(x, torch.tensor([7]), 1e4),
             name="apply_rope, d = 2")
### END HIDDEN TESTS
print("apply_rope: all visible tests passed")

# %% [markdown]
# ### 2.3 The SwiGLU MLP
#
# 04's MLP was `W2 GELU(W1 x)`. Llama's is a **gated** MLP (Shazeer, 2020): two projections of
# the input, one of which goes through SiLU ($\operatorname{silu}(z) = z\,\sigma(z)$, `F.silu`) and
# *gates* the other element by element, then a projection back; no biases:
#
# $$\operatorname{SwiGLU}(x) = W_\text{down}\big(\operatorname{silu}(W_\text{gate}\,x) \odot W_\text{up}\,x\big).$$
#
# Use three `nn.Linear(..., bias=False)` named `gate`, `up` and `down`. Because it has three
# matrices instead of two, its hidden size is usually about $\tfrac83 d$ rather than $4d$, for the
# same number of parameters.

# %% solution="swiglu"
class SwiGLU(nn.Module):
    def __init__(self, d_model, hidden_dim):
        super().__init__()
        ### BEGIN SOLUTION
        self.gate = nn.Linear(d_model, hidden_dim, bias=False)
        self.up = nn.Linear(d_model, hidden_dim, bias=False)
        self.down = nn.Linear(hidden_dim, d_model, bias=False)
        ### END SOLUTION

    def forward(self, x):
        ### BEGIN SOLUTION
        return self.down(F.silu(self.gate(x)) * self.up(x))
        ### END SOLUTION


# %% tests="test_swiglu" points=2
torch.manual_seed(0)
f64 = dict(dtype=torch.float64, device=test_device)
mlp = SwiGLU(6, 10).to(**f64)
assert_true(mlp.gate.weight.shape == (10, 6) and mlp.up.weight.shape == (10, 6) and mlp.down.weight.shape == (6, 10),
            "gate and up map d_model -> hidden_dim, down hidden_dim -> d_model",
            hint="nn.Linear(d_model, hidden_dim, bias=False) twice, nn.Linear(hidden_dim, d_model, bias=False)")
assert_true(sum(p.numel() for p in mlp.parameters()) == 3 * 6 * 10, "SwiGLU(6, 10) must have 180 parameters",
            hint="no biases")
x = torch.randn(2, 4, 6, **f64)
gate, up, down = mlp.gate.weight, mlp.up.weight, mlp.down.weight
z_gate, z_up = x @ gate.T, x @ up.T
assert_close(mlp(x), (z_gate * torch.sigmoid(z_gate) * z_up) @ down.T, name="SwiGLU(x)",
             hint="down(silu(gate(x)) * up(x)): the SiLU goes on the gate branch only")
### BEGIN HIDDEN TESTS
mlp = SwiGLU(3, 1).to(**f64)
x = torch.randn(5, 3, **f64)
expected = F.linear(F.silu(F.linear(x, mlp.gate.weight)) * F.linear(x, mlp.up.weight), mlp.down.weight)
assert_close(mlp(x), expected, name="SwiGLU(3, 1)")
### END HIDDEN TESTS
print("SwiGLU: all visible tests passed")

# %% [markdown]
# ### 2.4 Grouped-query attention with a key/value cache
#
# In 04 every head had its own keys and values. When generating, those are kept in a **KV cache**,
# whose size (layers × heads × positions × head size) limits how long a context and how many users
# a GPU can serve. **Grouped-query attention** (Ainslie et al., 2023) keeps `n_heads` query heads
# but only `n_kv_heads` key and value heads; each key/value head serves a **group** of
# `n_heads // n_kv_heads` consecutive query heads (query heads 0 and 1 share key/value head 0 when
# the group has 2). With `n_kv_heads == n_heads` it is ordinary multi-head attention; with 1, it is
# multi-query attention. The cache shrinks by the group size.
#
# First the cache of one layer. `KVCache.update(k, v)` appends the new keys and values
# (`(B, n_kv_heads, L_new, head_dim)`) along the position dimension and returns **all** the keys
# and values so far; `length` is the number of positions stored (0 when empty).

# %% solution="kv_cache"
class KVCache:
    """The keys and values one attention layer has seen: (B, n_kv_heads, T, head_dim) each."""

    def __init__(self):
        self.keys = None
        self.values = None

    @property
    def length(self):
        ### BEGIN SOLUTION
        return 0 if self.keys is None else self.keys.size(2)
        ### END SOLUTION

    def update(self, k, v):
        """Append k and v (B, n_kv_heads, L_new, head_dim); return all keys and values so far."""
        ### BEGIN SOLUTION
        if self.keys is None:
            self.keys, self.values = k, v
        else:
            self.keys = torch.cat([self.keys, k], dim=2)
            self.values = torch.cat([self.values, v], dim=2)
        return self.keys, self.values
        ### END SOLUTION


# %% tests="test_kv_cache" points=1
cache = KVCache()
assert_true(cache.length == 0, "an empty cache has length 0", hint="keys is None until the first update")
k1, v1 = torch.randn(2, 3, 4, 5), torch.randn(2, 3, 4, 5)
k2, v2 = torch.randn(2, 3, 1, 5), torch.randn(2, 3, 1, 5)
keys, values = cache.update(k1, v1)
assert_close(keys, k1, name="keys after one update", hint="the first update stores k as it is")
keys, values = cache.update(k2, v2)
assert_close(keys, torch.cat([k1, k2], dim=2), name="keys after two updates",
             hint="append along the position dimension (dim 2) and return everything so far")
assert_close(values, torch.cat([v1, v2], dim=2), name="values after two updates", hint="the same for the values")
assert_true(cache.length == 5, f"after 4 + 1 positions the length is {cache.length}, not 5",
            hint="the length is the size of dim 2 of the keys")
### BEGIN HIDDEN TESTS
cache = KVCache()
for step in range(3):
    cache.update(torch.randn(1, 1, 2, 2), torch.randn(1, 1, 2, 2))
assert_true(cache.length == 6 and cache.values.shape == (1, 1, 6, 2), "three updates of 2 positions")
### END HIDDEN TESTS
print("KVCache: all visible tests passed")

# %% [markdown]
# Now the attention layer, with four `nn.Linear(..., bias=False)`: `q_proj` (d_model → d_model),
# `k_proj` and `v_proj` (d_model → n_kv_heads · head_dim) and `o_proj` (d_model → d_model), where
# head_dim = d_model / n_heads. `forward(x, cache=None)`:
#
# 1. project `x` (`(B, L, d_model)`) to queries `(B, n_heads, L, head_dim)` and keys and values
#    `(B, n_kv_heads, L, head_dim)`;
# 2. the new tokens sit at positions `start, ..., start + L - 1`, where `start` is the cache's length
#    (0 without a cache): rotate the queries and the keys with `apply_rope` at those positions;
# 3. with a cache, `update` it with the rotated keys and the values, and attend to everything it
#    returns: the cache holds `n_kv_heads` heads, **not** the repeated ones;
# 4. repeat each key/value head for its group (`repeat_interleave` on the head dimension), compute
#    causal attention yourself (scores scaled by $1/\sqrt{\text{head\_dim}}$; a query at position
#    $p$ sees the keys at positions $\le p$, cached ones included), merge the heads, apply `o_proj`.
#
# The tests compare with `F.scaled_dot_product_attention` on the same rotated queries and the
# repeated keys and values, and forbid calling it yourself.

# %% solution="gqa"
class GroupedQueryAttention(nn.Module):
    def __init__(self, d_model, n_heads, n_kv_heads, rope_base=10000.0):
        super().__init__()
        if d_model % n_heads or n_heads % n_kv_heads:
            raise ValueError(f"d_model ({d_model}) must divide by n_heads ({n_heads}), "
                             f"and n_heads by n_kv_heads ({n_kv_heads})")
        self.n_heads, self.n_kv_heads, self.head_dim = n_heads, n_kv_heads, d_model // n_heads
        self.rope_base = rope_base
        ### BEGIN SOLUTION
        self.q_proj = nn.Linear(d_model, d_model, bias=False)
        self.k_proj = nn.Linear(d_model, n_kv_heads * self.head_dim, bias=False)
        self.v_proj = nn.Linear(d_model, n_kv_heads * self.head_dim, bias=False)
        self.o_proj = nn.Linear(d_model, d_model, bias=False)
        ### END SOLUTION

    def forward(self, x, cache=None):
        """x: (B, L, d_model) -> (B, L, d_model); cache: a KVCache to read and extend, or None."""
        ### BEGIN SOLUTION
        B, L, _ = x.shape
        q = self.q_proj(x).view(B, L, self.n_heads, self.head_dim).transpose(1, 2)
        k = self.k_proj(x).view(B, L, self.n_kv_heads, self.head_dim).transpose(1, 2)
        v = self.v_proj(x).view(B, L, self.n_kv_heads, self.head_dim).transpose(1, 2)
        start = 0 if cache is None else cache.length
        positions = torch.arange(start, start + L, device=x.device)
        q, k = apply_rope(q, positions, self.rope_base), apply_rope(k, positions, self.rope_base)
        if cache is not None:
            k, v = cache.update(k, v)
        group = self.n_heads // self.n_kv_heads
        k, v = k.repeat_interleave(group, dim=1), v.repeat_interleave(group, dim=1)
        scores = q @ k.transpose(-2, -1) / math.sqrt(self.head_dim)
        key_positions = torch.arange(k.size(2), device=x.device)
        visible = key_positions[None, :] <= positions[:, None]
        weights = torch.softmax(scores.masked_fill(~visible, float("-inf")), dim=-1)
        out = (weights @ v).transpose(1, 2).reshape(B, L, -1)
        return self.o_proj(out)
        ### END SOLUTION


# %% tests="test_gqa" points=4
torch.manual_seed(0)
f64 = dict(dtype=torch.float64, device=test_device)


def rope_reference(x, start):
    """RoPE written independently (complex numbers), for positions start, start + 1, ..."""
    half = x.size(-1) // 2
    theta = 10000.0 ** (-torch.arange(half, dtype=torch.float64) * 2 / x.size(-1))
    angles = torch.arange(start, start + x.size(-2), dtype=torch.float64)[:, None] * theta
    z = torch.complex(x[..., :half].cpu(), x[..., half:].cpu()) * torch.polar(torch.ones_like(angles), angles)
    return torch.cat([z.real, z.imag], dim=-1).to(x.device)


def gqa_reference(attn, x, start=0, past_k=None, past_v=None):
    B, L, _ = x.shape
    hd = attn.head_dim
    q = rope_reference((x @ attn.q_proj.weight.T).view(B, L, -1, hd).transpose(1, 2), start)
    k = rope_reference((x @ attn.k_proj.weight.T).view(B, L, -1, hd).transpose(1, 2), start)
    v = (x @ attn.v_proj.weight.T).view(B, L, -1, hd).transpose(1, 2)
    if past_k is not None:
        k, v = torch.cat([past_k, k], 2), torch.cat([past_v, v], 2)
    group = attn.n_heads // attn.n_kv_heads
    mask = torch.ones(L, k.size(2), dtype=torch.bool, device=x.device).tril(k.size(2) - L)
    out = F.scaled_dot_product_attention(q, k.repeat_interleave(group, 1), v.repeat_interleave(group, 1),
                                         attn_mask=mask)
    return out.transpose(1, 2).reshape(B, L, -1) @ attn.o_proj.weight.T, k, v


attn = GroupedQueryAttention(d_model=24, n_heads=6, n_kv_heads=2).to(**f64)
assert_true(attn.k_proj.weight.shape == (8, 24) and attn.q_proj.weight.shape == (24, 24),
            "k_proj maps 24 -> n_kv_heads * head_dim = 8; q_proj 24 -> 24",
            hint="nn.Linear(d_model, n_kv_heads * head_dim, bias=False)")
assert_true(sum(p.numel() for p in attn.parameters()) == 2 * 24 * 24 + 2 * 24 * 8, "parameter count",
            hint="four projections, no biases")
x = torch.randn(2, 7, 24, **f64)
with no_shortcuts():
    got = attn(x)
expected, _, _ = gqa_reference(attn, x)
assert_close(got, expected, name="GroupedQueryAttention(24, 6 heads, 2 key/value heads)",
             hint="rotate q and k with apply_rope; key/value head h serves query heads h*group .. (h+1)*group-1 "
                  "(repeat_interleave, not repeat); scale by 1/sqrt(head_dim); causal mask")
# the cache: a prompt of 5 tokens, then 2 more one at a time, as generation does
cache = KVCache()
with no_shortcuts():
    outputs = [attn(x[:, :5], cache), attn(x[:, 5:6], cache), attn(x[:, 6:7], cache)]
assert_close(torch.cat(outputs, dim=1), expected, name="attention with a KV cache, 5 + 1 + 1 tokens",
             hint="new tokens sit at positions cache.length, ...: rotate them there and let them see every cached key")
assert_shape(cache.keys, (2, 2, 7, 4), name="cache.keys after 7 tokens",
             hint="the cache holds the n_kv_heads rotated key heads (update it before repeating them)")
assert_close(cache.keys, gqa_reference(attn, x)[1], name="cached keys", hint="cache the keys after apply_rope")
### BEGIN HIDDEN TESTS
for d_model, n_heads, n_kv in [(16, 4, 4), (16, 4, 1), (8, 2, 1)]:
    attn = GroupedQueryAttention(d_model, n_heads, n_kv).to(**f64)
    x = torch.randn(3, 6, d_model, **f64)
    with no_shortcuts():
        got = attn(x)
    assert_close(got, gqa_reference(attn, x)[0], name=f"GQA({d_model}, {n_heads}, {n_kv})")
    cache = KVCache()
    with no_shortcuts():
        pieces = [attn(x[:, :2], cache), attn(x[:, 2:5], cache), attn(x[:, 5:], cache)]
    assert_close(torch.cat(pieces, 1), gqa_reference(attn, x)[0], name=f"GQA({d_model}, {n_heads}, {n_kv}) cached 2+3+1")
    assert_true(cache.keys.shape == (3, n_kv, 6, d_model // n_heads), "cache shape")
attn = GroupedQueryAttention(8, 2, 2).to(**f64)
x = torch.randn(1, 1, 8, **f64)
with no_shortcuts():
    got = attn(x)
assert_close(got, gqa_reference(attn, x)[0], name="GQA of one token")
### END HIDDEN TESTS
print("GroupedQueryAttention: all visible tests passed")

# %% [markdown]
# ### 2.5 The block and the model, with tied weights
#
# A `DecoderBlock(d_model, n_heads, n_kv_heads, hidden_dim)` is pre-norm, as in 04, with the new
# parts: `x = x + attn(attn_norm(x), cache)`, then `x = x + mlp(mlp_norm(x))`, where `attn_norm`
# and `mlp_norm` are `RMSNorm(d_model)`, `attn` a `GroupedQueryAttention`, `mlp` a `SwiGLU`.
#
# `LLM(vocab_size, d_model, n_layers, n_heads, n_kv_heads, hidden_dim)` has a token embedding
# `embed` (no position embedding: RoPE does that job inside attention), `n_layers` blocks in an
# `nn.ModuleList` named `blocks`, a final `RMSNorm` named `norm`, and an output layer
# `lm_head = nn.Linear(d_model, vocab_size, bias=False)` whose weight **is** the embedding's
# (**weight tying**: `self.lm_head.weight = self.embed.weight`; one matrix of vocab_size × d_model
# parameters instead of two, which is a large share of a small model). Initialise the embedding
# with a normal of standard deviation 0.02, as GPT-2 does: as the output layer, PyTorch's default
# N(0, 1) would make the first logits huge.
#
# `forward(idx, targets=None, caches=None)`: `idx` is `(B, L)` token ids; `caches` is None or a
# list of one `KVCache` per block. It returns `(logits, loss)`: logits `(B, L, vocab_size)`, and the
# mean cross-entropy against `targets` (`(B, L)`), or None without targets.

# %% solution="llm"
class DecoderBlock(nn.Module):
    def __init__(self, d_model, n_heads, n_kv_heads, hidden_dim):
        super().__init__()
        ### BEGIN SOLUTION
        self.attn_norm = RMSNorm(d_model)
        self.attn = GroupedQueryAttention(d_model, n_heads, n_kv_heads)
        self.mlp_norm = RMSNorm(d_model)
        self.mlp = SwiGLU(d_model, hidden_dim)
        ### END SOLUTION

    def forward(self, x, cache=None):
        ### BEGIN SOLUTION
        x = x + self.attn(self.attn_norm(x), cache)
        return x + self.mlp(self.mlp_norm(x))
        ### END SOLUTION


class LLM(nn.Module):
    def __init__(self, vocab_size, d_model, n_layers, n_heads, n_kv_heads, hidden_dim):
        super().__init__()
        ### BEGIN SOLUTION
        self.embed = nn.Embedding(vocab_size, d_model)
        nn.init.normal_(self.embed.weight, std=0.02)
        self.blocks = nn.ModuleList(DecoderBlock(d_model, n_heads, n_kv_heads, hidden_dim) for _ in range(n_layers))
        self.norm = RMSNorm(d_model)
        self.lm_head = nn.Linear(d_model, vocab_size, bias=False)
        self.lm_head.weight = self.embed.weight
        ### END SOLUTION

    def forward(self, idx, targets=None, caches=None):
        """idx (B, L) -> (logits (B, L, vocab_size), mean cross-entropy or None)."""
        ### BEGIN SOLUTION
        x = self.embed(idx)
        for i, block in enumerate(self.blocks):
            x = block(x, None if caches is None else caches[i])
        logits = self.lm_head(self.norm(x))
        loss = None if targets is None else F.cross_entropy(logits.flatten(0, 1), targets.flatten())
        return logits, loss
        ### END SOLUTION


# %% tests="test_llm" points=4
torch.manual_seed(0)
f64 = dict(dtype=torch.float64, device=test_device)
block = DecoderBlock(16, 4, 2, 24).to(**f64)
with torch.no_grad():
    for norm in (block.attn_norm, block.mlp_norm):
        norm.weight.copy_(torch.rand(16) + 0.5)
x = torch.randn(2, 5, 16, **f64)
with no_shortcuts():
    h = x + block.attn(block.attn_norm(x))
    expected = h + block.mlp(block.mlp_norm(h))
    got = block(x)
assert_close(got, expected, name="DecoderBlock(x)",
             hint="pre-norm: x + attn(attn_norm(x)), then h + mlp(mlp_norm(h)); the residual adds the "
                  "un-normalised input")
model = LLM(vocab_size=50, d_model=16, n_layers=2, n_heads=4, n_kv_heads=2, hidden_dim=24).to(**f64)
assert_true(model.lm_head.weight is model.embed.weight, "lm_head.weight must be the embedding's weight",
            hint="weight tying: self.lm_head.weight = self.embed.weight")
per_block = 2 * 16 + (2 * 16 * 16 + 2 * 16 * 8) + 3 * 16 * 24
assert_true(sum(p.numel() for p in model.parameters()) == 50 * 16 + 2 * per_block + 16,
            f"LLM parameter count {sum(p.numel() for p in model.parameters())}, expected {50 * 16 + 2 * per_block + 16}",
            hint="embedding (shared with lm_head), 2 blocks, the final RMSNorm: no position embedding, no bias")
assert_true(model.embed.weight.std().item() < 0.05, "the embedding starts with std 0.02",
            hint="nn.init.normal_(self.embed.weight, std=0.02)")
idx = torch.randint(0, 50, (3, 9), device=test_device)
targets = torch.randint(0, 50, (3, 9), device=test_device)
with no_shortcuts():
    logits, loss = model(idx, targets)
    no_loss = model(idx)[1]
h = model.embed(idx)
for b in model.blocks:
    h = b(h)
assert_close(logits, model.norm(h) @ model.embed.weight.T, name="logits",
             hint="embed, the blocks in order, the final norm, then lm_head")
assert_close(loss, F.cross_entropy(logits.reshape(-1, 50), targets.reshape(-1)), name="loss",
             hint="the mean cross-entropy over all B * L positions")
assert_true(no_loss is None, "without targets the loss is None", hint="return (logits, None)")
caches = [KVCache() for _ in model.blocks]
with no_shortcuts():
    step_logits = [model(idx[:, :4], caches=caches)[0]] + [model(idx[:, t:t + 1], caches=caches)[0] for t in range(4, 9)]
assert_close(torch.cat(step_logits, dim=1), logits, name="logits with KV caches (4 tokens, then 1 at a time)",
             hint="pass caches[i] to block i")
### BEGIN HIDDEN TESTS
model = LLM(vocab_size=7, d_model=8, n_layers=1, n_heads=2, n_kv_heads=1, hidden_dim=8).to(**f64)
idx = torch.randint(0, 7, (1, 3), device=test_device)
with no_shortcuts():
    logits, loss = model(idx, idx)
assert_shape(logits, (1, 3, 7), name="logits of a 1-layer model")
assert_true(model.lm_head.weight is model.embed.weight, "weight tying, 1 layer")
caches = [KVCache()]
with no_shortcuts():
    pieces = [model(idx[:, t:t + 1], caches=caches)[0] for t in range(3)]
assert_close(torch.cat(pieces, 1), logits, name="cached logits of a 1-layer model")
### END HIDDEN TESTS
print("DecoderBlock and LLM: all visible tests passed")

# %% [markdown]
# ## Summary
#
# You built the pieces today's open language models share: a byte-level BPE tokenizer, RMSNorm,
# rotary position embeddings, a SwiGLU MLP, grouped-query attention with a KV cache, and a model
# with tied weights.
