"""Bundled models: their cards agree with their weights, their recipe and the real data, and
they score a recording as their network and calibration temperature say."""

from __future__ import annotations

import hashlib
import json
import re
import shlex
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest

from alsnet.data.io import parse_n2001_name
from alsnet.data.labels import get_task
from alsnet.data.windows import MODEL_FS, WINDOW_SAMPLES
from alsnet.model.pretrained import BUNDLED, list_models, resolve_model

REPO = Path(__file__).resolve().parents[1]


def _stem_or_skip(name):
    info = {m["name"]: m for m in list_models()}[name]
    if not info["available"]:
        pytest.skip(f"bundled model {name!r} is not built yet (python scripts/build_pretrained.py --task {name})")
    return Path(info["path"]).with_suffix("")


def _card(name: str) -> dict:
    return json.loads(_stem_or_skip(name).with_suffix(".json").read_text())


@pytest.mark.parametrize("name", list(BUNDLED))
def test_bundled_model_card_matches_its_task_window_and_weights(name):
    stem, card = _stem_or_skip(name), _card(name)
    task = get_task(BUNDLED[name]["task"])
    assert (card["task"], list(card["classes"])) == (task.name, list(task.classes))
    assert card["window"] == {"model_fs": MODEL_FS, "window_seconds": 1.0, "window_samples": WINDOW_SAMPLES}
    weights = stem.with_suffix(".safetensors")
    assert card["weights_file"] == weights.name
    assert card["weights_sha256"] == hashlib.sha256(weights.read_bytes()).hexdigest()


def _flags(command: str) -> dict[str, list[str]]:
    """A command line's options, each with the values that follow it."""
    argv, flags, key = shlex.split(command), {}, None
    for a in argv[2:]:
        if a.startswith("--"):
            key = a
            flags[key] = []
        else:
            flags[key].append(a)
    return flags


@pytest.mark.parametrize("name", list(BUNDLED))
def test_bundled_model_card_evaluation_is_the_nested_procedure_over_its_training_subjects(name):
    """The card's numbers are the nested subject-wise evaluation of the procedure that built it,
    seed by seed, each against the baseline of the same seed, counted on the card's subjects."""
    card = _card(name)
    ev, subjects = card["evaluation"], card["training_data"]["subjects"]
    assert ev["protocol"].startswith("nested") and ev["subject"]["n"] == len(subjects)
    assert "no subject is in both train and test" in ev["protocol_label"]
    for level in ("window", "recording", "subject"):
        for metric in ("balanced_accuracy", "roc_auc"):
            lo, hi = ev[level]["ci"][metric]
            if ev[level].get(metric) is not None:
                assert lo <= ev[level][metric] <= hi, (level, metric)
    assert ev["window"]["n"] >= ev["recording"]["n"] >= ev["subject"]["n"]
    seeds = ev["seeds"]
    assert len(seeds) == ev["over_seeds"]["n_seeds"] >= 1 and ev["run"] == seeds[0]["run"]
    for s in seeds:
        lo, hi = s["subjects_right_wilson95"]
        assert s["n_subjects"] == len(subjects) and lo <= s["subjects_right"] / s["n_subjects"] <= hi
    assert [a["seed"] for a in ev["against_baseline"]] == [s["seed"] for s in seeds]
    for a in ev["against_baseline"]:
        assert a["subject_log_loss_difference"]["n_subjects"] == len(subjects) == a["mcnemar_subjects"]["n"]


