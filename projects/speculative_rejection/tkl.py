"""The Topic-Keyword Language (TKL): a synthetic language whose early tokens carry information about the
final reward (spec §5.2), with a deterministic gold reward computable on any prefix.

Vocabulary (96 tokens): PAD 0, BOS 1, EOS 2, SEP 3, 12 topic tokens (4..15), 80 words (16..95) in 8
clusters of 10. Topic t belongs to cluster t mod 8. A prompt is `BOS t1 t2 t3 SEP` with three topics of
distinct clusters (the "prompt clusters").

Corpus process (only used to train the generator LM). Per sequence a latent skill z ~ Beta(a, b) persists
through the whole response; this persistence is what makes a prefix informative about the final reward.
Each step either continues inside the current cluster (probability `p_stay`) with a grammatical successor
(each word has 3 valid successors; an invalid one is emitted with probability (1−z)·ε), or jumps to a new
cluster: one of the prompt clusters with probability 0.15 + 0.8·z, otherwise a random cluster. EOS has a
small hazard until all prompt clusters are covered and a per-sequence hazard λ ~ U(λ_lo, λ_hi) after; the
response is capped at T_max tokens (EOS included).

Gold reward of a response y (prefixes are judged "as if complete", i.e. without the missing-EOS penalty):

    G = 2·coverage/3 + on_topic_rate − 2·violation_rate + 0.5·#motifs − 0.5·[no EOS] − 0.002·|y|

coverage = prompt clusters hit; on_topic_rate = share of words in prompt clusters; violation_rate =
invalid within-cluster successions per word; a motif is the 3-word grammatical chain w → s(w) → s(s(w))
starting at a prompt cluster's first word (a rare right tail, so Best-of-N keeps improving at large N).
Coverage and the EOS penalty are only settled at the end, so partial scores are imperfect, as in the paper.
"""

from __future__ import annotations

import dataclasses

import numpy as np

PAD, BOS, EOS, SEP = 0, 1, 2, 3
N_TOPICS, N_CLUSTERS, CLUSTER_SIZE, N_SUCC = 12, 8, 10, 3
TOPIC0 = 4
WORD0 = TOPIC0 + N_TOPICS
VOCAB = WORD0 + N_CLUSTERS * CLUSTER_SIZE
PROMPT_LEN = 5


@dataclasses.dataclass(frozen=True)
class Language:
    """The corpus process's knobs (spec §5.2 calibration: tune z's Beta and ε)."""

    z_a: float = 2.0
    z_b: float = 3.0
    epsilon: float = 0.5
    p_stay: float = 0.6
    hazard_before: float = 0.004
    hazard_lo: float = 0.01
    hazard_hi: float = 0.04
    max_new_tokens: int = 128
    grammar_seed: int = 1234
    good_lo: float = 0.2  # P(a chosen word is "good") = good_lo + good_slope·z
    good_slope: float = 0.6
    w_good: float = 1.5  # gold weights of the good-word rate and of motifs
    w_motif: float = 0.0


def grammar(lang: Language) -> np.ndarray:
    """`[80, 3]` valid successors (word indices 0..79) of each word, inside its own cluster."""
    rng = np.random.default_rng(lang.grammar_seed)
    succ = np.zeros((N_CLUSTERS * CLUSTER_SIZE, N_SUCC), np.int64)
    for c in range(N_CLUSTERS):
        for i in range(CLUSTER_SIZE):
            others = [j for j in range(CLUSTER_SIZE) if j != i]
            succ[c * CLUSTER_SIZE + i] = c * CLUSTER_SIZE + rng.choice(others, N_SUCC, replace=False)
    return succ


def is_good(word: np.ndarray) -> np.ndarray:
    """The first half of every cluster's words are "good" (a fixed, context-free word quality)."""
    return (np.asarray(word) % CLUSTER_SIZE) < CLUSTER_SIZE // 2


def _valid_table(lang: Language) -> np.ndarray:
    """`[80, 80]` bool: word j may follow word i."""
    succ = grammar(lang)
    valid = np.zeros((N_CLUSTERS * CLUSTER_SIZE,) * 2, bool)
    valid[np.arange(len(succ))[:, None], succ] = True
    return valid


def sample_prompts(n: int, rng: np.random.Generator) -> np.ndarray:
    """`[n, 5]` prompts `BOS t1 t2 t3 SEP`: three topics from three distinct clusters."""
    out = np.zeros((n, PROMPT_LEN), np.int32)
    out[:, 0], out[:, -1] = BOS, SEP
    for i in range(n):
        clusters = rng.choice(N_CLUSTERS, 3, replace=False)
        # topics of cluster c are c and c + 8 (when < 12)
        topics = [c + N_CLUSTERS * rng.integers(2) if c + N_CLUSTERS < N_TOPICS else c for c in clusters]
        out[i, 1:4] = TOPIC0 + np.asarray(topics)
    return out


def prompt_clusters(prompts: np.ndarray) -> np.ndarray:
    """`[n, 3]` the clusters of each prompt's topics."""
    return (np.asarray(prompts)[:, 1:4] - TOPIC0) % N_CLUSTERS


