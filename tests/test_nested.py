"""Nested subject-wise evaluation: splits that never share a person, choices blind to the test."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alsnet.errors import AlsnetError
from alsnet.training.splits import make_folds, make_nested_folds


def _subjects(draw_sizes: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
    """Window labels and subject ids: class c has one subject per entry of draw_sizes[c]."""
    y, g = [], []
    for c, sizes in enumerate(draw_sizes):
        for s, n in enumerate(sizes):
            y += [c] * n
            g += [f"{'ACM'[c]}{s:02d}"] * n
    return np.asarray(y), np.asarray(g)


data_sets = st.lists(st.lists(st.integers(1, 6), min_size=3, max_size=8), min_size=2, max_size=3)


@settings(max_examples=60, deadline=None)
@given(sizes=data_sets, seed=st.integers(0, 10_000), outer=st.sampled_from(["group-kfold", "loso"]))
def test_no_subject_is_on_two_sides_of_any_outer_or_inner_fold(sizes, seed, outer):
    y, g = _subjects(sizes)
    n_subj = len(set(g))
    try:
        folds = make_nested_folds(y, g, outer=outer, outer_k=min(5, n_subj), inner_k=2, seed=seed)
    except AlsnetError as e:  # a split that cannot keep every class in training is refused, never made
        assert "subject-wise folds" in str(e) or "leaves a class out" in str(e)
        return
    tested = []
    for f in folds:
        train_s, test_s = set(g[f.train]), set(g[f.test])
        assert not train_s & test_s
        assert train_s | test_s == set(g) and len(f.train) + len(f.test) == len(y)
        tested += sorted(test_s)
        vals = []
        for _, tr, va in f.inner:
            assert not set(g[tr]) & set(g[va])
            assert set(g[tr]) | set(g[va]) == train_s      # inner folds live inside the outer training side
            assert not set(g[va]) & test_s
            assert set(y[tr]) == set(y[f.train])            # every class is trained on
            vals += sorted(set(g[va]))
        assert sorted(vals) == sorted(train_s)              # inner validation covers each training subject once
    assert sorted(tested) == sorted(set(g))                 # outer test covers each subject once


@settings(max_examples=40, deadline=None)
@given(sizes=data_sets, seed=st.integers(0, 10_000),
       protocol=st.sampled_from(["loso", "group-kfold", "subject-holdout"]))
def test_the_plain_subject_wise_protocols_never_share_a_subject(sizes, seed, protocol):
    y, g = _subjects(sizes)
    try:
        folds = make_folds(protocol, y, g, seed=seed, folds=min(3, len(set(g))))
    except AlsnetError:
        return
    for f in folds:
        s_train, s_val, s_test = set(g[f.train]), set(g[f.val]), set(g[f.test])
        assert not (s_train & s_test or s_val & s_test or s_train & s_val)


def test_loso_outer_folds_are_named_for_their_subject():
    y, g = _subjects([[2, 2, 2], [2, 2, 2]])
    folds = make_nested_folds(y, g, outer="loso", inner_k=2, seed=0)
    assert [f.name for f in folds] == [f"subject-{s}" for s in sorted(set(g))]


def test_too_few_subjects_for_the_inner_folds_is_one_clear_error():
    y, g = _subjects([[3, 3], [3, 3]])
    with pytest.raises(AlsnetError, match="between 2 and"):
        make_nested_folds(y, g, outer="loso", inner_k=5)


# --------------------------------------------------------------------------- selection is blind

def _run_nested(tmp_path, sim_dir, name, poison_outer=None, model="knn", **kw):
    """A nested run; with ``poison_outer`` the labels of that outer fold's test windows are flipped."""
    import alsnet.training.nested as nested
    from alsnet.data.dataset import load_windows as real_load

    def load(*a, **k):
        ws = real_load(*a, **k)
        if poison_outer is not None:
            folds = make_nested_folds(ws.y, ws.subject, outer="group-kfold", outer_k=5, inner_k=3, seed=0)
            test = next(f.test for f in folds if f.name == poison_outer)
            ws.y[test] = 1 - ws.y[test]
        return ws

    exp = nested.NestedExperiment(data=str(sim_dir), out=str(tmp_path / name), model=model, n_boot=0,
                                  only_outer=["outer-0"], **kw)
    orig = nested.load_windows
    nested.load_windows = load
    try:
        nested.run(exp, progress=False)
    finally:
        nested.load_windows = orig
    return json.loads((tmp_path / name / "outer-0" / "selection.json").read_text())


def _numbers(d) -> list[float]:
    """Every number in a nested structure, in order."""
    if isinstance(d, dict):
        return [v for k in sorted(d) for v in _numbers(d[k])]
    if isinstance(d, (list, tuple)):
        return [v for x in d for v in _numbers(x)]
    return [float(d)] if isinstance(d, (int, float)) and not isinstance(d, bool) else []