@pytest.mark.parametrize("name", list(BUNDLED))
def test_bundled_model_rebuild_command_names_the_committed_runs_it_was_built_from(name):
    """The card's one-line rebuild names the procedure on every subject whose ensemble the
    bundled weights are (tensor for tensor), of the card's task, recipe and seed, and the
    nested runs (one per seed) its evaluation comes from."""
    from alsnet.model.checkpoint import load_model
    from alsnet.training.nested import read_config

    card = _card(name)
    assert shlex.split(card["rebuild"])[:2] == ["python", "scripts/build_pretrained.py"]
    flags = _flags(card["rebuild"])
    assert flags["--task"] == [card["task"]]
    (run,) = flags["--from-run"]
    _, exp = read_config(REPO / run)
    assert (exp.task, exp.outer, exp.seed) == (card["task"], "none", card["seed"])
    if exp.choose_among:  # a recipe chosen among candidates: the card's recipe is the chosen one's
        from alsnet.reporting.nested import _constituent

        chosen = card["selected_by"]["chosen_recipe_run"]
        assert chosen in [Path(c).name for c in exp.choose_among]
        _, exp = read_config(_constituent(REPO / run, next(c for c in exp.choose_among if Path(c).name == chosen)))
    assert exp.recipe.to_dict() == card["recipe"]
    assert flags["--evaluation"] == [s["run"] for s in card["evaluation"]["seeds"]]
    assert flags["--baseline"] == [a["baseline"] for a in card["evaluation"]["against_baseline"]]
    built, bundled = load_model(REPO / run / "all-subjects" / "model"), resolve_model(name)
    assert len(bundled.members) == len(built.members) == card["architecture"].get("members", 1)
    for a, b in zip(bundled.members, built.members):
        sa, sb = a.state_dict(), b.state_dict()
        assert sa.keys() == sb.keys() and all(np.array_equal(sa[k].numpy(), sb[k].numpy()) for k in sa)
    assert card["decision_rule"] == built.card["decision_rule"]
    assert card["calibration"] == built.card["calibration"]


@pytest.mark.realdata
@pytest.mark.parametrize("name", list(BUNDLED))
def test_bundled_model_card_subjects_and_stated_limits_match_the_real_data(name, real_data_dir):
    """Subjects = every N2001 subject of the task's classes; the stated subject counts and age
    ranges hold for the records' own headers."""
    card, task = _card(name), get_task(BUNDLED[name]["task"])
    subjects, ages = defaultdict(set), defaultdict(set)
    for hea in Path(real_data_dir).glob("*.hea"):
        parsed = parse_n2001_name(hea.stem)
        subjects[parsed["label"]].add(parsed["subject"])
        ages[parsed["label"]].add(int(re.search(r"^#age:\s*(\d+)", hea.read_text(), re.M)[1]))
    want = sorted(s for c in task.classes for s in subjects[c])
    assert card["training_data"]["subjects"] == want
    text = " ".join(card["limitations"])
    counts = re.search(r"(\d+) ALS, (\d+) controls, (\d+) myopathy", text)
    assert tuple(map(int, counts.groups())) == tuple(len(subjects[c]) for c in ("als", "normal", "myopathy"))
    for cls, word in (("als", "ALS"), ("normal", "controls")):
        lo, hi = map(int, re.search(rf"{word} (\d+)-(\d+)", text).groups())
        assert lo <= min(ages[cls]) and max(ages[cls]) <= hi, (cls, sorted(ages[cls]))
    assert "not a medical device" in card["intended_use"].lower()


@pytest.mark.parametrize("name", list(BUNDLED))
def test_bundled_model_scores_a_recording_as_its_networks_and_calibration_say(name):
    _stem_or_skip(name)
    import torch

    from alsnet import predict

    loaded = resolve_model(name)
    rng = np.random.default_rng(0)
    x = (rng.standard_normal(3 * WINDOW_SAMPLES) * 50).astype(np.float32)
    out = predict(x, fs=MODEL_FS, model=name)
    assert out["error"] is None and out["n_windows"] == 3
    with torch.no_grad():  # the plain networks, window by window, with the card's calibration
        xs = torch.from_numpy(x.reshape(3, 1, WINDOW_SAMPLES))
        expected = np.mean([loaded.calibrator.apply(m.eval()(xs).numpy()) for m in loaded.members],
                           axis=(0, 1))
    assert list(out["probabilities"]) == list(loaded.card["classes"])
    np.testing.assert_allclose(list(out["probabilities"].values()), expected, atol=1e-4)


