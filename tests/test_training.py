"""Training through Lightning: it learns, it is reproducible, it resumes after a kill, DDP runs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from alsnet.cli.main import main

FAST = ["--max-epochs", "3", "--batch-size", "16", "--train-crop", "0.05", "--n-boot", "50", "--quiet"]


@pytest.fixture(scope="module")
def sim_data(tmp_path_factory) -> Path:
    """Four ALS and four normal simulated subjects, two 3-s recordings each."""
    from alsnet.data.simulate import simulate_dataset

    out = tmp_path_factory.mktemp("sim")
    simulate_dataset(out, n_subjects={"als": 4, "normal": 4}, recordings_per_subject=2,
                     duration_s=3.2, seed=3)
    return out


def _train(data: Path, out: Path, *extra: str) -> dict:
    rc = main(["train", "--data", str(data), "--out", str(out), *FAST, *extra])
    assert rc == 0
    return json.loads((out / "metrics.json").read_text())


@pytest.mark.slow
@pytest.mark.both_paths
def test_training_reduces_the_loss_and_beats_chance_on_held_out_subjects(sim_data, tmp_path):
    m = _train(sim_data, tmp_path / "run", "--protocol", "subject-holdout", "--max-epochs", "4")
    hist = pd.read_csv(tmp_path / "run" / "history.csv")
    assert hist["train_loss"].iloc[-1] < hist["train_loss"].iloc[0]
    assert m["window"]["balanced_accuracy"] > 0.5
    cfg = json.loads((tmp_path / "run" / "config.json").read_text())
    test_subj = set(cfg["split"]["folds_detail"][0]["test_subjects"])
    train_pred = pd.read_csv(tmp_path / "run" / "predictions.csv")
    assert set(train_pred["subject"]) == test_subj  # only held-out subjects are scored


def test_run_folder_holds_everything_a_user_needs(sim_data, tmp_path):
    m = _train(sim_data, tmp_path / "run", "--protocol", "paper", "--max-epochs", "1")
    run = tmp_path / "run"
    for name in ("config.json", "metrics.json", "predictions.csv", "history.csv",
                 "model.safetensors", "model.json"):
        assert (run / name).is_file(), name
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["window"] == {"model_fs": 23437.5, "window_seconds": 1.0, "window_samples": 23437}
    assert cfg["task"]["classes"] == ["normal", "als"]
    assert cfg["split"]["shares_recordings_between_train_and_test"] is True
    for lvl in ("window", "recording", "subject"):
        assert {"accuracy", "sensitivity", "specificity", "balanced_accuracy", "f1", "roc_auc",
                "confusion_matrix"} <= set(m[lvl])
    assert m["protocol"] == "paper" and "same recording" in m["protocol_label"]
    assert any("max_epochs=1" in d for d in m["deviations"])
    pred = pd.read_csv(run / "predictions.csv")
    assert {"record", "subject", "window", "label", "y_true", "p_normal", "p_als"} <= set(pred.columns)
    np.testing.assert_allclose(pred["p_normal"] + pred["p_als"], 1.0, atol=1e-6)


def test_existing_run_folder_is_not_overwritten_without_force(sim_data, tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / "precious.txt").write_text("keep me")
    rc = main(["train", "--data", str(sim_data), "--out", str(run), *FAST])
    assert rc != 0
    assert "use --force" in capsys.readouterr().err
    assert (run / "precious.txt").read_text() == "keep me"


@pytest.mark.slow
@pytest.mark.both_paths
def test_same_seed_gives_the_same_metrics(sim_data, tmp_path):
    a = _train(sim_data, tmp_path / "a", "--protocol", "paper", "--max-epochs", "2")
    b = _train(sim_data, tmp_path / "b", "--protocol", "paper", "--max-epochs", "2")
    pa = pd.read_csv(tmp_path / "a" / "predictions.csv")
    pb = pd.read_csv(tmp_path / "b" / "predictions.csv")
    # Multi-threaded float reductions may differ in the last bits; the results may not.
    np.testing.assert_allclose(pa["p_als"], pb["p_als"], atol=1e-4)
    for lvl in ("window", "recording", "subject"):
        assert a[lvl]["confusion_matrix"] == b[lvl]["confusion_matrix"]
        assert a[lvl]["roc_auc"] == pytest.approx(b[lvl]["roc_auc"], abs=1e-6)


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "alsnet.cli.main", *args]


@pytest.mark.slow
def test_run_killed_mid_epoch_resumes_to_the_same_result(sim_data, tmp_path):
    common = ["--data", str(sim_data), "--protocol", "paper", "--max-epochs", "4", "--batch-size", "8",
              "--train-crop", "0.05", "--n-boot", "20", "--quiet", "--seed", "5"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    ref = tmp_path / "ref"
    subprocess.run(_cli("train", "--out", str(ref), *common), check=True, env=env,
                   stdout=subprocess.DEVNULL)
    killed = tmp_path / "killed"
    proc = subprocess.Popen(_cli("train", "--out", str(killed), *common), env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    hist = killed / "folds" / "paper" / "history.csv"
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if hist.is_file() and len(hist.read_text().strip().splitlines()) >= 3:  # header + 2 epochs
            break
        time.sleep(0.05)
    assert proc.poll() is None, "training finished before it could be killed"
    time.sleep(0.3)  # into the next epoch
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (killed / "metrics.json").exists()
    subprocess.run(_cli("train", "--resume", str(killed), "--quiet"), check=True, env=env,
                   stdout=subprocess.DEVNULL)
    pr = pd.read_csv(ref / "predictions.csv")
    pk = pd.read_csv(killed / "predictions.csv")
    np.testing.assert_allclose(pk["p_als"], pr["p_als"], atol=1e-5)
    mr = json.loads((ref / "metrics.json").read_text())
    mk = json.loads((killed / "metrics.json").read_text())
    for lvl in ("window", "recording", "subject"):
        assert mk[lvl]["confusion_matrix"] == mr[lvl]["confusion_matrix"]
        assert mk[lvl]["roc_auc"] == pytest.approx(mr[lvl]["roc_auc"], abs=1e-6)


@pytest.mark.slow
def test_ddp_with_two_cpu_processes_trains(sim_data, tmp_path):
    out = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PL_DISABLE_FORK": "1"}
    r = subprocess.run(_cli("train", "--data", str(sim_data), "--out", str(out), "--protocol", "paper",
                            "--max-epochs", "2", "--batch-size", "8", "--train-crop", "0.05",
                            "--n-boot", "20", "--quiet", "--accelerator", "cpu", "--devices", "2",
                            "--strategy", "ddp"),
                       env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    hist = pd.read_csv(out / "history.csv")
    assert len(hist) == 2 and np.isfinite(hist["train_loss"]).all()
    assert (out / "metrics.json").is_file() and (out / "model.safetensors").is_file()


def test_a_last_batch_of_one_window_is_dropped_instead_of_crashing(tmp_path):
    """2449 LOSO training windows at batch 48 left one window for the last batch, which
    BatchNorm cannot normalise in training mode: that batch (and only that) is dropped."""
    import lightning as L

    from alsnet.data.labels import get_task
    from alsnet.training.lightning import ALSNetModule, Recipe, WindowDataModule

    rng = np.random.default_rng(0)
    x = (rng.standard_normal((9, 400)) * 50).astype(np.float32)
    y = np.array([0, 1] * 4 + [0])
    dm = WindowDataModule(x, y, x[:4], y[:4], batch_size=4, crop=None, seed=0)
    assert [len(b[1]) for b in dm.train_dataloader()] == [4, 4]
    dm10 = WindowDataModule(x[:6], y[:6], x[:4], y[:4], batch_size=4, crop=None, seed=0)
    assert [len(b[1]) for b in dm10.train_dataloader()] == [4, 2]
    module = ALSNetModule(get_task("als-vs-normal"), Recipe(max_epochs=1, batch_size=4))
    L.Trainer(max_epochs=1, accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False,
              enable_model_summary=False, default_root_dir=tmp_path).fit(module, datamodule=dm)
    assert module.current_epoch == 1


def test_resume_takes_task_protocol_and_model_from_the_run_not_the_defaults(tmp_path):
    """A resumed three-class LOSO run stays three-class (it once fell back to als-vs-normal)."""
    from alsnet.data.simulate import simulate_dataset

    data = tmp_path / "sim3"
    simulate_dataset(data, n_subjects={"als": 2, "normal": 2, "myopathy": 2}, recordings_per_subject=1,
                     duration_s=2.2, seed=4)
    run = tmp_path / "run"
    assert main(["train", "--data", str(data), "--out", str(run), "--task", "three-class",
                 "--protocol", "loso", "--model", "knn", "--n-boot", "20", "--quiet"]) == 0
    before = json.loads((run / "metrics.json").read_text())
    assert before["task"] == "three-class"
    (run / "metrics.json").unlink()
    (run / "folds" / "subject-A02" / "predictions.csv").unlink()  # that fold "was killed"
    assert main(["train", "--resume", str(run), "--quiet"]) == 0
    after = json.loads((run / "metrics.json").read_text())
    assert (after["task"], after["protocol"], after["model"]) == ("three-class", "loso", "knn")
    assert after["subject"]["confusion_matrix"] == before["subject"]["confusion_matrix"]
    assert len(after["subject"]["confusion_matrix"]) == 3
    assert pd.read_csv(run / "predictions.csv")["subject"].nunique() == 6  # every fold, M included


def test_validation_scores_through_the_inference_engine_give_the_eval_mode_logits():
    """Validation uses the folded/Winograd engine on CPU; its logits (and so val_loss, which
    picks the checkpoint) are the eval-mode model's to float32 rounding."""
    import torch

    from alsnet.data.labels import get_task
    from alsnet.training.lightning import ALSNetModule, Recipe

    torch.manual_seed(0)
    module = ALSNetModule(get_task("three-class"), Recipe())
    x = torch.randn(24, 1, 4000) * 50
    with torch.no_grad():
        module.model.train()
        module(x)  # move the BatchNorm statistics off their initial values
        module.model.eval()
        engine = module._make_val_engine()
        if engine is None:
            pytest.skip("no fast inference path in this build")
        module._val_engine = engine
        got = module._val_logits(x)
        ref = module.model(x)
    assert got.shape == ref.shape
    assert float((got - ref).abs().max() / ref.abs().max()) < 1e-4
    y = torch.tensor([0, 1, 2] * 8)
    assert float(module._loss(got, y)) == pytest.approx(float(module._loss(ref, y)), rel=1e-4)