CHOICES = ("chosen_candidate", "chosen_params", "chosen_epoch", "calibrator", "decision_rule", "curves",
           "calibration")


@pytest.fixture(scope="module")
def sim_dir(tmp_path_factory):
    from alsnet.data.simulate import simulate_dataset

    d = tmp_path_factory.mktemp("sim")
    simulate_dataset(d, n_subjects={"als": 5, "normal": 5}, recordings_per_subject=2, duration_s=2.2, seed=3)
    return d


def test_poisoning_the_outer_test_labels_changes_no_choice_of_a_baseline(tmp_path, sim_dir):
    clean = _run_nested(tmp_path, sim_dir, "clean")
    poisoned = _run_nested(tmp_path, sim_dir, "poisoned", poison_outer="outer-0")
    for k in CHOICES:
        assert clean.get(k) == poisoned.get(k), k
    assert clean["chosen_on"].endswith("outer test labels not read")


@pytest.mark.slow
def test_poisoning_the_outer_test_labels_changes_no_choice_of_alsnet(tmp_path, sim_dir):
    from alsnet.training.recipe import Recipe

    recipe = Recipe(max_epochs=2, train_crop=0.05, recalibration_windows=8)
    clean = _run_nested(tmp_path, sim_dir, "clean", model="alsnet", recipe=recipe)
    poisoned = _run_nested(tmp_path, sim_dir, "poisoned", model="alsnet", recipe=recipe, poison_outer="outer-0")
    # two trainings agree to float32 summation order (threads), not bit for bit: the choices
    # must be the same, the numbers they rest on equal to that rounding
    assert clean["chosen_epoch"] == poisoned["chosen_epoch"]
    assert clean["calibration"]["chosen"] == poisoned["calibration"]["chosen"]
    for k in ("curves", "calibrator", "decision_rule"):
        assert _numbers(clean[k]) == pytest.approx(_numbers(poisoned[k]), rel=1e-3, abs=1e-4), k
    assert len(clean["curves"]["subject_log_loss"]) == 2    # one candidate per epoch


def test_a_nested_baseline_run_scores_every_subject_once_and_records_its_choices(tmp_path, sim_dir):
    import alsnet.training.nested as nested

    exp = nested.NestedExperiment(data=str(sim_dir), out=str(tmp_path / "run"), model="knn", n_boot=50)
    m = nested.run(exp, progress=False)
    pred = (tmp_path / "run" / "predictions.csv").read_text().splitlines()
    assert len(pred) == 1 + 10 * 2 * 2                      # every window of every subject, once
    assert m["subject"]["n"] == 10 and m["subject_proportions"]["all"]["n"] == 10
    assert set(m["choices"]) == {f"outer-{i}" for i in range(5)}
    for c in m["choices"].values():
        assert c["chosen_params"]["n_neighbors"] in (5, 15, 45)
        assert c["scored_by"].startswith("mean of the inner models")
    # the time of every inner fit, summed over the sessions (here one) it ran in
    assert 0 < m["inner_time_s"] == pytest.approx(sum(
        json.loads(p.read_text())["seconds"] for p in (tmp_path / "run").glob("outer-*/inner-*/done.json")), abs=0.5)
    # every finished inner fold says which code finished it (a resumed run may span commits)
    import subprocess

    done = json.loads((tmp_path / "run" / "outer-0" / "inner-0" / "done.json").read_text())
    src = str(Path(nested.__file__).parent)
    head = subprocess.run(["git", "-C", src, "rev-parse", "HEAD"], capture_output=True, text=True)
    commit = done["versions"]["alsnet_commit"]
    if head.returncode == 0:
        # HEAD itself, or an ancestor of it: a commit made meanwhile in the same checkout (a
        # long run committing a finished fold) moves HEAD on between the run and this check
        sha = commit.split("-")[0]
        assert len(sha) == 12 and subprocess.run(
            ["git", "-C", src, "merge-base", "--is-ancestor", sha, "HEAD"]).returncode == 0, commit
    else:
        assert commit is None
    # resuming a finished run recomputes the same metrics from the committed folds
    again = nested.run(nested.NestedExperiment.from_dict({**exp.to_dict()}), resume=True, progress=False)
    assert again["subject"]["confusion_matrix"] == m["subject"]["confusion_matrix"]


def test_a_resumed_run_trains_only_the_outer_folds_it_is_given(tmp_path, sim_dir):
    # a screen on some outer folds, continued by --resume --outer-fold, stays on those folds
    import alsnet.training.nested as nested

    out = tmp_path / "run"
    exp = nested.NestedExperiment(data=str(sim_dir), out=str(out), model="knn", n_boot=0, only_outer=["outer-0"])
    assert nested.run(exp, progress=False) is None
    assert sorted(p.name for p in out.glob("outer-*")) == ["outer-0"]
    again = nested.NestedExperiment(data=str(sim_dir), out=str(out), model="knn", only_outer=["outer-1"])
    assert nested.run(again, resume=True, progress=False) is None
    assert sorted(p.name for p in out.glob("outer-*")) == ["outer-0", "outer-1"]
    assert not (out / "metrics.json").exists()
    assert json.loads((out / "config.json").read_text())["experiment"]["only_outer"] is None
    m = nested.run(nested.NestedExperiment(data=str(sim_dir), out=str(out)), resume=True, progress=False)
    assert set(m["choices"]) == {f"outer-{i}" for i in range(5)}


