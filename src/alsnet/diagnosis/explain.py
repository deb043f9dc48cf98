"""Where in a recording ALSNet found its evidence, as numbers and as a figure.

ALSNet ends in a global max pool: for each of the 128 channels of its last convolution
it keeps one value, the channel's maximum over the window, found at one time position.
The decision therefore rests on at most 128 short stretches of signal (45 samples, about
1.9 ms, each). :func:`evidence` scores them by gradient × input at the pooled features:
``w_c = (∂ logit / ∂ pooled_c) · pooled_c``, the first-order contribution of channel
``c`` to the target logit (ALS), computed once per window. Positive weights push
towards ALS. The figure shows the recording, the window probabilities, where the
strongest evidence sits, and the waveforms (MUAPs) around it, for a neurophysiologist
to inspect.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from alsnet.data.windows import MODEL_FS, WINDOW_SAMPLES
from alsnet.diagnosis.qc import describe_flags, window_qc
from alsnet.errors import AlsnetError
from alsnet.model.network import RECEPTIVE_FIELD, members_of

if TYPE_CHECKING:
    import mne
    import torch

#: Half-width of a gallery snippet in ms.
SNIPPET_MS = 5.0


def evidence(model: torch.nn.Module | list[torch.nn.Module], windows: np.ndarray, target: int | None = None,
             batch_size: int = 8) -> list[list[tuple[int, int, float, int]]]:
    """Per-window evidence of the last layer's max-pooled channels.

    Parameters
    ----------
    model : ALSNet or list of ALSNet
        In eval mode (it is put there). A list is an ensemble (the nested procedure's
        inner models): each member's channels are explained on its own logit and their
        weights divided by the number of members, so that they add up to the evidence for
        the members' mean logit.
    windows : ndarray, shape (n, T)
        µV at the model rate, no NaN.
    target : int, optional
        Output whose logit is explained; default the single logit of a binary model,
        else output 1 (``"als"`` in the bundled tasks' class order).

    Returns
    -------
    list of list of (int, int, float, int)
        For each window, ``(time_index, channel, weight, member)`` for all channels of all
        members, largest weight first; ``time_index`` is the sample (within the window) at
        the centre of the 45-sample receptive field where the channel reached its maximum;
        ``member`` is 0 for a single network.
    """
    import torch

    members = members_of(model)
    if target is None:
        target = 0 if members[0].n_outputs == 1 else 1
    x = np.asarray(windows, dtype=np.float32)
    if x.ndim != 2 or x.shape[1] < RECEPTIVE_FIELD:
        raise AlsnetError(f"windows must be (n, T >= {RECEPTIVE_FIELD}), got {x.shape}")
    weights, centres = [], []            # per member: (n, channels) each
    for net in members:
        net.eval()
        ws, cs = [], []
        for b in range(0, len(x), batch_size):
            with torch.no_grad():
                feats = net.embed(torch.from_numpy(x[b:b + batch_size])[:, None])
                pooled, where = feats.max(dim=-1)                     # (n, 128) each
            pooled = pooled.clone().requires_grad_(True)
            logit = net.out(net.dense(pooled))[:, target].sum()       # windows are independent in eval
            (grad,) = torch.autograd.grad(logit, pooled)
            ws.append((grad * pooled).detach().numpy() / len(members))
            cs.append(where.numpy() + RECEPTIVE_FIELD // 2)
        weights.append(np.concatenate(ws))
        centres.append(np.concatenate(cs))
    w_all = np.concatenate(weights, axis=1)                            # (n, members * channels)
    t_all = np.concatenate(centres, axis=1)
    n_ch = weights[0].shape[1]
    out = []
    for w, t in zip(w_all, t_all):
        order = np.argsort(-w, kind="stable")
        out.append([(int(t[k]), int(k % n_ch), float(w[k]), int(k // n_ch)) for k in order])
    return out


def _distinct(ev: list[tuple[int, int, float, int]], k: int, min_gap: int) -> list[tuple[int, int, float, int]]:
    """The ``k`` strongest positions at least ``min_gap`` samples apart."""
    keep: list[tuple[int, int, float]] = []
    for e in ev:
        if all(abs(e[0] - o[0]) >= min_gap for o in keep):
            keep.append(e)
        if len(keep) == k:
            break
    return keep


def _envelope(y: np.ndarray, t: np.ndarray, bins: int = 4000):
    """Min/max envelope so a long trace plots fast and keeps its spikes."""
    if len(y) <= 2 * bins:
        return t, y, None
    import warnings

    n = len(y) // bins * bins
    yy = y[:n].reshape(bins, -1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a bin inside a gap is NaN: drawn as a gap
        return t[:n].reshape(bins, -1)[:, 0], np.nanmin(yy, axis=1), np.nanmax(yy, axis=1)


def explain_recording(path: str | os.PathLike | mne.io.BaseRaw, out: str | os.PathLike,
                      model: str | os.PathLike = "als-vs-normal", max_windows: int = 30,
                      fs: float | None = None, scale: float | None = None, channel: int | str | None = None,
                      top_k: int = 3, backend: str = "auto", target: str | None = None) -> dict:
    """Write the explanation figure of one recording (its first ``max_windows`` windows).

    ``path`` is a recording file (a BIDS ``*_emg.edf`` with its sidecars) or an ``mne.io.Raw``,
    whose EMG channel is explained unless ``channel`` names or numbers another.

    ``target`` is the class whose evidence is shown: a binary model has one logit, that of
    its positive class (``"als"``), the only choice; a multi-class model defaults to the
    class it predicts for the recording, so the figure shows what drove that answer.
    Returns a summary: figure path, target class, per-window P (model class order), each
    window's quality reasons (``qc``, :mod:`alsnet.diagnosis.qc`; flagged windows are shaded
    and panels (c) and (d) show clean windows where there are any), and each scored window's
    ``top_k`` evidence positions in seconds from the start.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.gridspec import GridSpec

    from alsnet.data.mne_io import open_input  # a path, a BIDS file or an mne.io.Raw (issue: MNE/BIDS)
    from alsnet.diagnosis.predict import DISCLAIMER, Predictor, iter_window_chunks

    pred = Predictor(model, backend=backend)
    classes = list(pred.classes)
    if target is not None and target not in classes:
        raise AlsnetError(f"--target {target!r} is not a class of this model ({', '.join(classes)})")
    if pred.task.binary and target not in (None, classes[1]):
        raise AlsnetError(f"a binary model has one logit, that of {classes[1]!r}: its evidence for "
                          f"{target!r} is the negative weights of the {classes[1]!r} figure")
    starts, wins = [], []
    with open_input(path, fs=fs, scale=scale, channel=channel) as source:
        for st, w in iter_window_chunks(source, min(32, max(1, max_windows))):
            starts.append(st)
            wins.append(w)
            if sum(map(len, starts)) >= max_windows:
                break
    starts, wins = np.concatenate(starts)[:max_windows], np.concatenate(wins)[:max_windows]
    ok = np.isfinite(wins).all(axis=1)
    qc = window_qc(wins)
    clean = ok & np.array([not q for q in qc], dtype=bool)
    # Panels (c) and (d) show clean windows where there are any: evidence found on an
    # artefact (a baseline excursion, a clipped burst) says nothing about motor units.
    shown = clean if clean.any() else ok
    if not ok.any():
        raise AlsnetError(f"all {len(ok)} window(s) examined contain invalid samples", source.path)
    proba = np.full((len(wins), len(classes)), np.nan)

    for b in range(0, int(ok.sum()), pred.batch_size):
        idx = np.flatnonzero(ok)[b:b + pred.batch_size]
        proba[idx] = pred.probabilities(wins[idx])
    mean = np.nanmean(proba, axis=0)
    pos = classes[1] if pred.task.binary else target or pred.decide(mean)
    ensemble = len(pred.loaded.members) > 1
    ev_ok = evidence(pred.loaded.members, wins[ok], target=0 if pred.task.binary else classes.index(pos))
    ev: list[list] = [[] for _ in range(len(wins))]
    for i, e in zip(np.flatnonzero(ok), ev_ok):
        ev[i] = e
    p_pos = proba[:, classes.index(pos)]
    gap = int(SNIPPET_MS * 1e-3 * MODEL_FS)
    tops = [_distinct(e, top_k, gap) for e in ev]

    fig = plt.figure(figsize=(13, 13), constrained_layout=True)
    gs = GridSpec(5, 4, figure=fig, height_ratios=[1.2, 0.8, 1.1, 0.9, 0.9])
    sig = wins.reshape(-1)
    t = np.arange(len(sig)) / MODEL_FS + starts[0] / MODEL_FS

    ax = fig.add_subplot(gs[0, :])                                  # (a) recording
    tt, lo, hi = _envelope(sig, t)
    if hi is None:
        ax.plot(tt, lo, lw=0.4, color="0.2")
    else:
        ax.fill_between(tt, lo, hi, color="0.2", lw=0)
    for i, s in enumerate(starts):
        ax.axvline(s / MODEL_FS, color="tab:blue", lw=0.6, alpha=0.5)
        if not ok[i]:
            ax.axvspan(s / MODEL_FS, (s + WINDOW_SAMPLES) / MODEL_FS, color="0.85", zorder=0)
        if qc[i]:
            ax.axvspan(s / MODEL_FS, (s + WINDOW_SAMPLES) / MODEL_FS, color="tab:orange", alpha=0.2, zorder=0)
            ax.text((s + WINDOW_SAMPLES / 2) / MODEL_FS, 1.0, "+".join(qc[i]), transform=ax.get_xaxis_transform(),
                    ha="center", va="bottom", fontsize=7, color="tab:orange")
    mt = [(starts[i] + e[0]) / MODEL_FS for i in range(len(wins)) for e in tops[i]]
    mv = [sig[i * WINDOW_SAMPLES + e[0]] for i in range(len(wins)) for e in tops[i]]
    ax.plot(mt, mv, "v", color="tab:red", ms=6, label=f"top {top_k} evidence positions per window")
    ax.set(ylabel="µV", title=f"(a) {Path(source.path).name}: {len(wins)} windows "
           f"({int((~ok).sum())} dropped for invalid samples, grey); quality: {describe_flags(qc)} (orange)\n")
    ax.legend(loc="upper right", fontsize=8)

    ax2 = fig.add_subplot(gs[1, :], sharex=ax)                      # (b) window probabilities
    centres = (starts + WINDOW_SAMPLES / 2) / MODEL_FS
    if pred.task.binary:
        ax2.bar(centres, p_pos, width=0.9, color=np.where(p_pos >= pred.rule.threshold, "tab:red", "tab:green"),
                hatch=["//" if q else "" for q in qc], edgecolor=["tab:orange" if q else "none" for q in qc])
    else:
        for j, c in enumerate(classes):
            ax2.plot(centres, proba[:, j], "o-", ms=3, label=f"P({c})")
        ax2.legend(loc="upper right", fontsize=8, ncol=len(classes))
    if pred.task.binary:   # the model's decision rule (its card's fitted offset), not 0.5
        ax2.axhline(pred.rule.threshold, color="k", ls="--", lw=0.8,
                    label=f"decision threshold {pred.rule.threshold:.3g}")
        ax2.legend(loc="upper right", fontsize=8)
    ax2.set(ylim=(0, 1), xlabel="time (s)", ylabel=f"P({pos})" if pred.task.binary else "P",
            title=f"(b) window probabilities (calibration: {pred.calibrator.method}"
                  f"{f', {len(pred.loaded.members)}-network mean' if ensemble else ''}); mean P({pos}) = "
                  f"{mean[classes.index(pos)]:.3f} → {pred.decide(mean)}")

    best = int(np.nanargmax(np.where(shown, p_pos, -np.inf)))      # (c) the most target-like clean window
    ax3 = fig.add_subplot(gs[2, :])
    tw = np.arange(WINDOW_SAMPLES) / MODEL_FS * 1e3
    ax3.plot(tw, wins[best], lw=0.4, color="0.2")
    for r, (ti, _ch, w, _m) in enumerate(_distinct(ev[best], 8, gap)):
        ax3.axvspan((ti - RECEPTIVE_FIELD // 2) / MODEL_FS * 1e3, (ti + RECEPTIVE_FIELD // 2) / MODEL_FS * 1e3,
                    color="tab:red" if w > 0 else "tab:green", alpha=0.3)
        ax3.annotate(f"{r + 1}", (ti / MODEL_FS * 1e3, wins[best, ti]), fontsize=7, color="tab:red")
    ax3.set(xlabel="time in window (ms)", ylabel="µV",
            title=f"(c) window {best} (t = {starts[best] / MODEL_FS:.1f} s, P({pos}) = {p_pos[best]:.3f}): "
                  f"receptive fields of the strongest channels (≥ {SNIPPET_MS:g} ms apart) (red: towards {pos})")

    gallery = []                                                    # (d) MUAP gallery
    for i in np.argsort(-np.where(shown, p_pos, -np.inf))[:4]:
        if shown[i]:
            gallery += [(int(i), e) for e in tops[i][:2]]
    for g, (i, (ti, ch, w, m)) in enumerate(gallery[:8]):
        axg = fig.add_subplot(gs[3 + g // 4, g % 4])
        a, b = max(0, ti - gap), min(WINDOW_SAMPLES, ti + gap + 1)
        axg.plot((np.arange(a, b) - ti) / MODEL_FS * 1e3, wins[i, a:b], color="tab:red" if w > 0 else "tab:green")
        axg.axvspan(-RECEPTIVE_FIELD / 2 / MODEL_FS * 1e3, RECEPTIVE_FIELD / 2 / MODEL_FS * 1e3, color="0.9", zorder=0)
        axg.set_title(f"{'(d) ' if g == 0 else ''}win {i} @ {(starts[i] + ti) / MODEL_FS:.3f} s, "
                      f"{f'net {m} ' if ensemble else ''}ch {ch}, w {w:+.2g}", fontsize=8)
        axg.tick_params(labelsize=7)
        axg.set_xlabel("ms", fontsize=7)
        if g % 4 == 0:
            axg.set_ylabel("µV", fontsize=8)
    fig.suptitle(f"ALSNet evidence, model {Path(pred.loaded.path).name} ({pred.loaded.card.get('task')}); "
                 f"(d): ±{SNIPPET_MS:g} ms around the strongest positions of the most {pos}-like windows "
                 "(grey: the 1.9-ms receptive field)", fontsize=10)
    fig.text(0.5, -0.01, DISCLAIMER, ha="center", fontsize=8, style="italic")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return {**pred.describe(), "figure": str(out), "classes": classes, "target": pos, "n_windows": int(len(wins)),
            "n_windows_used": int(ok.sum()), "window_probabilities": proba.tolist(), "qc": qc,
            "evidence": [[{"time_s": (starts[i] + e[0]) / MODEL_FS, "channel": e[1], "weight": e[2],
                           **({"member": e[3]} if ensemble else {})}
                          for e in tops[i]] for i in range(len(wins))]}


__all__ = ["evidence", "explain_recording"]
