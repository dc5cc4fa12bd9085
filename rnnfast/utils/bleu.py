"""BLEU (Papineni et al., 2002), the score of machine translation::

    corpus_bleu(references, hypotheses, max_n=4, smoothing=None)   # a float in [0, 1]
    sentence_bleu(references, hypothesis, max_n=4, smoothing="add-one")

``hypotheses`` is a list of token lists (one per sentence); ``references`` has one entry per
hypothesis, a list of reference token lists (one or more translations of the same sentence).
Tokens are any hashable values (words, ids).

Corpus BLEU pools the n-gram counts of all sentences before dividing:
``p_n = sum(clipped matches of n-grams) / sum(n-grams of the hypotheses)``, where each
hypothesis n-gram counts at most as often as it appears in any one of its references; the
score is ``BP * exp(sum_n w_n log p_n)`` with uniform weights ``w_n = 1 / max_n``. The brevity
penalty ``BP = exp(1 - r / c)`` when the hypotheses' total length ``c`` is below ``r``, the sum
over sentences of the reference length closest to the hypothesis' (the shorter on a tie), else
1. These are the rules of NLTK's ``corpus_bleu`` and of the original paper.

Smoothing, for the short texts where some ``p_n`` is 0 (which makes unsmoothed BLEU 0):
``None`` (none: the score is 0); ``"epsilon"`` (a zero numerator becomes 0.1, NLTK's method1);
``"add-one"`` (1 is added to the numerator and the denominator of ``p_n`` for n >= 2, Lin and
Och 2004, NLTK's method2 as it stands today).
"""
import math
from collections import Counter

__all__ = ["corpus_bleu", "sentence_bleu"]

_SMOOTHING = (None, "epsilon", "add-one")


def _ngrams(tokens, n):
    return Counter(tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1))


def _check_tokens(tokens, name):
    if isinstance(tokens, (str, bytes)) or not hasattr(tokens, "__len__"):
        raise TypeError(f"{name}: expected a list of tokens, got {type(tokens).__name__} "
                        "(split a sentence into words first)")
    return list(tokens)


def corpus_bleu(references, hypotheses, max_n=4, smoothing=None):
    """BLEU of a corpus (see the module's doc): a float in [0, 1]."""
    if isinstance(max_n, bool) or not isinstance(max_n, int) or max_n < 1:
        raise ValueError(f"max_n: expected an int >= 1, got {max_n!r}")
    if smoothing not in _SMOOTHING:
        raise ValueError(f"smoothing: expected one of {list(_SMOOTHING)}, got {smoothing!r}")
    references, hypotheses = list(references), list(hypotheses)
    if len(references) != len(hypotheses):
        raise ValueError(f"references: expected one entry (a list of references) per "
                         f"hypothesis ({len(hypotheses)}), got {len(references)}")
    matches = [0] * max_n
    totals = [0] * max_n
    hyp_length = ref_length = 0
    for k, (refs, hyp) in enumerate(zip(references, hypotheses)):
        hyp = _check_tokens(hyp, f"hypotheses[{k}]")
        if isinstance(refs, (str, bytes)) or not refs:
            raise ValueError(f"references[{k}]: expected a non-empty list of token lists")
        refs = [_check_tokens(r, f"references[{k}][{j}]") for j, r in enumerate(refs)]
        hyp_length += len(hyp)
        ref_length += min((abs(len(r) - len(hyp)), len(r)) for r in refs)[1]
        for n in range(1, max_n + 1):
            counts = _ngrams(hyp, n)
            most = Counter()
            for r in refs:
                most |= _ngrams(r, n)   # the largest count in any one reference
            matches[n - 1] += sum(min(c, most[g]) for g, c in counts.items())
            totals[n - 1] += max(len(hyp) - n + 1, 0)
    if hyp_length == 0:
        return 0.0
    log_sum = 0.0
    for n in range(max_n):
        num, den = matches[n], totals[n]
        if smoothing == "add-one" and n > 0:
            num, den = num + 1, den + 1
        elif smoothing == "epsilon" and num == 0 and den > 0:
            num = 0.1
        if num == 0 or den == 0:
            return 0.0
        log_sum += math.log(num / den) / max_n
    brevity = 1.0 if hyp_length > ref_length else math.exp(1.0 - ref_length / hyp_length)
    return brevity * math.exp(log_sum)


def sentence_bleu(references, hypothesis, max_n=4, smoothing="add-one"):
    """BLEU of one hypothesis against its references (``corpus_bleu`` of a corpus of one;
    smoothed by default, since one short sentence often has no matching 4-gram)."""
    return corpus_bleu([references], [hypothesis], max_n=max_n, smoothing=smoothing)