@pytest.mark.slow
def test_the_procedure_on_all_subjects_builds_the_ensemble_its_choices_were_made_for(tmp_path, sim_dir):
    """outer 'none': every subject trains; the saved ensemble's members, at the chosen epoch,
    give back the out-of-fold logits the choice was made from, and predict uses its rule."""
    import alsnet.training.nested as nested
    from alsnet.data.dataset import load_windows
    from alsnet.data.labels import get_task
    from alsnet.diagnosis.predict import Predictor
    from alsnet.model.checkpoint import load_model
    from alsnet.training.recipe import Recipe

    exp = nested.NestedExperiment(data=str(sim_dir), out=str(tmp_path / "final"), model="alsnet", outer="none",
                                  recipe=Recipe(max_epochs=2, train_crop=0.05, recalibration_windows=8))
    assert nested.run(exp, progress=False) is None
    d = tmp_path / "final" / "all-subjects"
    sel = json.loads((d / "selection.json").read_text())
    loaded = load_model(d / "model")
    assert len(loaded.members) == 3 and loaded.card["decision_rule"] == sel["decision_rule"]
    assert loaded.card["calibration"] == sel["calibrator"]
    ws = load_windows(str(sim_dir), get_task("als-vs-normal"))
    e = sel["chosen_epoch"]
    for i in range(len(loaded.members)):
        with np.load(d / f"inner-{i}" / "epochs.npz") as z:
            logged, val = z["val_logits"][e].astype(np.float32), z["val_idx"]
        got = Predictor(load_model(d / "model"), backend="eager").engines[i].logits(ws.x[val])
        np.testing.assert_allclose(got, logged, rtol=2e-3, atol=2e-3)   # float16 storage
    pred = Predictor(loaded, backend="eager")
    assert pred.rule.to_dict() == sel["decision_rule"]


def test_seed_summary_groups_runs_that_differ_only_in_their_seed(tmp_path, sim_dir):
    """Two seeds of one configuration are one row (mean and range); another model is its own row."""
    import alsnet.training.nested as nested
    from alsnet.reporting.nested import configuration, seed_summary

    runs = {}
    for name, model, seed in (("knn-s0", "knn", 0), ("knn-s1", "knn", 1), ("svm-s0", "svm", 0)):
        runs[name] = tmp_path / name
        nested.run(nested.NestedExperiment(data=str(sim_dir), out=str(runs[name]), model=model, seed=seed,
                                           n_boot=20), progress=False)
    assert configuration(runs["knn-s0"])[0] == configuration(runs["knn-s1"])[0]
    # a run written before a field existed (no recipe.sampling, no read) is the same configuration
    cfg = json.loads((runs["knn-s1"] / "config.json").read_text())
    del cfg["experiment"]["recipe"]["sampling"]
    del cfg["experiment"]["read"]
    (runs["knn-s1"] / "config.json").write_text(json.dumps(cfg))
    assert configuration(runs["knn-s0"])[0] == configuration(runs["knn-s1"])[0]
    # seeds 1 and 2 budgeted by seed 0's choices are seeds of seed 0's configuration
    cfg["experiment"].update(budget_from=str(runs["knn-s0"]), budget_margin=10)
    (runs["knn-s1"] / "config.json").write_text(json.dumps(cfg))
    assert configuration(runs["knn-s0"])[0] == configuration(runs["knn-s1"])[0]
    assert configuration(runs["knn-s0"])[0] != configuration(runs["svm-s0"])[0]
    # give the two seeds known, different window balanced accuracies
    for name, v in (("knn-s0", 0.70), ("knn-s1", 0.80)):
        m = json.loads((runs[name] / "metrics.json").read_text())
        m["window"]["balanced_accuracy"] = v
        (runs[name] / "metrics.json").write_text(json.dumps(m))
    table = seed_summary(list(runs.values())).set_index("configuration")
    assert list(table.index) == ["als-vs-normal, knn", "als-vs-normal, svm"]
    knn = table.loc["als-vs-normal, knn"]
    assert knn["n seeds"] == 2 and knn["seeds"] == "0, 1"
    assert knn["window bal. acc."] == "75.0 (70.0-80.0)"
    np.testing.assert_allclose(knn["_window bal. acc."], [70.0, 80.0])
    assert table.loc["als-vs-normal, svm", "n seeds"] == 1


# --------------------------------------------------------------------------- per-fold budget