def sample_corpus(prompts: np.ndarray, lang: Language, rng: np.random.Generator) -> np.ndarray:
    """Responses `[n, T_max]` (PAD after EOS) from the corpus process, vectorised over sequences."""
    n, T = len(prompts), lang.max_new_tokens
    succ = grammar(lang)
    pc = prompt_clusters(prompts)
    z = rng.beta(lang.z_a, lang.z_b, n)
    lam = rng.uniform(lang.hazard_lo, lang.hazard_hi, n)
    out = np.full((n, T), PAD, np.int32)
    prev = np.full(n, -1)  # previous word index (0..79) or −1
    covered = np.zeros((n, 3), bool)
    alive = np.ones(n, bool)
    rows = np.arange(n)
    for t in range(T):
        u = rng.random((n, 6))
        hazard = np.where(covered.all(1), lam, lang.hazard_before)
        eos = alive & (u[:, 0] < hazard)
        stay = (prev >= 0) & (u[:, 1] < lang.p_stay)
        want_good = u[:, 4] < lang.good_lo + lang.good_slope * z
        cands = succ[np.maximum(prev, 0)]  # [n, 3] valid successors; prefer a good one when wanted
        pick = rng.integers(N_SUCC, size=n)
        good_pick = np.argmax(is_good(cands) * rng.random((n, N_SUCC)), axis=1)
        has_good = is_good(cands).any(1)
        valid_next = cands[rows, np.where(want_good & has_good, good_pick, pick)]
        cur_cluster = np.maximum(prev, 0) // CLUSTER_SIZE
        random_in_cluster = cur_cluster * CLUSTER_SIZE + rng.integers(CLUSTER_SIZE, size=n)
        invalid = u[:, 2] < (1 - z) * lang.epsilon
        stay_word = np.where(invalid, random_in_cluster, valid_next)
        on_topic = u[:, 3] < 0.15 + 0.8 * z
        new_cluster = np.where(on_topic, pc[rows, rng.integers(3, size=n)], rng.integers(N_CLUSTERS, size=n))
        half = CLUSTER_SIZE // 2
        jump_word = new_cluster * CLUSTER_SIZE + np.where(want_good, rng.integers(half, size=n),
                                                         rng.integers(CLUSTER_SIZE, size=n))
        word = np.where(stay, stay_word, jump_word)
        tok = np.where(eos, EOS, WORD0 + word)
        out[:, t] = np.where(alive, tok, PAD)
        covered |= alive[:, None] & ~eos[:, None] & ((word // CLUSTER_SIZE)[:, None] == pc)
        prev = np.where(alive & ~eos, word, prev)
        alive &= ~eos
    return out


def gold_components(prompts: np.ndarray, responses: np.ndarray, lang: Language, *,
                    as_complete: bool = False) -> dict:
    """The gold reward's parts for responses `[n, L]` (any prefix length; PAD/EOS end a response).

    as_complete: judge a response without EOS as if it had ended (prefix scoring); otherwise a response
    without EOS pays the missing-EOS penalty."""
    prompts, responses = np.asarray(prompts), np.asarray(responses)
    if prompts.ndim == 1:
        prompts = np.broadcast_to(prompts, (len(responses), prompts.shape[-1]))
    pc = prompt_clusters(prompts)
    n, L = responses.shape
    ended = np.cumsum((responses == EOS) | (responses == PAD), axis=1) > 0
    is_word = (responses >= WORD0) & ~ended
    word = np.where(is_word, responses - WORD0, 0)
    cluster = word // CLUSTER_SIZE
    in_prompt = is_word[:, :, None] & (cluster[:, :, None] == pc[:, None, :])  # [n, L, 3]
    n_words = is_word.sum(1)
    coverage = in_prompt.any(1).sum(1)
    on_topic = in_prompt.any(2).sum(1) / np.maximum(n_words, 1)
    valid = _valid_table(lang)
    pair = is_word[:, 1:] & is_word[:, :-1] & (cluster[:, 1:] == cluster[:, :-1])
    bad = pair & ~valid[word[:, :-1], word[:, 1:]]
    violation = bad.sum(1) / np.maximum(n_words, 1)
    succ = grammar(lang)
    first = pc * CLUSTER_SIZE  # the motif of cluster c starts at its first word
    m1, m2 = succ[first, 0], succ[succ[first, 0], 0]  # [n, 3]
    motifs = np.zeros(n, np.int64)
    if L >= 3:
        w0, w1, w2 = word[:, :-2, None], word[:, 1:-1, None], word[:, 2:, None]
        ok = is_word[:, 2:, None] & (w0 == first[:, None]) & (w1 == m1[:, None]) & (w2 == m2[:, None])
        motifs = ok.any(2).sum(1)
    has_eos = (responses == EOS).any(1)
    length = np.where(has_eos, np.argmax(responses == EOS, axis=1) + 1, n_words)
    no_eos = ~has_eos & ~as_complete
    good = (is_word & is_good(word)).sum(1) / np.maximum(n_words, 1)
    return {"coverage": coverage, "on_topic": on_topic, "good": good, "violation": violation, "motifs": motifs,
            "no_eos": no_eos, "length": length}


def gold_reward(prompts: np.ndarray, responses: np.ndarray, lang: Language, *, as_complete: bool = False) -> np.ndarray:
    """G(x, y) `[n]` (module docstring)."""
    c = gold_components(prompts, responses, lang, as_complete=as_complete)
    return (2.0 * c["coverage"] / 3 + c["on_topic"] + lang.w_good * c["good"] - 2.0 * c["violation"]
            + lang.w_motif * c["motifs"] - 0.5 * c["no_eos"] - 0.002 * c["length"])
