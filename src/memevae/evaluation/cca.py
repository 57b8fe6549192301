"""CCA coherence of image-caption pairs on CUB (paper App. G, Table 5 and Fig. 6).

The paper scores a CUB cross generation (image -> caption or caption -> image) by how well the
generated item agrees with its input in a space fitted by canonical correlation analysis (CCA) on
training pairs, following Shi et al. (2019). This module computes that score as MMVAE's analysis
code computes it (Shi et al. 2019; ``src/report/analyse_cub.py`` and ``src/report/helper.py`` of
iffsid/mmvae), in four steps:

1. Word vectors (:func:`fit_word_vectors`): a 300-d FastText model trained on the tokenised
   training captions with a context window of 3 words, words seen fewer than 3 times dropped and
   10 training epochs.
2. Sentence vectors (:class:`SentenceEmbedder`), the "smooth inverse frequency" (SIF) recipe:
   a word w gets the weight a / (a + p(w)), p(w) its relative frequency among the training
   tokens and a = 1e-3, so frequent words ("the", "a", ".") count little; a caption's vector is
   the weighted sum of its word vectors divided by its length; finally the component along the
   first principal direction u of the training sentence vectors (fitted on centred vectors) is
   taken away: v <- v - (u . v) u.
3. Image vectors: the image features (ResNet-101, 2048-d) exactly as they are.
4. CCA (:class:`CCAProjection`) with 40 components fitted on the training (image, caption) pairs;
   an item's two vectors are centred with the TRAINING means and projected, and their agreement
   is the cosine of the angle between the two 40-d projections. The score of a set of pairs is
   the mean of that per-item cosine (:class:`CCACoherence`). App. G, eq. 12 writes it as
   phi(x1)^T phi(x2) / (|phi(x1)| |phi(x2)|) with phi(x) = W^T x - avg(W^T x): the "avg" is the
   average of the projected training data, i.e. centring with training means before projecting.

Ground-truth test pairs give the "GT" row of Table 5 (paper: 0.106); (test image, caption
generated from it) gives image -> caption and (image generated from a caption, that caption)
gives caption -> image.

Example:
    >>> from memevae.evaluation.cca import CCACoherence
    >>> measure = CCACoherence.fit(train_features, train_captions)          # doctest: +SKIP
    >>> measure.save("cub_cca.npz")                                           # doctest: +SKIP
    >>> measure = CCACoherence.load("cub_cca.npz", train_captions)           # doctest: +SKIP
    >>> gt = measure.score(test_features, test_captions)                     # doctest: +SKIP
    >>> image_to_caption = measure.score(test_features, generated_captions)  # doctest: +SKIP

Where this differs from the paper's text: App. G says the FastText model is fitted on "all
sentences" and a caption is "the average over the words"; MMVAE's code (which the numbers come
from) fits FastText on the training captions only and uses the SIF-weighted average with the
principal component removed, which is what this module does.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from pathlib import Path
from typing import Iterable, Literal, Sequence

import numpy as np

from ..io import atomic_write

GENSIM_MISSING = "CCA coherence needs gensim: pip install 'memevae[cub]'"

END_TOKEN = "<eos>"
"""A caption ends at its first end token; later tokens (usually padding) are ignored."""
STRUCTURAL_TOKENS = frozenset({"<pad>", "<eos>", "<sos>", "<bos>"})
"""Tokens that are not words: they never contribute a vector and are not counted as words."""
EXCLUDED_TOKENS = frozenset({"<exc>", "<unk>"})
"""Placeholders for a word outside the vocabulary (MMVAE's data set writes "<exc>")."""
SPECIAL_TOKENS = STRUCTURAL_TOKENS | EXCLUDED_TOKENS

SIF_A = 1e-3
"""MMVAE's SIF constant a (``fetch_weights(..., a=1e-3)``)."""
CCA_COMPONENTS = 40
"""MMVAE's number of CCA components (``cca([images, emb], k=40)``)."""


def _token_lists(sentences, what: str = "sentences") -> list[Sequence[str]]:
    sentences = list(sentences)
    for tokens in sentences:
        if isinstance(tokens, (str, bytes)):
            raise TypeError(f"{what} must be lists of tokens (e.g. nltk.word_tokenize(caption)), not strings")
    return sentences


def captions_checksum(sentences: Iterable[Sequence[str]]) -> str:
    """SHA-256 of a list of token lists (order and every token matter), as a hex string."""
    digest = hashlib.sha256()
    for tokens in _token_lists(sentences):
        digest.update("\x1f".join(tokens).encode("utf-8"))
        digest.update(b"\x1e")
    return digest.hexdigest()


# --------------------------------------------------------------------------------------------
# Word vectors
# --------------------------------------------------------------------------------------------

class WordVectors:
    """A fixed table of word vectors: ``words[i]`` has the vector ``vectors[i]`` (float64)."""

    def __init__(self, words: Sequence[str], vectors):
        vectors = np.asarray(vectors, dtype=np.float64)
        words = tuple(str(w) for w in words)
        if vectors.ndim != 2 or vectors.shape[0] != len(words):
            raise ValueError(f"need one vector per word: {len(words)} words, vectors of shape {vectors.shape}")
        self.words, self.vectors = words, vectors
        self._index = {w: i for i, w in enumerate(words)}
        if len(self._index) != len(words):
            raise ValueError("words must be distinct")

    @property
    def dim(self) -> int:
        return self.vectors.shape[1]

    def __len__(self) -> int:
        return len(self.words)

    def __contains__(self, word) -> bool:
        return word in self._index

    def __getitem__(self, word: str) -> np.ndarray:
        return self.vectors[self._index[word]]

    def __repr__(self) -> str:
        return f"WordVectors({len(self)} words, dim={self.dim})"


def fit_word_vectors(sentences: Iterable[Sequence[str]], dim: int = 300, seed: int = 0, *, window: int = 3,
                     min_count: int = 3, epochs: int = 10, bucket: int = 2_000_000, workers: int = 1) -> WordVectors:
    """FastText word vectors (Bojanowski et al. 2017) trained on tokenised training captions.

    The defaults are MMVAE's (``fetch_emb`` in ``src/report/helper.py``): 300 dimensions, a
    window of 3, words seen fewer than 3 times dropped, 10 epochs, everything else gensim's
    defaults (CBOW, 5 negative samples, character n-grams of 3 to 6, 2,000,000 n-gram buckets;
    the bucket table alone takes bucket * dim * 4 bytes, 2.4 GB at 300-d: lower ``bucket`` to save
    memory at the price of more n-gram collisions). Special tokens (:data:`SPECIAL_TOKENS`) are
    removed first; pass raw tokenised captions (MMVAE: ``nltk.word_tokenize`` of each training
    sentence) for an exact match. One worker thread and ``seed`` make the result reproducible
    (MMVAE ran gensim's default of 3 threads and seed 1, which is not).

    Raises:
        ImportError: "CCA coherence needs gensim: pip install 'memevae[cub]'" without gensim.
    """
    try:
        from gensim.models import FastText
    except ImportError:
        raise ImportError(GENSIM_MISSING) from None
    corpus = [[t for t in tokens if t not in SPECIAL_TOKENS] for tokens in _token_lists(sentences)]
    model = FastText(vector_size=dim, window=window, min_count=min_count, epochs=epochs, seed=seed,
                     workers=workers, bucket=bucket)
    model.build_vocab(corpus_iterable=corpus)
    if len(model.wv) == 0:
        raise ValueError(f"no word occurs at least {min_count} times in the training captions")
    model.train(corpus_iterable=corpus, total_examples=model.corpus_count, epochs=epochs)
    words = list(model.wv.index_to_key)
    return WordVectors(words, np.stack([model.wv[w] for w in words]))


# --------------------------------------------------------------------------------------------
# Sentence vectors
# --------------------------------------------------------------------------------------------

class SentenceEmbedder:
    """Caption (token list) -> fixed-size vector: SIF-weighted average of word vectors with the
    first principal component of the training sentence vectors removed (as MMVAE's analysis code
    computes it, Shi et al. 2019: ``fetch_weights``, ``apply_weights``, ``fetch_pc``, ``apply_pc``).

    Fit with :meth:`fit`. The vocabulary is every training word seen at least
    ``vocabulary_min_count`` times (MMVAE: more than 3) that has a word vector. With relative
    training frequencies p(w) = count(w) / (number of training tokens, special tokens aside), a
    vocabulary word's weight is a / (a + p(w)).

    Tokens (see :data:`SPECIAL_TOKENS`):

    - "<eos>" ends the caption: everything after the first "<eos>" is ignored.
    - "<pad>", "<eos>", "<sos>", "<bos>" are not words: they add no vector.
    - "<exc>", "<unk>" and any token outside the vocabulary are *excluded words*.

    Two conventions for the rest (``mmvae_conventions``):

    - True (default, MMVAE's exact arithmetic): the divisor is the number of token positions up to
      and including the first "<eos>" (all positions if there is none), so "<eos>" and any
      "<pad>" before it count in the length although they add nothing; an excluded word adds
      the constant vector (-1, ..., -1) with weight a / (a + p_excluded), p_excluded the summed
      frequency of all training tokens outside the vocabulary (MMVAE's "<exc>" row).
    - False: a plain SIF-weighted mean over vocabulary words; special tokens and excluded words
      are skipped entirely.

    A caption with no words gets the zero vector. The principal direction u is the leading right
    singular vector of the CENTRED training sentence vectors, and it is removed from every
    (uncentred) vector: v - (u . v) u.
    """

    def __init__(self, vocabulary: Sequence[str], word_vectors, sif_weights, excluded_weight: float,
                 principal_component=None, *, sif_a: float = SIF_A, mmvae_conventions: bool = True):
        self.vocabulary = tuple(vocabulary)
        self.word_vectors = np.asarray(word_vectors, dtype=np.float64)
        self.sif_weights = np.asarray(sif_weights, dtype=np.float64)
        self.excluded_weight = float(excluded_weight)
        self.principal_component = None if principal_component is None else np.asarray(principal_component, np.float64)
        self.sif_a, self.mmvae_conventions = float(sif_a), bool(mmvae_conventions)
        n, dim = self.word_vectors.shape
        if len(self.vocabulary) != n or self.sif_weights.shape != (n,):
            raise ValueError("vocabulary, word vectors and weights disagree in length")
        if self.principal_component is not None and self.principal_component.shape != (dim,):
            raise ValueError("principal component has the wrong dimension")
        self._index = {w: i for i, w in enumerate(self.vocabulary)}
        # MMVAE's "<exc>" row: a vector of -1s (its embedding table starts with base * (i - 1)).
        self._vectors = np.vstack([self.word_vectors, -np.ones((1, dim))])
        self._weights = np.append(self.sif_weights, self.excluded_weight)

    @property
    def dim(self) -> int:
        return self.word_vectors.shape[1]

    @classmethod
    def fit(cls, word_vectors: WordVectors, train_sentences: Iterable[Sequence[str]], *, sif_a: float = SIF_A,
            vocabulary_min_count: int = 4, mmvae_conventions: bool = True,
            remove_principal_component: bool = True) -> "SentenceEmbedder":
        """Word frequencies, SIF weights and the principal direction from the training captions.

        Counting skips "<pad>", "<eos>", "<sos>", "<bos>"; "<exc>"/"<unk>" count as occurrences
        of out-of-vocabulary words, so captions whose rare words are already replaced give the
        same frequencies as raw ones.
        """
        train_sentences = _token_lists(train_sentences, "training captions")
        counts = Counter(t for tokens in train_sentences for t in tokens if t not in STRUCTURAL_TOKENS)
        total = sum(counts.values())
        if total == 0:
            raise ValueError("the training captions contain no words")
        vocabulary = [w for w, c in counts.items()
                      if c >= vocabulary_min_count and w not in EXCLUDED_TOKENS and w in word_vectors]
        in_vocabulary = np.array([counts[w] for w in vocabulary], dtype=np.float64)
        excluded = total - in_vocabulary.sum()
        vectors = np.array([word_vectors[w] for w in vocabulary]).reshape(len(vocabulary), word_vectors.dim)
        embedder = cls(vocabulary, vectors, sif_a / (sif_a + in_vocabulary / total), sif_a / (sif_a + excluded / total),
                       sif_a=sif_a, mmvae_conventions=mmvae_conventions)
        if remove_principal_component:
            embedder.principal_component = first_principal_direction(embedder.weighted_average(train_sentences))
        return embedder

    def weighted_average(self, sentences: Iterable[Sequence[str]]) -> np.ndarray:
        """(n, dim) SIF-weighted averages, before the principal component is removed."""
        from scipy import sparse

        sentences = _token_lists(sentences)
        rows, columns, lengths = [], [], np.zeros(len(sentences))
        excluded_column = len(self.vocabulary)
        mmvae = self.mmvae_conventions
        for i, tokens in enumerate(sentences):
            length = 0
            for token in tokens:
                if mmvae:
                    length += 1  # every position up to and including the first <eos>
                if token == END_TOKEN:
                    break
                if token in STRUCTURAL_TOKENS:
                    continue
                column = self._index.get(token)
                if column is None:
                    if not mmvae:
                        continue
                    column = excluded_column
                if not mmvae:
                    length += 1
                rows.append(i)
                columns.append(column)
            lengths[i] = length
        rows, columns = np.asarray(rows, dtype=np.int64), np.asarray(columns, dtype=np.int64)
        values = self._weights[columns] / lengths[rows] if len(rows) else np.zeros(0)
        coefficients = sparse.csr_matrix((values, (rows, columns)), shape=(len(sentences), len(self._weights)))
        return np.asarray(coefficients @ self._vectors, dtype=np.float64)

    def __call__(self, sentences: Iterable[Sequence[str]]) -> np.ndarray:
        """(n, dim) float64 sentence vectors of token lists."""
        vectors = self.weighted_average(sentences)
        if self.principal_component is not None:
            u = self.principal_component
            vectors = vectors - np.outer(vectors @ u, u)
        return vectors


def first_principal_direction(vectors) -> np.ndarray:
    """Unit vector of largest variance of the rows of ``vectors`` (they are centred first)."""
    vectors = np.asarray(vectors, dtype=np.float64)
    centred = vectors - vectors.mean(0)
    _, _, right = np.linalg.svd(centred, full_matrices=False)
    return right[0]


# --------------------------------------------------------------------------------------------
# CCA
# --------------------------------------------------------------------------------------------

def _as_matrix(values, name: str) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 2:
        raise ValueError(f"{name} must be a 2-D (items, features) array, got shape {array.shape}")
    return array


def _whitener(covariance: np.ndarray, ridge: float, rank_tolerance: float, view: str) -> np.ndarray:
    """W with W^T (C + ridge I) W = I on the directions of C whose variance exceeds
    rank_tolerance times the largest; directions without variance are dropped."""
    variances, directions = np.linalg.eigh(covariance + ridge * np.eye(len(covariance)))
    largest = variances.max()
    if not largest > 0:
        raise ValueError(f"view {view} has no variance")
    keep = variances > rank_tolerance * largest
    return directions[:, keep] / np.sqrt(variances[keep])


def _mmvae_eigenproblem(cxx, cyy, cxy, eps: float, components: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(eigenvalues, a, b) of MMVAE's CCA: A v = lambda B v with eps added to the diagonals of both
    A = [[0, Cxy], [Cyx, 0]] and B = blockdiag(Cxx, Cyy), the ``components`` eigenvalues largest in
    real part, their eigenvectors' real parts scaled to unit length and split into the two views."""
    import scipy.linalg

    dx, dy = len(cxx), len(cyy)
    if not 1 <= components <= min(dx, dy):
        raise ValueError(f"components must be between 1 and {min(dx, dy)} (the smaller width of the two views), "
                         f"got {components}")
    a, b = np.zeros((dx + dy, dx + dy)), np.zeros((dx + dy, dx + dy))
    a[:dx, dx:], a[dx:, :dx] = cxy, cxy.T
    b[:dx, :dx], b[dx:, dx:] = cxx, cyy
    a[np.diag_indices_from(a)] += eps
    b[np.diag_indices_from(b)] += eps
    values, vectors = scipy.linalg.eig(a, b)
    order = np.argsort(values)[::-1][:components]  # complex values sort by real part first
    if not np.isfinite(values[order]).all():
        raise ValueError("MMVAE's CCA eigenproblem has infinite or undefined leading eigenvalues on these data; "
                         "use the whitened arithmetic")
    directions = vectors[:, order].real
    directions = directions / np.linalg.norm(directions, axis=0)
    return values[order].real, directions[:dx], directions[dx:]


class CCAProjection:
    """Two-view CCA fitted on paired rows, and the per-pair correlation of MMVAE's CUB analysis.

    Maths. MMVAE's ``cca`` (``src/report/helper.py``) solves the generalised eigenproblem
    A v = lambda B v with A = [[eps I, Cxy], [Cyx, eps I]] and B = blockdiag(Cxx + eps I, Cyy + eps I),
    covariances normalised by n - 1 and eps = 1e-12, and keeps the unit-length eigenvectors of the
    k largest eigenvalues. ``arithmetic`` chooses how this class computes it:

    - "whitened" (default): with Wx, Wy such that Wx^T (Cxx + ridge I) Wx = I and likewise for y
      (directions whose variance is below ``rank_tolerance`` times the view's largest dropped),
      the singular value decomposition Wx^T Cxy Wy = P diag(rho) Q^T gives the canonical
      correlations rho_1 >= rho_2 >= ... and the directions a_j = Wx p_j, b_j = Wy q_j. Stacked,
      (a_j, b_j) solves A v = rho_j B v *without* eps on A's diagonal, on the directions kept.
      This is the textbook CCA solution, but not MMVAE's numbers when a view's covariance has
      eigenvalues near eps: eps on A's diagonal adds about eps / (mu + eps) to the eigenvalue of
      a direction of variance mu, so nearly constant directions (mu of order eps or less) reach
      eigenvalues between about 1/2 and 1 and outrank the genuine correlations in MMVAE's top k. The SIF sentence vectors have
      such directions (their first principal component is removed, leaving covariance
      eigenvalues down to ~1e-12), so on CUB the two arithmetics give different scores
      (docs/differences.md).
    - "mmvae": MMVAE's arithmetic itself: the eigenproblem above, eps = ``ridge`` on both
      diagonals, solved by ``scipy.linalg.eig``, eigenvalues sorted by real part, the real parts
      of the top k eigenvectors scaled to unit length. ``correlations`` then holds those
      eigenvalues (not clipped: the eps terms can take them outside [0, 1]); ``rank_tolerance``
      does not apply and ``direction_scaling`` must be "unit_norm".

    ``direction_scaling`` fixes the length of each pair of directions, which matters because the
    per-pair score is a cosine over all components:

    - "unit_norm" (default, as MMVAE): the stacked vector (a_j, b_j) has Euclidean length 1,
      which is how scipy.linalg.eig returns eigenvectors. Both halves keep equal variance along
      the component (a_j^T Cxx a_j = b_j^T Cyy b_j), but components get different overall scales.
    - "unit_variance": the textbook canonical variates, a_j^T Cxx a_j = b_j^T Cyy b_j = 1.

    Numerics: float64 throughout; ``ridge`` (default 1e-12, MMVAE's eps) is added to the
    covariance diagonals and, with "whitened", directions whose variance is below
    ``rank_tolerance`` times the view's largest are dropped (e.g. the principal component removed
    from sentence vectors, along which those have no variance). The sign of each pair is fixed so that its largest entry is
    positive (any sign gives the same scores).

    Example:
        >>> rng = np.random.default_rng(0)
        >>> x = rng.normal(size=(500, 3))
        >>> y = x @ rng.normal(size=(3, 4))          # y is a linear image of x
        >>> cca = CCAProjection().fit(x, y, components=3)
        >>> bool(np.allclose(cca.correlations, 1.0))
        True
        >>> bool(cca.correlation(x[:5], y[:5]).min() > 0.999)
        True
    """

    def __init__(self, *, direction_scaling: Literal["unit_norm", "unit_variance"] = "unit_norm",
                 ridge: float = 1e-12, rank_tolerance: float = 1e-9, arithmetic: Literal["whitened", "mmvae"] = "whitened"):
        if direction_scaling not in ("unit_norm", "unit_variance"):
            raise ValueError(f"direction_scaling must be 'unit_norm' or 'unit_variance', not {direction_scaling!r}")
        if arithmetic not in ("whitened", "mmvae"):
            raise ValueError(f"arithmetic must be 'whitened' or 'mmvae', not {arithmetic!r}")
        if arithmetic == "mmvae" and direction_scaling != "unit_norm":
            raise ValueError("MMVAE's arithmetic gives unit-length directions; use direction_scaling='unit_norm' with it")
        self.direction_scaling, self.ridge, self.rank_tolerance = direction_scaling, float(ridge), float(rank_tolerance)
        self.arithmetic = arithmetic
        self.mean_x = self.mean_y = self.weights_x = self.weights_y = self.correlations = None

    @property
    def components(self) -> int:
        return 0 if self.correlations is None else len(self.correlations)

    def fit(self, x, y, components: int = CCA_COMPONENTS, *, chunk_size: int = 8192) -> "CCAProjection":
        """Fit on paired rows x (n, dx) and y (n, dy); keeps the ``components`` most correlated
        pairs of directions. Covariances are accumulated ``chunk_size`` rows at a time."""
        x, y = _as_matrix(x, "x"), _as_matrix(y, "y")
        n = len(x)
        if len(y) != n:
            raise ValueError(f"x and y must have the same number of rows, got {n} and {len(y)}")
        if n < 2:
            raise ValueError("CCA needs at least 2 pairs")
        self.mean_x, self.mean_y = x.mean(0), y.mean(0)
        cxx, cyy, cxy = (np.zeros((x.shape[1], x.shape[1])), np.zeros((y.shape[1], y.shape[1])),
                         np.zeros((x.shape[1], y.shape[1])))
        for start in range(0, n, chunk_size):
            xc, yc = x[start:start + chunk_size] - self.mean_x, y[start:start + chunk_size] - self.mean_y
            cxx += xc.T @ xc
            cyy += yc.T @ yc
            cxy += xc.T @ yc
        cxx, cyy, cxy = cxx / (n - 1), cyy / (n - 1), cxy / (n - 1)
        if self.arithmetic == "mmvae":
            correlations, a, b = _mmvae_eigenproblem(cxx, cyy, cxy, self.ridge, components)
        else:
            correlations, a, b = self._whitened(cxx, cyy, cxy, components)
        stacked = np.vstack([a, b])
        signs = np.sign(stacked[np.abs(stacked).argmax(0), np.arange(components)])
        self.weights_x, self.weights_y = a * signs, b * signs
        self.correlations = correlations
        return self

    def _whitened(self, cxx, cyy, cxy, components: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(correlations, a, b) of the ``components`` leading pairs, by whitening and an SVD."""
        whiten_x = _whitener(cxx, self.ridge, self.rank_tolerance, "x")
        whiten_y = _whitener(cyy, self.ridge, self.rank_tolerance, "y")
        available = min(whiten_x.shape[1], whiten_y.shape[1])
        if not 1 <= components <= available:
            raise ValueError(f"components must be between 1 and {available} (the smaller rank of the two views), "
                             f"got {components}")
        left, correlations, right_t = np.linalg.svd(whiten_x.T @ cxy @ whiten_y)
        a, b = whiten_x @ left[:, :components], whiten_y @ right_t[:components].T
        if self.direction_scaling == "unit_norm":
            length = np.sqrt((a ** 2).sum(0) + (b ** 2).sum(0))
            a, b = a / length, b / length
        return np.clip(correlations[:components], 0.0, 1.0), a, b

    def _check_fitted(self):
        if self.weights_x is None:
            raise RuntimeError("CCAProjection is not fitted; call fit(x, y) first")

    def transform(self, x, y) -> tuple[np.ndarray, np.ndarray]:
        """Projections ((x - training mean of x) Wx, (y - training mean of y) Wy), each (n, k)."""
        self._check_fitted()
        x, y = _as_matrix(x, "x"), _as_matrix(y, "y")
        return (x - self.mean_x) @ self.weights_x, (y - self.mean_y) @ self.weights_y

    def correlation(self, x, y, eps: float = 1e-8) -> np.ndarray:
        """(n,) per-pair score: the cosine between the two projections of row i (as MMVAE's
        ``calculate_corr``: torch cosine_similarity, each norm clamped below at ``eps``)."""
        px, py = self.transform(x, y)
        if len(px) != len(py):
            raise ValueError(f"x and y must have the same number of rows, got {len(px)} and {len(py)}")
        norms = np.maximum(np.linalg.norm(px, axis=1), eps) * np.maximum(np.linalg.norm(py, axis=1), eps)
        return (px * py).sum(1) / norms


# --------------------------------------------------------------------------------------------
# The measure
# --------------------------------------------------------------------------------------------

_FORMAT, _VERSION = "memevae-cca-coherence", 1


class CCACoherence:
    """The CUB coherence measure of paper App. G / Table 5: sentence embedder + CCA projection,
    both fitted on training pairs, and the mean per-pair correlation of a set of
    (image feature, caption) pairs.

    MMVAE averages batch means over test batches of 256 and drops the last incomplete batch;
    :meth:`score` averages over all items.
    """

    def __init__(self, embedder: SentenceEmbedder, projection: CCAProjection, training_captions_checksum: str,
                 training_pairs: int):
        self.embedder, self.projection = embedder, projection
        self.training_captions_checksum, self.training_pairs = training_captions_checksum, int(training_pairs)

    @classmethod
    def fit(cls, train_features, train_sentences: Sequence[Sequence[str]], *, word_vectors: WordVectors | None = None,
            components: int = CCA_COMPONENTS, sif_a: float = SIF_A, vocabulary_min_count: int = 4,
            mmvae_conventions: bool = True, direction_scaling: Literal["unit_norm", "unit_variance"] = "unit_norm",
            arithmetic: Literal["whitened", "mmvae"] = "whitened", dim: int = 300, seed: int = 0) -> "CCACoherence":
        """Fit on training pairs: row i of ``train_features`` (n, d) is the image feature of caption
        ``train_sentences[i]`` (MMVAE: each image repeated once per caption, 10 times on CUB).

        Word vectors are trained with :func:`fit_word_vectors` (``dim``, ``seed``, MMVAE's other
        settings) on ``train_sentences`` unless ``word_vectors`` is given; ``arithmetic`` is the
        CCA's (:class:`CCAProjection`).
        """
        train_sentences = _token_lists(train_sentences, "training captions")
        features = _as_matrix(train_features, "train_features")
        if len(features) != len(train_sentences):
            raise ValueError(f"{len(features)} feature rows for {len(train_sentences)} captions")
        if word_vectors is None:
            word_vectors = fit_word_vectors(train_sentences, dim=dim, seed=seed)
        embedder = SentenceEmbedder.fit(word_vectors, train_sentences, sif_a=sif_a,
                                        vocabulary_min_count=vocabulary_min_count, mmvae_conventions=mmvae_conventions)
        projection = CCAProjection(direction_scaling=direction_scaling, arithmetic=arithmetic).fit(
            features, embedder(train_sentences), components=components)
        return cls(embedder, projection, captions_checksum(train_sentences), len(train_sentences))

    def pair_correlations(self, features, sentences: Sequence[Sequence[str]]) -> np.ndarray:
        """(n,) correlation of each (image feature, caption) pair."""
        sentences = _token_lists(sentences, "captions")
        features = _as_matrix(features, "features")
        if len(features) != len(sentences):
            raise ValueError(f"{len(features)} feature rows for {len(sentences)} captions")
        return self.projection.correlation(features, self.embedder(sentences))

    def score(self, features, sentences: Sequence[Sequence[str]]) -> float:
        """Mean per-pair correlation over the pairs (one Table 5 entry)."""
        return float(self.pair_correlations(features, sentences).mean())

    def matches(self, train_sentences: Iterable[Sequence[str]]) -> bool:
        """Whether this measure was fitted on exactly these training captions."""
        return captions_checksum(train_sentences) == self.training_captions_checksum

    # -- persistence --------------------------------------------------------------------------

    def _metadata(self) -> dict:
        e, p = self.embedder, self.projection
        return {"format": _FORMAT, "version": _VERSION,
                "training_captions_sha256": self.training_captions_checksum, "training_pairs": self.training_pairs,
                "sif_a": e.sif_a, "mmvae_conventions": e.mmvae_conventions, "vocabulary_size": len(e.vocabulary),
                "word_dim": e.dim, "components": p.components, "direction_scaling": p.direction_scaling,
                "ridge": p.ridge, "rank_tolerance": p.rank_tolerance, "arithmetic": p.arithmetic,
                "canonical_correlations": [float(c) for c in p.correlations]}

    def save(self, path) -> Path:
        """Write everything to ``path`` (one .npz, written atomically, metadata inside as JSON) and a
        readable copy of the metadata beside it (``path`` with suffix .json)."""
        path = Path(path)
        e, p = self.embedder, self.projection
        metadata = self._metadata()
        arrays = {"metadata": np.array(json.dumps(metadata)), "vocabulary": np.array(e.vocabulary, dtype=str),
                  "word_vectors": e.word_vectors, "sif_weights": e.sif_weights,
                  "excluded_weight": np.array(e.excluded_weight),
                  "principal_component": np.zeros(0) if e.principal_component is None else e.principal_component,
                  "mean_x": p.mean_x, "mean_y": p.mean_y, "weights_x": p.weights_x, "weights_y": p.weights_y,
                  "correlations": p.correlations}
        atomic_write(path, lambda f: np.savez(f, **arrays))
        atomic_write(path.with_suffix(".json"), lambda f: f.write(json.dumps(metadata, indent=2) + "\n"), mode="w")
        return path

    @classmethod
    def load(cls, path, train_sentences: Iterable[Sequence[str]] | None = None) -> "CCACoherence":
        """Read a measure written by :meth:`save`; with ``train_sentences``, refuse (ValueError) one
        fitted on other training captions."""
        with np.load(Path(path), allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
        metadata = json.loads(str(arrays["metadata"]))
        if metadata.get("format") != _FORMAT or metadata.get("version") != _VERSION:
            raise ValueError(f"{path} is not a memevae CCA coherence file (version {_VERSION})")
        component = arrays["principal_component"]
        embedder = SentenceEmbedder([str(w) for w in arrays["vocabulary"]], arrays["word_vectors"],
                                    arrays["sif_weights"], float(arrays["excluded_weight"]),
                                    component if component.size else None, sif_a=metadata["sif_a"],
                                    mmvae_conventions=metadata["mmvae_conventions"])
        projection = CCAProjection(direction_scaling=metadata["direction_scaling"], ridge=metadata["ridge"],
                                   rank_tolerance=metadata["rank_tolerance"],
                                   arithmetic=metadata.get("arithmetic", "whitened"))
        projection.mean_x, projection.mean_y = arrays["mean_x"], arrays["mean_y"]
        projection.weights_x, projection.weights_y = arrays["weights_x"], arrays["weights_y"]
        projection.correlations = arrays["correlations"]
        measure = cls(embedder, projection, metadata["training_captions_sha256"], metadata["training_pairs"])
        if train_sentences is not None and not measure.matches(train_sentences):
            raise ValueError(f"{path} was fitted on different training captions")
        return measure