def test_a_tampered_bundled_model_is_refused(tmp_path):
    stem = _stem_or_skip("als-vs-normal")
    from alsnet.errors import CheckpointError
    from alsnet.model.checkpoint import load_model

    w = tmp_path / "m.safetensors"
    data = bytearray(stem.with_suffix(".safetensors").read_bytes())
    data[-1] ^= 0xFF
    w.write_bytes(bytes(data))
    (tmp_path / "m.json").write_text(stem.with_suffix(".json").read_text())
    with pytest.raises(CheckpointError, match="m.safetensors"):
        load_model(tmp_path / "m")


def test_build_refuses_an_evaluation_run_of_another_recipe(tmp_path):
    """Before any training: metrics of a differently trained run must not go on a card."""
    import importlib.util

    from alsnet.errors import AlsnetError

    spec = importlib.util.spec_from_file_location(
        "build_pretrained", Path(__file__).resolve().parents[1] / "scripts" / "build_pretrained.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    run = tmp_path / "cv"
    run.mkdir()
    (run / "metrics.json").write_text(json.dumps({
        "task": "als-vs-normal", "protocol": "loso", "protocol_label": "subject-wise",
        "window": {}, "recording": {}, "subject": {}, "deviations": ["max_epochs=6 (paper 100)"]}))
    with pytest.raises(AlsnetError, match="another recipe"):
        mod.main(["--data", str(tmp_path / "no-data"), "--task", "als-vs-normal", "--max-epochs", "6",
                  "--class-weight", "balanced", "--evaluation", str(run), "--out", str(tmp_path / "m")])


def test_a_nested_build_must_match_its_evaluation_budget_before_training(tmp_path):
    """A budgeted nested evaluation describes only a build with the same --budget-from and margin."""
    import importlib.util

    from alsnet.errors import AlsnetError
    from alsnet.training.nested import NestedExperiment, experiment_deviations
    from alsnet.training.recipe import Recipe

    spec = importlib.util.spec_from_file_location(
        "build_pretrained", Path(__file__).resolve().parents[1] / "scripts" / "build_pretrained.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    budget_run, run = str(tmp_path / "seed0"), tmp_path / "cv"
    run.mkdir()
    recipe = Recipe(max_epochs=40, train_crop=0.125)
    exp = NestedExperiment(data="x", out=str(run), model="alsnet", recipe=recipe, budget_from=budget_run,
                           budget_margin=10)
    (run / "metrics.json").write_text(json.dumps({
        "task": "als-vs-normal", "protocol": "nested group-kfold", "protocol_label": "subject-wise",
        "window": {}, "recording": {}, "subject": {}, "deviations": experiment_deviations(exp)}))
    base = ["--nested", "--data", str(tmp_path / "no-data"), "--task", "als-vs-normal", "--max-epochs", "40",
            "--evaluation", str(run), "--out", str(tmp_path / "m"), "--work", str(tmp_path / "work")]
    for extra in ([], ["--budget-from", budget_run, "--budget-margin", "5"]):
        with pytest.raises(AlsnetError, match="another recipe"):
            mod.main(base + extra)
    with pytest.raises(AlsnetError, match="add --nested"):
        mod.main(base[1:] + ["--budget-from", budget_run])
    # the matching budget passes the recipe check and fails only later, on the missing data or budget run
    with pytest.raises(AlsnetError) as e:
        mod.main(base + ["--budget-from", budget_run, "--budget-margin", "10"])
    assert "another recipe" not in str(e.value)


@pytest.mark.slow
def test_a_build_from_a_finished_procedure_carries_its_seeds_and_baseline_comparison(tmp_path):
    """--from-run bundles the ensemble of an --outer none run, no training; the card gets every
    seed of the nested evaluation of the same procedure and the paired comparison with the
    baseline of each seed; an evaluation of another recipe is refused."""
    import importlib.util
    from dataclasses import replace

    import alsnet.training.nested as nested
    from alsnet.data.simulate import simulate_dataset
    from alsnet.errors import AlsnetError
    from alsnet.model.checkpoint import load_model
    from alsnet.training.recipe import Recipe

    spec = importlib.util.spec_from_file_location(
        "build_pretrained", Path(__file__).resolve().parents[1] / "scripts" / "build_pretrained.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    sim = tmp_path / "sim"
    simulate_dataset(sim, n_subjects={"als": 5, "normal": 5}, recordings_per_subject=2, duration_s=2.2, seed=3)
    recipe = Recipe(max_epochs=2, train_crop=0.05, recalibration_windows=8)
    final = nested.NestedExperiment(data=str(sim), out=str(tmp_path / "all"), model="alsnet", outer="none",
                                    recipe=recipe)
    nested.run(final, progress=False)
    # the nested evaluation of the same procedure at two seeds: its numbers are those of kNN runs
    # on the same folds (an ALSNet nested run is 15 trainings; what the card takes is their files)
    evals, bases = [], []
    for seed in (0, 1):
        for model, out in (("knn", evals), ("svm", bases)):
            d = tmp_path / f"{model}-s{seed}"
            nested.run(nested.NestedExperiment(data=str(sim), out=str(d), model=model, seed=seed, n_boot=20),
                       progress=False)
            out.append(d)
        cfg = json.loads((evals[-1] / "config.json").read_text())
        cfg["experiment"] = {**replace(final, outer="group-kfold", seed=seed, out=str(evals[-1])).to_dict()}
        (evals[-1] / "config.json").write_text(json.dumps(cfg))
    def argv(out):
        return ["--task", "als-vs-normal", "--data", str(sim), "--from-run", str(tmp_path / "all"), "--out", str(out),
                "--n-boot", "50", "--evaluation", *map(str, evals), "--baseline", *map(str, bases)]

    out = tmp_path / "bundled"
    assert mod.main(argv(out)) == 0
    card = json.loads(out.with_suffix(".json").read_text())
    built = load_model(tmp_path / "all" / "all-subjects" / "model")
    assert out.with_suffix(".safetensors").is_file() and len(load_model(out).members) == 3
    assert card["selection"]["chosen_epoch"] == built.card["selection"]["chosen_epoch"]
    assert card["decision_rule"] == built.card["decision_rule"]
    ev = card["evaluation"]
    assert [s["seed"] for s in ev["seeds"]] == [0, 1] and ev["over_seeds"]["n_seeds"] == 2
    wba = [s["window_balanced_accuracy"] * 100 for s in ev["seeds"]]
    assert ev["over_seeds"]["window bal. acc."] == pytest.approx({"mean": np.mean(wba), "min": min(wba),
                                                                  "max": max(wba)})
    assert [a["baseline"] for a in ev["against_baseline"]] == list(map(str, bases))
    for a in ev["against_baseline"]:
        assert a["subject_log_loss_difference"]["n_subjects"] == 10 == a["mcnemar_subjects"]["n"]
    assert ev["subject"]["n"] == 10 and card["training_data"]["n_windows"] > 0
    assert "--from-run" in card["rebuild"]
    # what a user reads of it: predict's line and the report's card section count the people and
    # give the comparison with the baseline, seed by seed
    from alsnet.diagnosis.predict import evaluation_line
    from alsnet.reporting.recording import _card_evaluation_html

    k = int(np.trace(ev["subject"]["confusion_matrix"]))
    line = evaluation_line(card)
    assert f"{k} of 10 people right, Wilson 95 %" in line and "(seeds 0, 1; above 0: the baseline is better)" in line
    section = _card_evaluation_html(card)
    assert f"{k}/10 [" in section and "Over 2 seeds" in section and bases[1].name in section
    assert "could not be read" not in section
    # an evaluation of another recipe does not describe this model: refused before anything is written
    cfg = json.loads((evals[1] / "config.json").read_text())
    cfg["experiment"]["recipe"]["class_weight"] = "balanced"
    (evals[1] / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(AlsnetError, match="another procedure"):
        mod.main(argv(tmp_path / "other"))
    assert not (tmp_path / "other.json").exists()
