"""The fidelity report's per-class Gaussian classifier (QDA): trained on the stream and tested
on the reference, against its own cross-validation on the reference."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from producer.simulation.reference_data import ReferenceProfile

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

SHRINK_TO_DIAGONAL = 0.1
"""Covariances are shrunk this far toward their diagonal."""
CV_FOLDS = 5


class GaussianClassifier:
    """Per-class Gaussian (QDA) with covariances shrunk toward their diagonal."""

    def __init__(self, features: FloatArray, labels: IntArray, classes: int) -> None:
        sensors = features.shape[1]
        self.classes = np.array([c for c in range(classes) if np.any(labels == c)])
        self._means = []
        self._precisions = []
        self._offsets = []
        total = len(labels)
        for c in self.classes:
            rows = features[labels == c]
            mean = rows.mean(axis=0)
            covariance = np.cov(rows, rowvar=False) if len(rows) > 1 else np.zeros((sensors,) * 2)
            covariance = np.atleast_2d(covariance)
            diagonal = np.diag(np.diag(covariance))
            covariance = (1 - SHRINK_TO_DIAGONAL) * covariance + SHRINK_TO_DIAGONAL * diagonal
            covariance += np.eye(sensors) * 1e-9 * max(1.0, float(np.trace(covariance)))
            _, log_det = np.linalg.slogdet(covariance)
            self._means.append(mean)
            self._precisions.append(np.linalg.pinv(covariance))
            self._offsets.append(-0.5 * log_det + np.log(len(rows) / total))

    def predict(self, features: FloatArray) -> IntArray:
        scores = np.empty((len(features), len(self.classes)))
        for i, (mean, precision, offset) in enumerate(
            zip(self._means, self._precisions, self._offsets, strict=True)
        ):
            centred = features - mean
            scores[:, i] = offset - 0.5 * np.einsum("ij,jk,ik->i", centred, precision, centred)
        predicted: IntArray = self.classes[np.argmax(scores, axis=1)]
        return predicted


def balanced_accuracy(truth: IntArray, predicted: IntArray) -> float:
    recalls = [float(np.mean(predicted[truth == c] == c)) for c in np.unique(truth)]
    return float(np.mean(recalls))


def reference_rows(profile: ReferenceProfile) -> tuple[FloatArray, IntArray]:
    """All reference rows with class labels: 0 normal, 1 + t failure type t."""
    blocks = [profile.normal_values, *profile.failure_values]
    labels = np.concatenate([np.full(len(b), c, dtype=np.int64) for c, b in enumerate(blocks)])
    return np.concatenate(blocks), labels


def cross_validated_accuracy(
    features: FloatArray, labels: IntArray, classes: int, seed: int = 0
) -> float:
    """Balanced accuracy of stratified ``CV_FOLDS``-fold cross-validation."""
    rng = np.random.default_rng(seed)
    fold = np.empty(len(labels), dtype=np.int64)
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        fold[rng.permutation(members)] = np.arange(len(members)) % CV_FOLDS
    predicted = np.empty_like(labels)
    for k in range(CV_FOLDS):
        test = fold == k
        if not test.any():
            continue
        classifier = GaussianClassifier(features[~test], labels[~test], classes)
        predicted[test] = classifier.predict(features[test])
    return balanced_accuracy(labels, predicted)
