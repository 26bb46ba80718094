"""The window scorer's and skip-gram's examples from raw_sentences.txt."""
import numpy as np
import pytest

from wordnet.data.corpus import load_corpus, pairs, windows
from wordnet.data.dataset import BREAK, DataError, Vocabulary

B = BREAK


def test_windows_stay_inside_sentences():
    tokens = np.array([0, 1, 2, 3, B, 4, 5, B, 6, 7, 8, B], np.int32)
    assert windows(tokens, 1).tolist() == [[0, 1, 2], [1, 2, 3], [6, 7, 8]]


def test_pairs_are_every_word_within_k_in_its_sentence_in_order():
    tokens = np.array([0, 1, 2, B, 3, 4, B, 5, B], np.int32)
    expected = []                                  # by brute force
    sentences = [[0, 1, 2], [3, 4], [5]]
    for s in sentences:
        for i, c in enumerate(s):
            for j in (-2, -1, 1, 2):
                if 0 <= i + j < len(s):
                    expected.append([c, s[i + j]])
    assert pairs(tokens, 2).tolist() == expected
    assert pairs(tokens, 1).tolist() == [[0, 1], [1, 0], [1, 2], [2, 1], [3, 4], [4, 3]]


def test_the_lines_split_80_10_10_in_file_order(tmp_path):
    vocab = Vocabulary(("a", "b", "c"))
    (tmp_path / "raw_sentences.txt").write_text("".join(f"a b {'c' if n < 8 else 'a'}\n"
                                                        for n in range(10)))
    corpus = load_corpus(vocab, tmp_path)
    assert len(corpus.train) == 8 * 4 and len(corpus.valid) == len(corpus.test) == 4
    assert corpus.test.tolist() == [0, 1, 0, B]
    assert corpus.unigram() == pytest.approx([8 / 24, 8 / 24, 8 / 24])
    p = corpus.unigram(0.75)
    assert p.sum() == pytest.approx(1.0) and p[0] == pytest.approx(1 / 3)


def test_a_folder_without_raw_sentences_is_named(tmp_path):
    with pytest.raises(DataError, match="no raw_sentences.txt"):
        load_corpus(Vocabulary(("a",)), tmp_path)


def test_the_shipped_corpus():
    corpus = load_corpus(Vocabulary.embedded(), None)
    w = windows(corpus.train, 2)
    assert w.shape == (294_825, 5) and (w >= 0).all()
    assert len(pairs(corpus.test, 2)) == 245_278