def _budget_run(tmp_path, sim_dir, chosen: dict[str, int]):
    """A stand-in for a finished nested ALSNet run: the split of a real (kNN) run on ``sim_dir``,
    and a selection.json with ``chosen_epoch`` for each outer fold in ``chosen``."""
    _run_nested(tmp_path, sim_dir, "budget-src")
    src = tmp_path / "budget-src"
    cfg = json.loads((src / "config.json").read_text())
    cfg["model"] = "alsnet"
    (src / "config.json").write_text(json.dumps(cfg))
    for name, e in chosen.items():
        (src / name).mkdir(exist_ok=True)
        (src / name / "selection.json").write_text(json.dumps({"chosen_epoch": e}))
    return src, cfg["split"]["folds_detail"]


def test_the_budget_of_an_outer_fold_comes_from_the_same_fold_of_the_budget_run(tmp_path, sim_dir):
    import alsnet.training.nested as nested
    from alsnet.errors import AlsnetError
    from alsnet.training.recipe import Recipe

    src, detail = _budget_run(tmp_path, sim_dir, {"outer-0": 3, "outer-1": 7})
    exp = nested.NestedExperiment(data=str(sim_dir), out=str(tmp_path / "x"), recipe=Recipe(max_epochs=40),
                                  budget_from=str(src), budget_margin=5)
    b = nested.fold_budget(exp, "outer-0", detail)
    assert b["max_epochs"] == 3 + 1 + 5 and b["budget_run_chosen_epoch"] == 3
    assert b["chosen_on"].endswith("outer-0/selection.json")
    assert nested.fold_budget(exp, "outer-1", detail)["max_epochs"] == 13
    exp.recipe = Recipe(max_epochs=10)                     # never beyond the recipe's cap
    assert nested.fold_budget(exp, "outer-1", detail)["max_epochs"] == 10
    with pytest.raises(AlsnetError, match="not chosen an epoch for outer-2"):
        nested.fold_budget(exp, "outer-2", detail)          # that fold is not finished there
    other = [dict(f) for f in detail]
    other[0] = {**other[0], "test_subjects": ["somebody-else"]}
    with pytest.raises(AlsnetError, match="other subjects"):
        nested.fold_budget(exp, "outer-0", other)
    exp.budget_from = None
    assert nested.fold_budget(exp, "outer-0", detail) is None


def test_the_procedure_on_all_subjects_takes_the_largest_budget_of_the_outer_folds(tmp_path, sim_dir):
    import alsnet.training.nested as nested
    from alsnet.training.recipe import Recipe

    src, detail = _budget_run(tmp_path, sim_dir, {f"outer-{k}": e for k, e in enumerate((2, 0, 5, 1, 4))})
    exp = nested.NestedExperiment(data=str(sim_dir), out=str(tmp_path / "x"), outer="none",
                                  recipe=Recipe(max_epochs=40), budget_from=str(src), budget_margin=2)
    b = nested.fold_budget(exp, "all-subjects", [{"name": "all-subjects"}])
    assert b["max_epochs"] == 5 + 1 + 2 and "largest chosen epoch" in b["chosen_on"]


@pytest.mark.slow
def test_a_budgeted_run_trains_its_folds_to_their_budget_and_records_it(tmp_path, sim_dir):
    from alsnet.training.recipe import Recipe

    src, _ = _budget_run(tmp_path, sim_dir, {"outer-0": 0})
    sel = _run_nested(tmp_path, sim_dir, "budgeted", model="alsnet", budget_from=str(src), budget_margin=1,
                      recipe=Recipe(max_epochs=5, train_crop=0.05, recalibration_windows=8))
    assert sel["budget"]["max_epochs"] == 2 and sel["budget"]["budget_run_chosen_epoch"] == 0
    assert len(sel["curves"]["subject_log_loss"]) == 2          # trained 2 epochs, not 5
    done = json.loads((tmp_path / "budgeted" / "outer-0" / "inner-0" / "done.json").read_text())
    assert done["max_epochs"] == 2 and done["epochs"] == 2
    cfg = json.loads((tmp_path / "budgeted" / "config.json").read_text())
    assert cfg["experiment"]["budget_from"] == str(src)
    assert any("max_epochs per outer fold" in d for d in cfg["deviations"])


def test_a_damaged_history_costs_the_time_column_not_the_metrics(tmp_path, capsys):
    from alsnet.training.nested import inner_seconds

    d = tmp_path / "inner-0"
    d.mkdir()
    (d / "done.json").write_text(json.dumps({"seconds": 12.5}))
    (d / "history.csv").write_text("fold,epoch,seconds\ninner-0,0,3.0\ninner-0,1,4.5\n")
    assert inner_seconds(d) == 7.5
    (d / "history.csv").write_text("fold,epoch,seconds\ninner-0,0,3.0\ninner-0,1,\x00garbage\n")
    assert inner_seconds(d) == 12.5
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "history.csv" in err[0] and "warning" in err[0]


