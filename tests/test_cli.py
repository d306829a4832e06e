"""The ``iconlearn`` command's front door: every user error is one line on stderr with exit code
2, Ctrl-C is one line with exit code 130 and keeps what finished, reports never overwrite an
earlier run silently, and user files in the formats people have (.npy, .npz, CSV, text) are read."""
import json
import os
import signal

import numpy as np
import pytest
import torch

from iconlearn.cli import main


@pytest.fixture(autouse=True)
def few_steps(monkeypatch):
    """The command's head-based methods get min_steps=5, to keep the suite fast."""
    from iconlearn import report
    from iconlearn.estimators.clustering import HeadClusterer

    default_methods = report.default_methods

    def fast(make):
        return lambda seed: (lambda m: m.set_params(min_steps=5) if isinstance(m, HeadClusterer) else m)(make(seed))

    monkeypatch.setattr(report, "default_methods",
                        lambda *a, **kw: {name: fast(make) for name, make in default_methods(*a, **kw).items()})


@pytest.fixture
def data(tmp_path):
    rng = np.random.default_rng(0)
    X = np.concatenate([c + 0.1 * rng.normal(size=(20, 3)) for c in rng.normal(size=(3, 3)) * 4]).astype(np.float32)
    y = np.repeat(np.arange(3), 20)
    np.save(tmp_path / "X.npy", X)
    np.save(tmp_path / "y.npy", y)
    return tmp_path, X, y


def one_line_error(capsys, argv, match, code=2):
    """Run the command; it must fail with ``code`` and one line on stderr that matches (argparse's
    errors exit through SystemExit, as ``sys.exit(main())`` would)."""
    try:
        rc = main(argv)
    except SystemExit as exc:
        rc = exc.code
    err = capsys.readouterr().err
    assert rc == code, err
    assert err.count("\n") == 1 and err.startswith("iconlearn"), err
    assert match in err, err
    assert "Traceback" not in err and "allow_pickle" not in err
    return err


def cluster(d, *extra):
    return ["cluster", "--features", str(d / "X.npy"), "--labels", str(d / "y.npy"), "--methods", "k-means",
            "--seeds", "0", "--quiet", *extra]