@pytest.mark.slow
def test_folds_run_as_separate_jobs_merge_into_the_metrics_of_one_run(tmp_path):
    """A cluster array: one process per LOSO fold, all writing into one run folder, then --merge."""
    import json
    import subprocess

    from alsnet.data.simulate import simulate_dataset

    data = tmp_path / "sim"
    simulate_dataset(data, n_subjects={"als": 2, "normal": 2}, recordings_per_subject=2, duration_s=2.2, seed=1)
    common = ["train", "--data", str(data), "--protocol", "loso", "--model", "knn", "--n-boot", "50", "--quiet"]
    one = subprocess.run(_cli(*common, "--out", str(tmp_path / "one")), capture_output=True, text=True)
    assert one.returncode == 0, one.stderr
    jobs = [subprocess.Popen(_cli(*common, "--out", str(tmp_path / "array"), "--fold", f"subject-{s}"),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for s in ("A01", "A02", "C01", "C02")]
    for j in jobs:
        _, err = j.communicate(timeout=300)
        assert j.returncode == 0, err
        assert "alsnet train --merge" in err
    assert not (tmp_path / "array" / "metrics.json").exists()      # no job scores a partial run
    merged = subprocess.run(_cli("train", "--merge", str(tmp_path / "array"), "--quiet"), capture_output=True,
                            text=True)
    assert merged.returncode == 0, merged.stderr
    a = json.loads((tmp_path / "one" / "metrics.json").read_text())
    b = json.loads((tmp_path / "array" / "metrics.json").read_text())
    for level in ("window", "recording", "subject"):
        assert a[level]["confusion_matrix"] == b[level]["confusion_matrix"]
        assert a[level]["roc_auc"] == b[level]["roc_auc"]


@pytest.mark.slow
def test_merging_a_run_with_an_unfinished_fold_names_it(tmp_path):
    import subprocess

    from alsnet.data.simulate import simulate_dataset

    data = tmp_path / "sim"
    simulate_dataset(data, n_subjects={"als": 2, "normal": 2}, recordings_per_subject=1, duration_s=2.2, seed=1)
    job = subprocess.run(_cli("train", "--data", str(data), "--protocol", "loso", "--model", "knn", "--quiet",
                              "--out", str(tmp_path / "r"), "--fold", "subject-A01"), capture_output=True, text=True)
    assert job.returncode == 0, job.stderr
    other = subprocess.run(_cli("train", "--data", str(data), "--protocol", "loso", "--model", "svm", "--quiet",
                                "--out", str(tmp_path / "r"), "--fold", "subject-A02"), capture_output=True, text=True)
    assert other.returncode == 3 and "holds another experiment (differs in model)" in other.stderr
    merged = subprocess.run(_cli("train", "--merge", str(tmp_path / "r")), capture_output=True, text=True)
    assert merged.returncode == 3
    assert "3 of 4 folds unfinished (subject-A02, subject-C01, subject-C02)" in merged.stderr
    assert merged.stderr.count("\n") == 1


def _wav_lab(tmp_path, with_scale_column: bool):
    """A lab's own folder: 16-bit WAV at 48 kHz and a labels.csv (subject, label, scale)."""
    from scipy.io import wavfile
    from scipy.signal import resample_poly

    from alsnet.data.io import read_recording
    from alsnet.data.simulate import simulate_dataset

    sim = tmp_path / "sim"
    simulate_dataset(sim, n_subjects={"als": 2, "normal": 2}, recordings_per_subject=2, duration_s=2.2, seed=2)
    lab = tmp_path / "lab"
    lab.mkdir()
    rows = ["record,subject,label" + (",scale" if with_scale_column else "")]
    for i, hea in enumerate(sorted(sim.glob("*.hea"))):
        rec = read_recording(hea)
        x = resample_poly(rec.signal, 256, 125)                       # 23437.5 Hz -> 48 kHz
        wavfile.write(lab / f"take{i:02d}.wav", 48000, np.clip(np.round(x / 0.1), -32768, 32767).astype(np.int16))
        rows.append(f"take{i:02d},{rec.subject},{'als' if rec.label == 'als' else 'normal'}"
                    + (",0.1" if with_scale_column else ""))
    (lab / "labels.csv").write_text("\n".join(rows) + "\n")
    return lab


@pytest.mark.slow
def test_train_runs_a_subject_wise_evaluation_on_a_labs_wav_folder(tmp_path):
    lab = _wav_lab(tmp_path, with_scale_column=True)               # scale from labels.csv
    res = subprocess.run(_cli("train", "--data", str(lab), "--protocol", "loso", "--model", "knn", "--quiet",
                              "--n-boot", "20", "--out", str(tmp_path / "run")), capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    m = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert m["subject"]["n"] == 4 and m["window"]["n"] == 8 * 2
    lab2 = _wav_lab(tmp_path / "b", with_scale_column=False)       # scale on the command line
    res = subprocess.run(_cli("train", "--data", str(lab2), "--protocol", "loso", "--model", "knn", "--quiet",
                              "--n-boot", "20", "--scale", "0.1", "--out", str(tmp_path / "run2")),
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert json.loads((tmp_path / "run2" / "config.json").read_text())["experiment"]["read"] == {"scale": 0.1}


@pytest.mark.slow
def test_a_data_set_with_no_usable_recording_lists_each_files_reason(tmp_path):
    d = tmp_path / "npy"
    d.mkdir()
    for name in ("a", "b"):
        np.save(d / f"{name}.npy", np.zeros(30000, np.float32))
    (d / "labels.csv").write_text("record,subject,label\na,S1,als\nb,S2,normal\n")
    res = subprocess.run(_cli("train", "--data", str(d), "--protocol", "loso", "--model", "knn", "--quiet",
                              "--out", str(tmp_path / "run")), capture_output=True, text=True)
    assert res.returncode == 3 and res.stderr.count("\n") == 1
    assert "no usable recordings" in res.stderr and "a.npy:" in res.stderr and "b.npy:" in res.stderr
    assert "--fs" in res.stderr


def test_last_checkpoint_is_the_latest_epoch_not_the_best(sim_data, tmp_path):
    """A fold interrupted after its best epoch resumes from its latest epoch (Lightning's
    save_last alone refreshed last.ckpt only when the best improved, so resuming redid every
    epoch since the best one)."""
    import torch

    from alsnet.cli.main import main

    out = tmp_path / "run"
    assert main(["train", "--data", str(sim_data), "--out", str(out), "--protocol", "paper",
                 "--max-epochs", "5", "--batch-size", "8", "--train-crop", "0.05", "--n-boot", "20",
                 "--quiet", "--seed", "5", "--lr", "0.05"]) == 0
    hist = pd.read_csv(out / "folds" / "paper" / "history.csv")
    ckpt = out / "folds" / "paper" / "checkpoints"
    last = torch.load(ckpt / "last.ckpt", map_location="cpu", weights_only=False)
    best = torch.load(ckpt / "best.ckpt", map_location="cpu", weights_only=False)
    assert last["epoch"] == len(hist) - 1  # saved at the end of the final epoch (0-based)
    assert best["epoch"] == int(hist["val_loss"].idxmin())
    # (at this learning rate the best epoch is usually an early one, where the old copy stayed)