def test_budget_table_reports_each_finished_inner_trainings_best_epoch_and_its_end():
    """Hand-made curves: the first epoch of the lowest log-loss, the last epoch, unfinished folds left out."""
    import pandas as pd

    from alsnet.reporting.nested import budget_table

    rows = []
    for inner, lls, finished in (("inner-0", [0.9, 0.5, 0.5, 0.7], True), ("inner-1", [0.6, 0.4], False)):
        for e, ll in enumerate(lls):
            rows.append({"outer": "outer-0", "inner": inner, "epoch": e, "finished": finished, "steps": 10 * (e + 1),
                         "crop": 0.125, "subject_log_loss": ll, "window_balanced_accuracy": 0.6 + 0.05 * e})
    table = budget_table(pd.DataFrame(rows), {("outer-0", "inner-0"): ["A01", "C02"]}, label="t, ")
    assert table.to_dict("records") == [{
        "inner fold": "t, outer-0/inner-0 (A01, C02)", "epochs, steps": "4, 40",
        "best subject log-loss (epoch)": "0.500 (1)", "at the end": "0.700",
        "window bal. acc. best / end": "0.750 / 0.750"}]
    assert len(budget_table(pd.DataFrame(rows[:0], columns=list(rows[0])))) == 0
    assert len(budget_table(pd.DataFrame())) == 0      # what inner_curves gives a run with nothing finished


def _curves(spec):
    """Hand-made inner_curves: {(outer, inner): (log-losses per epoch, finished, seconds per epoch)}."""
    import pandas as pd

    return pd.DataFrame([{"outer": o, "inner": i, "epoch": e, "finished": fin, "steps": 10 * (e + 1), "crop": 0.25,
                          "subject_log_loss": ll, "window_balanced_accuracy": 0.9 - ll / 2, "seconds": sec}
                         for (o, i), (lls, fin, sec) in spec.items() for e, ll in enumerate(lls)])


def test_a_screen_compares_its_runs_on_the_inner_folds_every_run_finished():
    """A fold only one run finished, or one still training, changes neither run's screen row."""
    from alsnet.reporting.nested import common_inner_folds, screen_table

    a = _curves({("outer-0", "inner-0"): ([0.8, 0.6, 0.7], True, 10.0),
                 ("outer-0", "inner-1"): ([0.6, 0.4, 0.5, 0.9], True, 10.0),
                 ("outer-1", "inner-0"): ([0.1, 0.1], True, 10.0)})            # only a finished it
    b = _curves({("outer-0", "inner-0"): ([0.5, 0.7, 0.9], True, 30.0),
                 ("outer-0", "inner-1"): ([0.7, 0.9, 0.9], True, 30.0),
                 ("outer-1", "inner-0"): ([0.0, 0.0], False, 30.0)})           # still training
    assert common_inner_folds({"a": a, "b": b}) == {("outer-0", "inner-0"), ("outer-0", "inner-1")}
    rows = {r["run"]: r for r in screen_table({"a": a, "b": b}).to_dict("records")}
    # a: means 0.7, 0.5, 0.6 over the epochs both folds reached (its 4th epoch is one fold's only)
    assert rows["a"]["inner folds"] == 2
    assert rows["a"]["lowest mean subject log-loss (epoch, steps)"] == "0.500 (1, 20)"
    assert rows["a"]["after epoch 0"] == "0.700" and rows["a"]["at the last common epoch"] == "0.600 (2)"
    assert rows["a"]["epochs trained (mean)"] == "3.5" and rows["a"]["s per epoch (median)"] == "10"
    assert rows["b"]["lowest mean subject log-loss (epoch, steps)"] == "0.600 (0, 10)"
    assert rows["b"]["hours of epochs"] == f"{6 * 30 / 3600:.1f}"
    # b's mean curve (0.6, 0.8, 0.9) against the first row's (0.7, 0.5, 0.6), epoch by epoch
    assert rows["a"]["log-loss − first row"] == "—"
    assert rows["b"]["log-loss − first row"] == "+0.167 (-0.100 to +0.300; epochs 0–2)"
    assert rows["b"]["bal. acc. − first row"] == "-0.083 (-0.150 to +0.050; epochs 0–2)"
    assert screen_table({"a": a, "b": b.iloc[:0]}).shape[0] == 1      # an empty run is left out
    no_time = a.assign(seconds=float("nan"))
    assert screen_table({"a": no_time})["s per epoch (median)"].tolist() == ["n/a"]


def test_inner_curves_read_each_epochs_wall_time_and_survive_a_damaged_history(tmp_path):
    from alsnet.reporting.nested import _epoch_seconds

    h = tmp_path / "history.csv"
    h.write_text("fold,epoch,train_loss,seconds\ninner-0,0,0.5,48.1\ninner-0,1,0.4,47.9\n")
    assert _epoch_seconds(h) == {0: 48.1, 1: 47.9}
    h.write_text("fold,epoch,train_loss,seconds\ninner-0,0,0.5,oops\n")
    assert _epoch_seconds(h) == {}
    assert _epoch_seconds(tmp_path / "missing.csv") == {}


