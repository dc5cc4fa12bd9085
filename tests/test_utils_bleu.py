"""corpus_bleu / sentence_bleu against BLEU computed by hand: each case writes out its n-gram
counts and the arithmetic."""
import math

import pytest

from rnnfast.utils import corpus_bleu, sentence_bleu

CAT = "the cat sat on the mat".split()
REF = "the cat is on the mat".split()


def test_one_sentence_counts_by_hand():
    # 1-grams of CAT: the x2, cat, sat, on, mat; REF has the x2, cat, on, mat -> 5 / 6
    # 2-grams: the cat, cat sat, sat on, on the, the mat; in REF: the cat, on the, the mat -> 3/5
    # 3-grams: the cat sat, cat sat on, sat on the, on the mat; in REF: on the mat -> 1 / 4
    # 4-grams: the cat sat on, cat sat on the, sat on the mat; none in REF -> 0 / 3
    # equal lengths (6 and 6): brevity penalty 1
    assert corpus_bleu([[REF]], [CAT]) == 0.0                      # a zero precision, unsmoothed
    # up to 3-grams: (5/6 * 3/5 * 1/4) ** (1/3) = (1/8) ** (1/3) = 0.5
    assert corpus_bleu([[REF]], [CAT], max_n=3) == pytest.approx(0.5, abs=1e-15)
    # epsilon: p4 = 0.1 / 3; (5/6 * 3/5 * 1/4 * 0.1/3) ** (1/4) = (1.5 / 360) ** (1/4)
    assert corpus_bleu([[REF]], [CAT], smoothing="epsilon") == \
        pytest.approx((1.5 / 360) ** 0.25, abs=1e-15)
    assert (1.5 / 360) ** 0.25 == pytest.approx(0.254066, abs=1e-6)
    # add-one for n >= 2: 5/6 * 4/6 * 2/5 * 1/4 = 40 / 720 = 1/18 -> (1/18) ** (1/4) = 0.485492
    assert sentence_bleu([REF], CAT) == pytest.approx((1 / 18) ** 0.25, abs=1e-15)
    assert (1 / 18) ** 0.25 == pytest.approx(0.485492, abs=1e-6)


def test_identical_sentence_scores_one():
    assert corpus_bleu([[CAT]], [CAT]) == pytest.approx(1.0, abs=1e-15)


def test_counts_are_clipped_by_the_references():
    # "the" 4 times, at most once in the reference: p1 = 1/4; c = 4 > r = 2: no penalty
    assert corpus_bleu([["the cat".split()]], ["the the the the".split()], max_n=1) == 0.25
    # two references: "the" may count twice (the second has it twice), cat once: p1 = 3/3;
    # 2-grams "the the", "the cat": both in some reference -> 2/2; c = 3, closest r = 3 -> 1
    refs = ["the cat".split(), "the the dog".split()]
    assert corpus_bleu([refs], ["the the cat".split()], max_n=2) == 1.0


def test_brevity_penalty_uses_the_closest_reference_length():
    # hypothesis of 2 tokens; references of 6 and 3 tokens: the closest is 3
    # p1 = 2/2, p2 = 1/1; BP = exp(1 - 3/2) = exp(-0.5) = 0.606531
    refs = [CAT, "the cat sat".split()]
    assert corpus_bleu([refs], ["the cat".split()], max_n=2) == \
        pytest.approx(math.exp(-0.5), abs=1e-15)
    # a tie (lengths 3 and 5 around a hypothesis of 4) takes the shorter: r = 3 < c = 4, BP = 1
    # p1 = 4/4 ("a b c d" all in the second reference), p2 = 3/3
    refs = ["a b c".split(), "a b c d e".split()]
    assert corpus_bleu([refs], ["a b c d".split()], max_n=2) == 1.0


def test_corpus_pools_counts_before_dividing():
    # sentence 1: a b c d / a b c d: 1-grams 4/4, 2-grams 3/3
    # sentence 2: a x / a y:         1-grams 1/2, 2-grams 0/1
    # pooled: p1 = 5/6, p2 = 3/4; c = r = 6; BLEU = sqrt(5/6 * 3/4) = sqrt(0.625) = 0.790569
    refs = [["a b c d".split()], ["a y".split()]]
    hyps = ["a b c d".split(), "a x".split()]
    assert corpus_bleu(refs, hyps, max_n=2) == pytest.approx(math.sqrt(0.625), abs=1e-15)
    # averaging sentence scores instead would give (1 + 0) / 2: pooling is not that
    assert corpus_bleu(refs, hyps, max_n=2) != 0.5


def test_short_hypotheses_and_token_ids():
    # no 4-gram in a 3-token hypothesis: 0 unsmoothed; add-one makes p4 = (0+1)/(0+1) = 1
    # p1 = 3/3, p2 = (2+1)/(2+1), p3 = (1+1)/(1+1); r = 3 = c -> exactly 1
    assert corpus_bleu([[[1, 2, 3]]], [[1, 2, 3]]) == 0.0
    assert corpus_bleu([[[1, 2, 3]]], [[1, 2, 3]], smoothing="add-one") == 1.0
    assert corpus_bleu([[[1, 2]]], [[]]) == 0.0


def test_bad_input():
    with pytest.raises(ValueError, match="references"):
        corpus_bleu([[CAT]], [CAT, CAT])
    with pytest.raises(TypeError, match="hypotheses\\[0\\]"):
        corpus_bleu([[CAT]], ["the cat sat"])
    with pytest.raises(ValueError, match="smoothing"):
        corpus_bleu([[CAT]], [CAT], smoothing="method7")
    with pytest.raises(ValueError, match="max_n"):
        corpus_bleu([[CAT]], [CAT], max_n=0)
    with pytest.raises(ValueError, match="references\\[0\\]"):
        corpus_bleu([[]], [CAT])