def test_version(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0 and capsys.readouterr().out.strip() == "iconlearn 0.1.0"


def _npy_bytes(a):
    import io

    buffer = io.BytesIO()
    np.save(buffer, a)
    return buffer.getvalue()


@pytest.mark.parametrize("write, suffix", [
    (lambda p, a: np.savetxt(p, a, delimiter=","), ".csv"),
    (lambda p, a: p.write_text("a,b,c\n" + "\n".join(",".join(map(str, r)) for r in a) + "\n"), ".csv"),  # header
    (lambda p, a: np.savetxt(p, a), ".txt"),
    (lambda p, a: np.savetxt(p, a, delimiter="\t"), ".tsv"),
    (lambda p, a: np.savez(p, X=a, other=np.zeros(2)), ".npz"),
    (lambda p, a: np.savez_compressed(p, a), ".npz"),
    (lambda p, a: p.write_bytes(_npy_bytes(a)), ".dat"),  # a .npy under another name
])
def test_features_in_csv_text_or_npz_are_simply_loaded(data, capsys, write, suffix):
    d, X, y = data
    path = d / f"feats{suffix}"
    write(path, X.astype(np.float64))
    (d / "labels.csv").write_text("label\n" + "\n".join(map(str, y)) + "\n")
    assert main(["cluster", "--features", str(path), "--labels", str(d / "labels.csv"), "--methods", "k-means",
                 "--seeds", "0", "--quiet", "--out", str(d / "out")]) == 0
    assert json.loads((d / "out" / "results.json").read_text())["summary"]["k-means"]["acc"]["mean"] == 1.0


def test_features_times_1e30_or_all_equal_run_without_a_warning(data, capsys):
    d, X, y = data
    np.save(d / "X30.npy", X * 1e30)
    assert main(["cluster", "--features", str(d / "X30.npy"), "--labels", str(d / "y.npy"), "--methods",
                 "I-Con,k-means", "--seeds", "0", "--quiet", "--out", str(d / "out")]) == 0
    assert json.loads((d / "out" / "results.json").read_text())["summary"]["I-Con"]["acc"]["mean"] == 1.0
    assert capsys.readouterr().err == ""


def test_labels_as_words_in_a_csv(data):
    d, X, y = data
    (d / "names.csv").write_text("\n".join(np.array(["cat", "dog", "owl"])[y]) + "\n")
    assert main(["cluster", "--features", str(d / "X.npy"), "--labels", str(d / "names.csv"), "--methods",
                 "k-means", "--seeds", "0", "--quiet", "--out", str(d / "out")]) == 0


def _pickled(p):
    np.save(p, np.array([{"a": 1}, None], dtype=object), allow_pickle=True)


@pytest.mark.parametrize("argv, match", [
    (lambda d: cluster(d, "--out", str(d / "X.npy") + "/sub"), "cannot write to the output folder"),
    (lambda d: cluster(d, "--out", str(d / "X.npy")), "is a file, not a folder"),
    (lambda d: ["embed", "--features", str(d / "X.npy"), "--out", str(d / "X.npy") + "/sub"], "cannot write"),
    (lambda d: ["reproduce", "identities", "--out", str(d / "X.npy")], "is a file, not a folder"),
    (lambda d: cluster(d, "--n-clusters", "0"), "--n-clusters must be >= 1, got 0"),
    (lambda d: cluster(d, "--n-clusters", "abc"), "invalid int value"),
    (lambda d: cluster(d, "--methods", "kmeans"), "did you mean 'k-means'"),
    (lambda d: cluster(d, "--seeds", "a,b"), "--seeds"),
    (lambda d: cluster(d, "--epochs", "0"), "--epochs must be at least 1"),
    (lambda d: ["cluster", "--dataset", "digitz"], "did you mean 'digits'"),
    (lambda d: ["embed", "--dataset", "irs"], "did you mean 'iris'"),
    (lambda d: ["cluster", "--dataset", "digits", "--encoder", "pixel"], "did you mean 'pixels'"),
    (lambda d: ["cluster", "--dataset", "digits", "--split", "tset"], "did you mean 'test'"),
    (lambda d: ["embed", "--features", str(d / "X.npy"), "--method", "tnse"], "did you mean 'tsne'"),
    (lambda d: ["pretrain", "--method", "simclrr"], "did you mean 'simclr'"),
    (lambda d: ["reproduce", "landscap", "--out", str(d / "o")], "did you mean 'landscape'"),
    (lambda d: ["pretrain", "optim.lrr=1"], "did you mean 'lr'"),
    (lambda d: ["cluster", "--features", str(d / "none.npy")], "features file not found"),
    (lambda d: ["cluster", "--features", str(d)], "is a folder"),
    (lambda d: ["cluster", "--features", str(d / "X.npy"), "--labels", str(d / "y2.npy")], "(1-D), got shape (60, 2)"),
    (lambda d: ["cluster", "--features", str(d / "obj.npy"), "--n-clusters", "2"], "does not load because unpickling"),
    (lambda d: ["cluster", "--features", str(d / "words.csv"), "--n-clusters", "2"], "not a table of numbers"),
    (lambda d: ["cluster", "--features", str(d / "bin.npy"), "--n-clusters", "2"], "neither a .npy/.npz array"),
    (lambda d: ["cluster", "--features", str(d / "two.npz"), "--n-clusters", "2"], "holds 2 arrays"),
    (lambda d: ["embed", "--features", str(d / "X.npy"), "--labels", str(d / "y2.npy")], "(1-D)"),
    (lambda d: ["cluster", "--features", str(d / "complex.npy"), "--n-clusters", "2"], "Complex data not supported"),
    (lambda d: ["cluster", "--features", str(d / "huge.npy"), "--n-clusters", "2"], "too large for float32"),
    (lambda d: cluster(d, "--seeds", "-1"), "--seeds must lie in"),
    (lambda d: ["cluster", "--dataset", "digits", "--views", "-1"], "--views must be >= 0"),
    (lambda d: ["embed", "--features", str(d / "X.npy"), "--pca", "-1"], "--pca must be >= 0"),
    (lambda d: ["pretrain", "--config", str(d)], "is a folder"),
    (lambda d: ["pretrain", "--config", str(d / "X.npy")], "not a YAML text file"),
])
def test_user_errors_are_one_line_and_exit_code_2(data, capsys, argv, match):
    d, X, y = data
    np.save(d / "y2.npy", np.stack([y, y], 1))
    _pickled(d / "obj.npy")
    (d / "words.csv").write_text("1,2\nthree,four\n5,6\n")
    (d / "bin.npy").write_bytes(b"\x00\xff\xfe" * 50)
    np.savez(d / "two.npz", a=X, b=X)
    np.save(d / "complex.npy", X + 1j)
    np.save(d / "huge.npy", X.astype(np.float64) * 1e300)
    one_line_error(capsys, argv(d), match)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
@pytest.mark.parametrize("argv", [
    lambda d: cluster(d, "--device", "cuda"),
    lambda d: ["embed", "--features", str(d / "X.npy"), "--device", "cuda"],
    lambda d: ["demo", "--device", "cuda"],
    lambda d: ["pretrain", "train.device=cuda", "train.out_dir=" + str(d / "p")],
])
def test_no_cuda_is_one_line(data, capsys, argv):
    one_line_error(capsys, argv(data[0]), "CUDA")


def test_reports_never_overwrite_an_earlier_run(data, capsys):
    d, X, y = data
    assert main(cluster(d, "--out", str(d / "r"))) == 0
    first = (d / "r" / "results.json").read_bytes()
    assert main(cluster(d, "--out", str(d / "r"))) == 0
    assert f"{d / 'r'} holds an earlier run: writing to {d / 'r-2'}" in capsys.readouterr().out
    assert (d / "r" / "results.json").read_bytes() == first and (d / "r-2" / "results.json").exists()
    assert main(cluster(d, "--out", str(d / "r"), "--overwrite")) == 0
    assert not (d / "r-3").exists()


def test_reproduce_into_a_shared_folder_only_moves_when_its_own_files_are_there(tmp_path, monkeypatch, capsys):
    import importlib

    idn = importlib.import_module("iconlearn.analysis.identities")
    from iconlearn.commands import reproduce as R

    tiny = idn.identities(trials=2, n=6, dim=2, clusters=2)
    monkeypatch.setattr(R, "_run", lambda name, full, seed: (tiny, lambda result, path: open(path, "wb").write(b"png")))
    (tmp_path / "notes.txt").write_text("mine")
    assert main(["reproduce", "identities", "--out", str(tmp_path)]) == 0  # other files: same folder
    assert main(["reproduce", "ntk", "--out", str(tmp_path)]) == 0
    assert (tmp_path / "identities.md").exists() and (tmp_path / "ntk.md").exists()
    assert main(["reproduce", "ntk", "--out", str(tmp_path)]) == 0  # its own files: a new folder
    assert (tmp_path.parent / f"{tmp_path.name}-2" / "ntk.md").exists()


def test_ctrl_c_in_cluster_keeps_the_runs_that_finished(data, capsys, monkeypatch):
    from iconlearn.estimators.baselines import KMeansClustering

    d, X, y = data
    fit = KMeansClustering.fit
    calls = []

    def fit_then_ctrl_c(self, *a, **k):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return fit(self, *a, **k)

    monkeypatch.setattr(KMeansClustering, "fit", fit_then_ctrl_c)
    err = one_line_error(capsys, cluster(d, "--seeds", "0,1,2", "--out", str(d / "r")),
                         "interrupted after 1 of 3 runs", code=130)
    assert "holds the runs that finished" in err
    data_ = json.loads((d / "r" / "results.json").read_text())
    assert data_["interrupted"] and [r["seed"] for r in data_["runs"]] == [0]
    assert "interrupted: 1 of 3 runs" in (d / "r" / "results.md").read_text()
    assert not [p for p in (d / "r").iterdir() if p.name.startswith(".")]  # no temporary file left


def test_ctrl_c_without_labels_keeps_the_finished_assignments(data, capsys, monkeypatch):
    from iconlearn.estimators.baselines import SpectralClusteringBaseline

    d, X, y = data
    monkeypatch.setattr(SpectralClusteringBaseline, "fit", lambda *a, **k: (_ for _ in ()).throw(KeyboardInterrupt))
    one_line_error(capsys, ["cluster", "--features", str(d / "X.npy"), "--n-clusters", "3", "--methods",
                            "k-means,spectral", "--out", str(d / "r")], "kept in", code=130)
    assert sorted(p.name for p in (d / "r").iterdir()) == ["labels.csv"]
    header = (d / "r" / "labels.csv").read_text().splitlines()[0]
    assert header == "k-means seed 0,k-means seed 1,k-means seed 2"  # the runs that finished


def test_ctrl_c_in_embed_scoring_keeps_the_embedding(data, capsys, monkeypatch):
    from iconlearn.commands import embed

    d, X, y = data

    def ctrl_c(*a, **k):
        raise KeyboardInterrupt

    class Fast:  # the t-SNE itself is tested in test_tsne.py
        timings_, kl_divergence_, n_iter_ = {}, 0.0, 1

        def fit_transform(self, X):
            return X[:, :2]

    monkeypatch.setattr(embed, "make_estimator", lambda args: Fast())
    monkeypatch.setattr("iconlearn.metrics.embedding.neighborhood_preservation", ctrl_c)
    one_line_error(capsys, ["embed", "--features", str(d / "X.npy"), "--quiet", "--out", str(d / "e")],
                   "holds embedding.npy", code=130)
    assert sorted(p.name for p in (d / "e").iterdir()) == ["embedding.npy", "embedding.png", "metrics.json"]
    metrics = json.loads((d / "e" / "metrics.json").read_text())
    assert metrics["interrupted"] and "trustworthiness_k10" in metrics


TINY = ["data.dataset=digits", "data.n_train=64", "train.max_steps=6", "train.batch_size=16", "model.width=4",
        "model.blocks=[1]", "model.proj_hidden=16", "model.proj_dim=8", "train.progress=false", "eval.enabled=false",
        "train.threads=1"]


def test_ctrl_c_in_pretrain_saves_and_says_how_to_resume(tmp_path, capsys, monkeypatch):
    from iconlearn.train import loop

    step = loop._train_step

    def press_ctrl_c_at_step_3(i, *a, **k):
        out = step(i, *a, **k)
        if i == 2:
            os.kill(os.getpid(), signal.SIGINT)
        return out

    monkeypatch.setattr(loop, "_train_step", press_ctrl_c_at_step_3)
    argv = ["pretrain", "--out-dir", str(tmp_path / "r"), *TINY]
    assert main(argv) == 130
    notice, last = capsys.readouterr().err.strip().splitlines()  # the notice at Ctrl-C, then the one line
    assert "Ctrl-C: saving a checkpoint after this step" in notice
    assert last.startswith("iconlearn pretrain: interrupted at step 3 of 6: ")
    assert "last.pt and" in last and "log.csv saved" in last and "resume" in last
    assert sorted(p.name for p in (tmp_path / "r").iterdir()) == ["last.pt", "log.csv"]
    monkeypatch.setattr(loop, "_train_step", step)
    assert main(argv) == 0
    assert f"resuming from {tmp_path / 'r' / 'last.pt'} at step 3 of 6" in capsys.readouterr().out
    one_line_error(capsys, [*argv, "--no-resume"], "holds an earlier run (last.pt)")
    assert main([*argv, "--no-resume", "--overwrite"]) == 0


def test_a_diverging_pretrain_is_one_line_and_exit_code_1(tmp_path, capsys):
    one_line_error(capsys, ["pretrain", "--out-dir", str(tmp_path / "r"), *TINY, "optim.lr=1.0e+30"],
                   "error:", code=1)


def test_the_small_config_pretrains_and_its_embeddings_go_straight_into_cluster_and_embed(tmp_path, capsys):
    from pathlib import Path

    from iconlearn.train import load_config

    config = Path(__file__).resolve().parents[1] / "configs" / "digits_simclr.yaml"
    assert load_config(config)["data"]["dataset"] == "digits"  # bundled with scikit-learn: no optional data
    out = tmp_path / "run"
    assert main(["pretrain", "--config", str(config), "--out-dir", str(out), "train.max_steps=3",
                 "train.progress=false", "data.n_test=60", "eval.n_train=200", "train.threads=1"]) == 0
    printed = capsys.readouterr().out
    emb, labels = np.load(out / "embeddings.npy"), np.load(out / "labels.npy")
    assert emb.shape[0] == labels.shape[0] == 60 and emb.ndim == 2
    assert f"iconlearn cluster --features {out / 'embeddings.npy'} --labels {out / 'labels.npy'}" in printed
    assert main(["cluster", "--features", str(out / "embeddings.npy"), "--labels", str(out / "labels.npy"),
                 "--methods", "k-means", "--seeds", "0", "--quiet", "--out", str(tmp_path / "c")]) == 0
    assert (tmp_path / "c" / "labels.csv").exists()
    assert main(["embed", "--features", str(out / "embeddings.npy"), "--labels", str(out / "labels.npy"),
                 "--n-iter", "20", "--quiet", "--out", str(tmp_path / "e")]) == 0
    assert np.load(tmp_path / "e" / "embedding.npy").shape == (60, 2)