def test_the_screen_figure_averages_only_the_common_inner_folds(tmp_path, monkeypatch):
    """The thick line of each run is the mean over the folds every run finished, and says so."""
    import matplotlib.axes
    import matplotlib.figure

    from alsnet.reporting.nested import plot_budget

    a = _curves({("outer-0", "inner-0"): ([0.8, 0.6], True, 1.0), ("outer-0", "inner-1"): ([0.2, 0.2], True, 1.0)})
    b = _curves({("outer-0", "inner-0"): ([0.5, 0.7], True, 1.0)})
    thick, titles = [], []
    real_plot, real_title = matplotlib.axes.Axes.plot, matplotlib.figure.Figure.suptitle

    def plot(self, x, y, *args, **kw):
        if kw.get("lw") == 2:
            thick.append((kw["label"], list(y)))   # per run: the log-loss panel's line, then the other's
        return real_plot(self, x, y, *args, **kw)

    def suptitle(self, t, *args, **kw):
        titles.append(t)
        return real_title(self, t, *args, **kw)

    monkeypatch.setattr(matplotlib.axes.Axes, "plot", plot)
    monkeypatch.setattr(matplotlib.figure.Figure, "suptitle", suptitle)
    plot_budget({"a": a, "b": b}, tmp_path / "s.png", common=True)
    assert (tmp_path / "s.png").stat().st_size > 0
    assert thick[0] == ("a", [0.8, 0.6]) and thick[2] == ("b", [0.5, 0.7])
    assert titles and "mean of the 1 inner folds every line finished" in titles[0]
    thick.clear()
    titles.clear()
    plot_budget({"a": a, "b": b}, tmp_path / "all.png")
    assert thick[0][1] == pytest.approx([0.5, 0.4]) and thick[0][0] == "a (2 inner folds)"
    assert not titles


# --------------------------------------------------------------------------- choosing among runs

def test_choosing_among_runs_is_one_selection_over_every_runs_candidates(tmp_path, sim_dir):
    """choose_among takes, per outer fold, the run a single selection over all runs' candidates
    would take, with that run's choices and predictions; seeds of it group as one configuration."""
    import pandas as pd

    import alsnet.training.nested as nested
    from alsnet.data.dataset import load_windows
    from alsnet.data.labels import get_task
    from alsnet.evaluation.selection import InnerOOF, select
    from alsnet.reporting.nested import configuration, seed_summary

    runs = {}
    for model, seed in (("knn", 0), ("svm", 0), ("knn", 1), ("svm", 1)):
        runs[model, seed] = tmp_path / f"{model}-s{seed}"
        nested.run(nested.NestedExperiment(data=str(sim_dir), out=str(runs[model, seed]), model=model, seed=seed,
                                           n_boot=20), progress=False)
    pair = [runs["knn", 0], runs["svm", 0]]
    m = nested.choose_among(pair, tmp_path / "choice-s0")
    ws = load_windows(str(sim_dir), get_task("als-vs-normal"))
    n_knn = 3
    chosen_runs = set()
    for fold, c in m["choices"].items():
        oof = []
        for inner in ("inner-0", "inner-1", "inner-2"):
            logits, idx = [], None
            for r in pair:
                with np.load(r / fold / inner / "epochs.npz") as z:
                    logits.append(z["val_logits"].astype(np.float32))
                    idx = z["val_idx"]
            oof.append(InnerOOF(np.concatenate(logits), ws.y[idx], ws.subject[idx]))
        joint = select(oof)
        want = pair[0] if joint.candidate < n_knn else pair[1]
        chosen_runs.add(want.name)
        assert c["chosen_run"] == want.name
        sel = json.loads((tmp_path / "choice-s0" / fold / "selection.json").read_text())
        assert sel["decision_rule"] == joint.rule.to_dict()
        assert sel["calibrator"] == joint.calibrator.to_dict()
        pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "choice-s0" / fold / "predictions.csv"),
                                      pd.read_csv(want / fold / "predictions.csv"))
        assert sel["run_losses"][want.name] == min(sel["run_losses"].values())
    assert chosen_runs == {"knn-s0", "svm-s0"}   # on this data each run wins a fold: both paths are tested
    # the cost of the procedure is every run it chose among
    cost = sum(json.loads((r / "metrics.json").read_text())["inner_time_s"] for r in pair)
    assert m["inner_time_s"] == pytest.approx(cost, abs=0.2)
    assert any("lowest pooled inner out-of-fold" in d for d in m["deviations"])
    # seed 1 of the same choice is the same configuration; a lone run is another
    nested.choose_among([runs["knn", 1], runs["svm", 1]], tmp_path / "choice-s1")
    key0, label = configuration(tmp_path / "choice-s0")
    assert key0 == configuration(tmp_path / "choice-s1")[0] != configuration(runs["knn", 0])[0]
    assert "chosen per outer fold among" in label
    table = seed_summary([tmp_path / "choice-s0", tmp_path / "choice-s1"])
    assert len(table) == 1 and table.iloc[0]["n seeds"] == 2
    # runs of different seeds, or one that is itself a choice, are refused with one clear error
    with pytest.raises(AlsnetError, match="seed"):
        nested.choose_among([runs["knn", 0], runs["svm", 1]], tmp_path / "mixed")
    with pytest.raises(AlsnetError, match="chosen among others"):
        nested.choose_among([tmp_path / "choice-s0", runs["svm", 0]], tmp_path / "nested-choice")
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text(json.dumps({"experiment": {"recipe": {}}}))   # JSON, not a run's
    with pytest.raises(AlsnetError, match=r"broken/config\.json: not a nested run's config"):
        nested.choose_among([runs["knn", 0], broken], tmp_path / "with-broken")
    with pytest.raises(AlsnetError, match="not trained"):
        nested.run(nested.NestedExperiment.from_dict(
            json.loads((tmp_path / "choice-s0" / "config.json").read_text())["experiment"]), resume=True,
            progress=False)


