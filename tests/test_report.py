"""The clustering report a user looks at: the table, the predicted labels of every run, the
confusion matrix and the t-SNE map, with names where the data has them."""
import numpy as np
import pytest

from iconlearn import report
from iconlearn.estimators.baselines import KMeansClustering


def test_one_seed_prints_the_value_and_several_print_mean_and_std():
    summary = {m: {**{k: (0.5, 0.01) for k in report.METRICS}, "time": (1.0, 0.0)} for m in ("a", "b")}
    table = report.markdown_table(summary, counts={"a": 1, "b": 3})
    row_a, row_b = (line for line in table.splitlines() if line.startswith(("| a", "| b")))
    assert "±" not in row_a and "| 0.500 |" in row_a
    assert "0.500 ± 0.010" in row_b


@pytest.mark.parametrize("pred, clusters", [
    ([5, 5, 3, 3, 9, 9, 9], [5, 3, 9]),  # one cluster per class, in the class's column
    ([5, 5, 3, 3, 9, 9, 7], [5, 3, 9, 7]),  # a surplus cluster comes last
    ([5, 5, 5, 5, 9, 9, 9], [5, 9]),  # fewer clusters: class 1 has none
])
def test_matched_confusion_puts_each_class_cluster_in_its_column(pred, clusters):
    cm, classes, order = report.matched_confusion([0, 0, 1, 1, 2, 2, 2], pred)
    assert classes == [0, 1, 2] and order == clusters
    assert cm.sum() == 7 and cm.shape == (3, len(clusters))
    for j, k in enumerate(order):
        assert cm[:, j].sum() == pred.count(k)


@pytest.fixture
def blobs():
    rng = np.random.default_rng(0)
    X = np.concatenate([c + 0.3 * rng.normal(size=(20, 4)) for c in rng.normal(size=(3, 4)) * 4]).astype(np.float32)
    return X, np.repeat(np.arange(3), 20)


def test_report_keeps_every_run_and_names_seed_method_and_classes(blobs, tmp_path, monkeypatch):
    X, y = blobs
    figures = {}

    def keep(fig, path, **kw):
        figures[path.name] = fig

    monkeypatch.setattr(report, "save_figure", keep)
    methods = {"k-means": lambda s: KMeansClustering(3, random_state=s)}
    result = report.compare(X, y, methods, seeds=(4, 7), log=None)
    names = ["cat", "dog", "owl"]
    paths = report.write_report(tmp_path, result, X, y, "blobs", class_names=names)

    lines = paths["labels"].read_text().splitlines()
    assert lines[0] == "true,k-means seed 4,k-means seed 7"
    table = np.array([line.split(",") for line in lines[1:]], dtype=np.int64)
    assert (table[:, 0] == y).all()
    assert (table[:, 1] == result["labels"]["k-means"][4]).all() and (table[:, 2] == result["labels"]["k-means"][7]).all()

    (ax, bar) = figures["confusion.png"].axes
    assert "k-means, seed 4" in ax.get_title()
    assert [t.get_text() for t in ax.get_yticklabels()] == names
    assert [t.get_text().split(" → ")[1] for t in ax.get_xticklabels()] == names  # each cluster's matched class
    assert bar.get_ylabel() == "share of the true class in the cluster"

    clusters_ax, classes_ax = figures["map.png"].axes
    assert [t.get_text() for t in classes_ax.get_legend().get_texts()] == names
    assert all(" → " in t.get_text() for t in clusters_ax.get_legend().get_texts())
    assert "seed 4" in figures["map.png"]._suptitle.get_text()


def test_the_map_is_the_projects_tsne(blobs, monkeypatch):
    from iconlearn.estimators.tsne import TSNE

    X, _ = blobs
    fitted = []
    fit_transform = TSNE.fit_transform
    monkeypatch.setattr(TSNE, "fit_transform", lambda self, *a, **k: fitted.append(self) or fit_transform(self, *a, **k))
    idx, Y = report.tsne_map(X, max_points=50, seed=0)
    assert len(fitted) == 1 and fitted[0].perplexity <= (50 - 1) / 3  # lowered for small data, without a warning
    assert Y.shape == (50, 2) and len(np.unique(idx)) == 50 and np.isfinite(Y).all()