@pytest.mark.slow
def test_choosing_among_runs_on_every_subject_copies_the_winners_model_and_a_lost_weight_is_retrained(
        tmp_path, sim_dir, capsys):
    from dataclasses import replace

    import alsnet.training.nested as nested
    from alsnet.training.recipe import Recipe

    recipe = Recipe(max_epochs=2, train_crop=0.05, recalibration_windows=8)
    runs = []
    for name, r in (("exact", recipe), ("balanced", replace(recipe, class_weight="balanced"))):
        runs.append(tmp_path / name)
        nested.run(nested.NestedExperiment(data=str(sim_dir), out=str(runs[-1]), model="alsnet", outer="none",
                                           recipe=r), progress=False)
    assert nested.choose_among(runs, tmp_path / "choice") is None
    sel = json.loads((tmp_path / "choice" / "all-subjects" / "selection.json").read_text())
    win = runs[[r.name for r in runs].index(sel["chosen_run"])]
    assert sel["run_losses"][sel["chosen_run"]] == min(sel["run_losses"].values())
    for ext in (".safetensors", ".json"):
        got = (tmp_path / "choice" / "all-subjects" / f"model{ext}").read_bytes()
        assert got == (win / "all-subjects" / f"model{ext}").read_bytes()
    # a finished run resumed elsewhere (its model committed, the per-epoch weights not) is left as it is ...
    d = runs[0] / "all-subjects"
    weights = d / "model.safetensors"
    before = weights.read_bytes()
    for i in range(3):
        for f in (d / f"inner-{i}" / "weights").iterdir():
            f.unlink()
        (d / f"inner-{i}" / "weights").rmdir()
    resume = nested.NestedExperiment.from_dict(json.loads((runs[0] / "config.json").read_text())["experiment"])
    nested.run(resume, resume=True, progress=False)
    assert weights.read_bytes() == before
    # ... while an unfinished one retrains the inner folds whose weights are gone
    weights.unlink()
    (d / "selection.json").unlink()
    capsys.readouterr()
    nested.run(resume, resume=True, progress=False)
    assert capsys.readouterr().err.count("finished without its per-epoch weights here (2 of 2 epochs' weights "
                                         "missing): trained again") == 3
    assert weights.is_file() and (d / "inner-0" / "weights").is_dir()
    # ... and so does one left resumable elsewhere (checkpoint and epoch logs committed, weights not),
    # which would otherwise resume after its checkpoint without the earlier epochs' weights
    weights.unlink()
    (d / "selection.json").unlink()
    (d / "inner-2" / "done.json").unlink()
    (d / "inner-2" / "weights" / "epoch-000.safetensors").unlink()
    nested.run(resume, resume=True, progress=False)
    err = capsys.readouterr().err
    assert ("[all-subjects inner-2] interrupted without its per-epoch weights here "
            "(1 of 2 epochs' weights missing)") in err
    assert err.count("trained again") == 1  # the finished inner-0 and inner-1 are kept
    assert weights.is_file() and len(list((d / "inner-2" / "weights").iterdir())) == 2


@pytest.mark.parametrize("kw", [
    {"model": "knn", "seed": 2},
    {"model": "alsnet", "outer": "none", "budget_from": "results/x-s0", "budget_margin": 7},
    {"model": "alsnet", "recipe_kw": {"train_crop": 0.125, "max_epochs": 40, "class_weight": "balanced",
                                      "sampling": "class-subject-balanced", "augment": "gain-polarity",
                                      "fast": False}},
])
def test_train_command_is_the_command_line_of_the_experiment(kw):
    """The card's and the docs' command line gives back the experiment it was written from."""
    import shlex
    from dataclasses import replace

    from alsnet.cli.main import build_parser
    from alsnet.cli.train import nested_from_args
    from alsnet.training.nested import NestedExperiment, train_command
    from alsnet.training.recipe import Recipe

    kw = dict(kw)
    recipe = replace(Recipe(), **kw.pop("recipe_kw", {}))
    exp = NestedExperiment(data="data/N2001", out="results/r", task="three-class", recipe=recipe, **kw)
    argv = shlex.split(train_command(exp))
    assert argv[:2] == ["alsnet", "train"]
    back = nested_from_args(build_parser().parse_args(argv[1:])).to_dict()
    want = exp.to_dict()
    back.pop("trainer"), want.pop("trainer")   # where it runs (CPU, GPU), not what it computes
    assert back == want


def test_poisoning_the_outer_test_labels_changes_no_choice_among_runs(tmp_path, sim_dir):
    """The run chosen for an outer fold, and the losses it was chosen on, do not move when that
    fold's test labels are flipped in every run it chooses among."""
    import alsnet.training.nested as nested
    from alsnet.data.dataset import load_windows as real_load

    def load(*a, **k):
        ws = real_load(*a, **k)
        folds = make_nested_folds(ws.y, ws.subject, outer="group-kfold", outer_k=5, inner_k=3, seed=0)
        test = next(f.test for f in folds if f.name == "outer-0")
        ws.y[test] = 1 - ws.y[test]
        return ws

    chosen = {}
    for kind in ("clean", "poisoned"):
        runs = []
        for model in ("knn", "svm"):
            runs.append(tmp_path / f"{kind}-{model}")
            exp = nested.NestedExperiment(data=str(sim_dir), out=str(runs[-1]), model=model, n_boot=0)
            orig = nested.load_windows
            nested.load_windows = load if kind == "poisoned" else orig
            try:
                nested.run(exp, progress=False)
            finally:
                nested.load_windows = orig
        nested.choose_among(runs, tmp_path / f"{kind}-choice")
        sel = json.loads((tmp_path / f"{kind}-choice" / "outer-0" / "selection.json").read_text())
        chosen[kind] = (sel["chosen_run"].split("-", 1)[1], sorted(sel["run_losses"].values()),
                        sel["decision_rule"], sel["calibrator"])
    assert chosen["clean"] == chosen["poisoned"]


def test_the_subject_rule_rescoring_reproduces_the_run_and_reads_no_outer_test_label(tmp_path, sim_dir):
    import pandas as pd

    import alsnet.training.nested as nested
    from alsnet.data.dataset import load_windows
    from alsnet.data.labels import get_task
    from alsnet.training.rescore import nested_subject_rule

    exp = nested.NestedExperiment(data=str(sim_dir), out=str(tmp_path / "run"), model="knn", n_boot=0)
    m = nested.run(exp, progress=False)
    ws = load_windows(str(sim_dir), get_task(exp.task), progress=False)
    sub = nested_subject_rule(tmp_path / "run", ws)
    assert len(sub) == 10 and sorted(sub["subject"]) == sorted(set(ws.subject))
    # the run's own rule, rebuilt from its selection.json, gives the run's subject decisions
    cm = np.zeros((2, 2), int)
    np.add.at(cm, (sub["y_true"].to_numpy(), sub["pred_window"].to_numpy()), 1)
    assert cm.tolist() == m["subject"]["confusion_matrix"]
    assert all(o[0] == 0.0 for o in sub["offsets_subject"])
    for r in ("default", "window", "subject"):   # the rule the inner CV prefers, and its decisions
        m_r = sub["rule_chosen"] == r
        assert (sub.loc[m_r, "pred_chosen"] == sub.loc[m_r, f"pred_{r}"]).all()
        best = sub[[f"held_out_{q}" for q in ("default", "window", "subject")]].max(axis=1)
        assert (sub.loc[m_r, f"held_out_{r}"] == best[m_r]).all()
    # flipping the outer test labels of a fold's predictions changes no offset and no decision
    f = tmp_path / "run" / "outer-0" / "predictions.csv"
    pred = pd.read_csv(f)
    pred["y_true"] = 1 - pred["y_true"]
    pred.to_csv(f, index=False)
    poisoned = nested_subject_rule(tmp_path / "run", ws)
    assert poisoned["offsets_subject"].tolist() == sub["offsets_subject"].tolist()
    assert poisoned["rule_chosen"].tolist() == sub["rule_chosen"].tolist()
    for rule in ("default", "window", "subject", "chosen"):
        assert poisoned[f"pred_{rule}"].tolist() == sub[f"pred_{rule}"].tolist()
    assert (poisoned["y_true"] != sub["y_true"]).sum() == (sub["fold"] == "outer-0").sum()
