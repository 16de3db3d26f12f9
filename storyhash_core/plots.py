"""Pictures of the study: figures (matplotlib/seaborn, each a Figure saved as PNG and PDF),
failure sheets and track strips (RGB arrays saved as JPEG/PNG)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from .cache import ArtifactCache, atomic_path, spec_key
from .video import sample_frames

if TYPE_CHECKING:
    from .tracking import Tracks

THUMBNAIL_VERSION = 2  # 2: frames converted to RGB by video.to_rgb (1: by swscale, CPU-dependent)


def _subplots(nrows: int = 1, ncols: int = 1, **kwargs) -> tuple[Figure, object]:
    """A figure of its own (no pyplot state: nothing to close, no backend to pick), and its axes."""
    figsize = kwargs.pop("figsize")
    fig = Figure(figsize=figsize)
    return fig, fig.subplots(nrows, ncols, **kwargs)


def save_figure(fig: Figure, stem: Path) -> list[Path]:
    """Write ``stem.png`` (150 dpi) and ``stem.pdf``."""
    out = []
    for fmt in ("png", "pdf"):
        path = stem.with_suffix(f".{fmt}")
        with atomic_path(path) as tmp:
            # no creation date in a PDF: a rerun writes the same bytes
            metadata = {"CreationDate": None} if fmt == "pdf" else {}
            fig.savefig(tmp, bbox_inches="tight", format=fmt, dpi=150, metadata=metadata)
        out.append(path)
    return out


def ablation_figure(ablation: pd.DataFrame) -> Figure:
    """Detection (R@1) next to 'confidence' (mean similarity) and margin, ours vs the paper's."""
    fig, axes = _subplots(1, 3, figsize=(13, 3.8))
    x = np.arange(len(ablation))
    panels = [
        ("recall_at_1", "paper_recall_at_1", "Recall@1 (%)"),
        ("sim_mean", "paper_sim_mean", "mean similarity to true reference"),
    ]
    for ax, (ours, paper, label) in zip(axes[:2], panels, strict=True):
        ax.bar(x - 0.2, ablation[ours], 0.4, label="this study")
        if paper in ablation and ablation[paper].notna().any():
            ax.bar(x + 0.2, ablation[paper], 0.4, label="paper", color="0.65")
        ax.set_xticks(x, ablation["configuration"], rotation=20)
        ax.set_ylabel(label)
        ax.legend(fontsize=8)
    axes[2].bar(x, ablation["margin_mean"], 0.5, color="tab:green")
    axes[2].axhline(0, color="k", lw=0.8)
    axes[2].set_xticks(x, ablation["configuration"], rotation=20)
    axes[2].set_ylabel("mean margin (true − best wrong)")
    fig.suptitle("Detection vs similarity vs separation, per configuration")
    fig.tight_layout()
    return fig


def per_transform_heatmap(
    table1: pd.DataFrame, value: str = "recall_at_1", key: str = "configuration"
) -> Figure:
    """``value`` per transform (rows) and ``key`` (columns: configurations or methods)."""
    data = table1.pivot(index="transform", columns=key, values=value)
    data = data.loc[list(dict.fromkeys(table1["transform"])), list(dict.fromkeys(table1[key]))]
    width = 1.6 + (1.4 if data.shape[1] < 6 else 0.75) * data.shape[1]
    fig, ax = _subplots(figsize=(width, 0.35 * len(data) + 1.2 + 0.08 * max(map(len, data))))
    import seaborn as sns  # only here, and slow to import

    sns.heatmap(
        data,
        annot=True,
        fmt=".1f" if value.startswith("recall") else ".3f",
        cmap="viridis",
        ax=ax,
        cbar_kws={"label": value},
    )
    ax.set_title(f"{value} per transform and {key}")
    fig.tight_layout()
    return fig


def flip_figure(flips: pd.DataFrame) -> Figure:
    fig, axes = _subplots(1, 2, figsize=(10, 3.6))
    x = np.arange(len(flips))
    for ax, metric, label in (
        (axes[0], "recall_at_1", "Recall@1 (%)"),
        (axes[1], "sim_mean", "mean similarity"),
    ):
        ax.bar(x - 0.2, flips[f"{metric}_flip_h"], 0.4, label="flip_h")
        ax.bar(x + 0.2, flips[f"{metric}_flip_v"], 0.4, label="flip_v")
        ax.set_xticks(x, flips["configuration"], rotation=20)
        ax.set_ylabel(label)
        ax.legend(fontsize=8)
    fig.suptitle("Horizontal vs vertical flip")
    fig.tight_layout()
    return fig


def rotation_figure(
    sweep: pd.DataFrame,
    by: str = "configuration",
    right: tuple[str, str] = ("sim_mean", "mean similarity to true reference"),
    title: str = "Rotation sweep",
) -> Figure:
    """R@1 (left) and another measure (right) against rotation angle, one line per ``by`` value."""
    fig, axes = _subplots(1, 2, figsize=(10, 3.6))
    for name, part in sweep.groupby(by, sort=False):
        axes[0].plot(part["angle"], part["recall_at_1"], marker="o", label=name)
        axes[1].plot(part["angle"], part[right[0]], marker="o", label=name)
    axes[0].set_ylabel("Recall@1 (%)")
    axes[1].set_ylabel(right[1])
    for ax in axes:
        ax.set_xlabel("rotation (degrees, clockwise)")
        ax.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def middle_frame(path: str | Path, folder_fps: float = 24.0) -> np.ndarray:
    s = sample_frames(path, fps=4.0, folder_fps=folder_fps)
    return s.frames[len(s) // 2]


def thumbnail(path: str | Path, height: int, cache: ArtifactCache) -> np.ndarray:
    """The middle frame of a video scaled to ``height`` pixels, cached by the video's content."""
    from .opencv import cv2

    path = cache.fetch(path)  # a query video is a cache entry
    out = cache.path(
        "thumbnails",
        spec_key(
            source=cache.digest(path), height=height, frame="middle", version=THUMBNAIL_VERSION
        ),
        ".png",
    )
    if cache.exists(out):
        return cv2.cvtColor(cv2.imread(str(cache.fetch(out))), cv2.COLOR_BGR2RGB)
    frame = middle_frame(path)
    width = round(frame.shape[1] * height / frame.shape[0])
    thumb = cv2.resize(frame, (width, height), interpolation=cv2.INTER_AREA)
    save_image(thumb, out)
    cache.publish(out)
    return thumb


def failure_sheet(
    misses: pd.DataFrame, paths: dict[str, str], k: int, cache: ArtifactCache, height: int = 80
) -> np.ndarray:
    """One row per failure: query, the reference ranked first, the true reference (middle
    frames, :func:`thumbnail`), under a line with ids, the true reference's rank and both
    similarities."""
    from .opencv import cv2

    rows = []
    for m in misses.itertuples():
        tiles = [
            thumbnail(paths[v], height, cache) for v in (m.query_id, m.top1_id, m.reference_id)
        ]
        strip = np.concatenate(
            [np.pad(t, ((0, 0), (0, 4), (0, 0)), constant_values=255) for t in tiles], axis=1
        )
        band = np.full((18, strip.shape[1], 3), 255, np.uint8)
        text = (
            f"{m.query_id} | rank-1 {m.top1_id} {m.top1_sim:.3f}"
            f" | true rank {rank_label(m.rank, k)}"
            f" sim {m.sim_true:.3f}"
        )
        cv2.putText(band, text, (2, 13), cv2.FONT_HERSHEY_SIMPLEX, 0.38, (0, 0, 0), 1, cv2.LINE_AA)
        rows.append(np.concatenate([band, strip, np.full((6, strip.shape[1], 3), 255, np.uint8)]))
    width = max(r.shape[1] for r in rows)
    return np.concatenate(
        [np.pad(r, ((0, 0), (0, width - r.shape[1]), (0, 0)), constant_values=255) for r in rows]
    )


def contact_sheet(tiles: dict[str, np.ndarray], columns: int = 4) -> np.ndarray:
    """Equal-height images in rows of ``columns``, each under its label."""
    from .opencv import cv2

    labelled = []
    for label, tile in tiles.items():
        band = np.full((18, tile.shape[1], 3), 255, np.uint8)
        cv2.putText(band, label, (2, 13), cv2.FONT_HERSHEY_SIMPLEX, 0.42, (0, 0, 0), 1, cv2.LINE_AA)
        labelled.append(
            np.pad(np.concatenate([band, tile]), ((0, 6), (0, 6), (0, 0)), constant_values=255)
        )
    width = max(t.shape[1] for t in labelled)
    height = max(t.shape[0] for t in labelled)
    cells = [
        np.pad(t, ((0, height - t.shape[0]), (0, width - t.shape[1]), (0, 0)), constant_values=255)
        for t in labelled
    ]
    cells += [np.full_like(cells[0], 255)] * (-len(cells) % columns)
    rows = [np.concatenate(cells[i : i + columns], axis=1) for i in range(0, len(cells), columns)]
    return np.concatenate(rows)


def save_image(image: np.ndarray, path: Path) -> Path:
    """An RGB array as a JPEG or PNG file (by suffix), written atomically."""
    from .opencv import cv2

    with atomic_path(path) as tmp:
        quality = [cv2.IMWRITE_JPEG_QUALITY, 85] if path.suffix.lower() in (".jpg", ".jpeg") else []
        ok, data = cv2.imencode(path.suffix, cv2.cvtColor(image, cv2.COLOR_RGB2BGR), quality)
        tmp.write_bytes(data.tobytes())
    return path


def score_distributions(
    matrices: dict[str, np.ndarray], truth: np.ndarray, bins: int = 60
) -> Figure:
    """Per configuration: similarity of true-copy pairs vs every other pair (densities), with
    the median of each; separation, not the height of the positives, is what detection needs."""
    fig, axes = _subplots(1, len(matrices), figsize=(4.2 * len(matrices), 3.4), squeeze=False)
    for ax, (name, sims) in zip(axes[0], matrices.items(), strict=True):
        scored = ~np.isnan(sims)
        pos, neg = sims[truth & scored], sims[~truth & scored]
        edges = np.linspace(min(pos.min(), neg.min()), max(pos.max(), neg.max()), bins + 1)
        for values, label, colour in (
            (neg, "non-copies", "tab:red"),
            (pos, "true copies", "tab:blue"),
        ):
            ax.hist(
                values,
                edges,
                density=True,
                alpha=0.55,
                color=colour,
                label=f"{label} (n={len(values)})",
            )
            ax.axvline(np.median(values), color=colour, lw=1, ls="--")
        ax.set_title(name)
        ax.set_xlabel("similarity")
        ax.legend(fontsize=7)
    axes[0][0].set_ylabel("density")
    fig.suptitle("Scores of true copies vs non-copies (dashed: medians)")
    fig.tight_layout()
    return fig


KIND_COLOURS = {"early": "tab:blue", "late": "tab:orange", "rerank": "tab:green"}
SCALING_STYLES = {"minmax": "-", "zscore": "--", "rank": ":"}
KIND_WIDTHS = {"early": 3.2, "late": 2.2, "rerank": 1.2}  # drawn over each other, all visible
KIND_MARKERS = {"early": "o", "late": "s", "rerank": "^"}


def fusion_weights_figure(
    curve: pd.DataFrame, weights: pd.DataFrame, heldout: pd.DataFrame
) -> Figure:
    """Held-out R@1 and μAP against the action weight, one thick line per fusion kind (scaling
    and graph weight chosen on the training folds), one row of panels per kind of tracks;
    thin lines: each fixed weighting at graph weight 0 (its scaling by line style; the axis
    follows the held-out curves, so a fixed weighting far below them leaves the panel); dashed
    black: visual alone."""
    tracks = list(dict.fromkeys(curve["tracks"]))
    fig, axes = _subplots(len(tracks), 2, figsize=(11, 3.8 * len(tracks)), squeeze=False)
    for row, name in zip(axes, tracks, strict=True):
        mine = curve[curve["tracks"] == name]
        fixed = weights[(weights["tracks"] == name) & (weights["w_g"] == 0)]
        visual = heldout[heldout["tracks"] == name].iloc[0]
        for ax, value, label in (
            (row[0], "recall_at_1", "Recall@1 (%)"),
            (row[1], "micro_ap", "μAP"),
        ):
            for (kind, scaling), part in fixed.groupby(["kind", "scaling"], sort=False):
                ax.plot(
                    part["w_a"],
                    part[value],
                    ls=SCALING_STYLES.get(scaling, "-"),
                    color=KIND_COLOURS.get(kind),
                    lw=0.8,
                    alpha=0.45,
                )
            for kind, part in mine.groupby("kind", sort=False):
                ax.plot(
                    part["w_a"],
                    part[value],
                    color=KIND_COLOURS.get(kind),
                    lw=KIND_WIDTHS.get(kind, 2.0),
                    marker=KIND_MARKERS.get(kind, "o"),
                    alpha=0.85,
                )
            ax.axhline(visual[f"visual_{value}"], color="k", lw=1, ls="--")
            # the held-out curves set the scale; a fixed weighting may fall below it
            shown = [*mine[value], visual[f"visual_{value}"]]
            span = max(shown) - min(shown) or abs(max(shown)) * 0.01 or 0.01
            ax.set_ylim(min(shown) - 0.08 * span, max(shown) + 0.08 * span)
            ax.set_xscale("symlog", linthresh=0.02, linscale=0.5)
            ax.set_xlim(0, mine["w_a"].max() * 1.05)
            ax.set_xlabel("action weight w_a")
            ax.set_ylabel(label)
            ax.set_title(f"{name} tracks: {label.split(' ')[0]}")
    kinds = list(dict.fromkeys(curve["kind"]))
    handles = [
        Line2D(
            [],
            [],
            color=KIND_COLOURS.get(k),
            lw=KIND_WIDTHS.get(k, 2.0),
            marker=KIND_MARKERS.get(k, "o"),
        )
        for k in kinds
    ]
    labels = [f"{k}, held out" for k in kinds]
    for scaling, style in SCALING_STYLES.items():
        handles.append(Line2D([], [], color="0.5", lw=0.8, ls=style))
        labels.append(f"fixed, {scaling} scaling, w_g 0")
    handles.append(Line2D([], [], color="k", lw=1, ls="--"))
    labels.append("visual alone")
    fig.legend(handles, labels, loc="lower center", ncol=4, fontsize=8, frameon=False)
    fig.suptitle(
        "Held out: per kind and action weight, scaling and graph weight chosen on the other folds"
    )
    fig.tight_layout(rect=(0, 0.07 / len(tracks), 1, 1))
    return fig


def reliability_figure(bins: pd.DataFrame, methods: list[str]) -> Figure:
    """Observed frequency of a correct top hit against the predicted probability, one panel
    per calibrator, one line per method (marker area: the bin's queries)."""
    calibrators = list(dict.fromkeys(bins["calibrator"]))
    fig, axes = _subplots(1, len(calibrators), figsize=(4.2 * len(calibrators), 3.8), squeeze=False)
    for ax, calibrator in zip(axes[0], calibrators, strict=True):
        ax.plot([0, 1], [0, 1], color="0.6", lw=1, ls="--")
        for method in methods:
            part = bins[(bins["calibrator"] == calibrator) & (bins["method"] == method)]
            ax.plot(part["predicted"], part["observed"], marker="o", label=method, alpha=0.8)
            ax.scatter(part["predicted"], part["observed"], s=4 + part["count"], alpha=0.3)
        ax.set_title(calibrator if calibrator != "raw" else "raw similarity as probability")
        ax.set_xlabel("predicted P(top hit is the copy)")
        ax.set_xlim(0, 1)
        ax.set_ylim(-0.02, 1.02)
    axes[0][0].set_ylabel("observed frequency")
    axes[0][0].legend(fontsize=8)
    fig.suptitle("Reliability of the top hit's confidence (held-out folds)")
    fig.tight_layout()
    return fig


def rotation_mitigation_figure(table: pd.DataFrame) -> Figure:
    """R@1 and μAP against rotation angle, with and without rotated query variants."""
    return rotation_figure(
        table[table["transform"] != "overall"],
        "method",
        ("micro_ap", "μAP (with distractor queries)"),
        "Rotation sweep with and without rotated query variants",
    )


def track_strip(frames: np.ndarray, tracks: Tracks, n: int = 4, height: int = 180) -> np.ndarray:
    """``n`` evenly spaced tracked frames side by side, with each object's box, id and path."""
    from .opencv import cv2

    picks = np.linspace(0, len(frames) - 1, min(n, len(frames))).round().astype(int)
    tiles = []
    for f in picks:
        tile = np.ascontiguousarray(frames[f]).copy()
        for obj in np.unique(tracks.object_id):
            colour = tuple(int(c) for c in _PALETTE[int(obj) % len(_PALETTE)])
            mine = (tracks.object_id == obj) & (tracks.frame <= f)
            path = tracks.centroid[mine][np.argsort(tracks.frame[mine])].round().astype(np.int32)
            if len(path) > 1:
                cv2.polylines(tile, [path], False, colour, 2)
            now = mine & (tracks.frame == f)
            for x0, y0, x1, y1 in tracks.box[now].round().astype(int):
                cv2.rectangle(tile, (x0, y0), (x1, y1), colour, 2)
                cv2.putText(
                    tile, str(int(obj)), (x0 + 2, y0 + 14), cv2.FONT_HERSHEY_SIMPLEX, 0.5, colour, 1
                )
        scale = height / tile.shape[0]
        tiles.append(
            cv2.resize(tile, (round(tile.shape[1] * scale), height), interpolation=cv2.INTER_AREA)
        )
    return np.concatenate(tiles, axis=1)


_PALETTE = np.array(
    [
        (230, 25, 75),
        (60, 180, 75),
        (255, 225, 25),
        (0, 130, 200),
        (245, 130, 48),
        (145, 30, 180),
        (70, 240, 240),
        (240, 50, 230),
        (210, 245, 60),
        (250, 190, 212),
    ]
)


def rank_label(rank: float, k: int) -> str:
    """A rank for display: the number, or '> k' when the true reference was not retrieved."""
    return f"{int(rank)}" if rank == rank else f"> {k}"


def partial_detection_figure(bins: pd.DataFrame) -> Figure:
    """Share of copied pairs found at each method's FPR-1 % threshold, against the copied
    share of the query."""
    fig, ax = _subplots(figsize=(6.5, 3.8))
    for method, part in bins.groupby("method", sort=False):
        centres = (part["share_from"] + part["share_to"]) / 2
        ax.plot(100 * centres, 100 * part["detected"], marker="o", label=method)
    ax.set_xlabel("copied share of the query (%, bin centres)")
    ax.set_ylabel("copied pairs found (%)")
    ax.set_ylim(-2, 102)
    ax.legend()
    ax.set_title("Detection of partial copies at FPR 1 %")
    fig.tight_layout()
    return fig


def partial_matrix_figure(sims, query_times, ref_times, truth, predicted) -> Figure:
    """One query × reference frame-similarity matrix, with the true segment (white, dashed)
    and the predicted ones (red)."""
    from matplotlib.patches import Rectangle

    fig, ax = _subplots(figsize=(6.5, 5))
    step_q = float(np.median(np.diff(query_times))) if len(query_times) > 1 else 0.5
    step_r = float(np.median(np.diff(ref_times))) if len(ref_times) > 1 else 0.5
    extent = (0, ref_times[-1] + step_r, query_times[-1] + step_q, 0)
    shown = ax.imshow(sims, extent=extent, aspect="auto", cmap="viridis")
    fig.colorbar(shown, ax=ax, label="frame similarity")
    boxes = [(truth, "white", "--", "true copy")] + [
        (p, "red", "-", "predicted") for p in predicted
    ]
    for i, (m, colour, style, label) in enumerate(boxes):
        ax.add_patch(
            Rectangle(
                (m.ref_start, m.query_start),
                m.ref_end - m.ref_start,
                m.query_end - m.query_start,
                fill=False,
                ec=colour,
                ls=style,
                lw=2,
                label=label if i < 2 else None,
            )
        )
    ax.set_xlabel(f"reference {truth.ref_id} (s)")
    ax.set_ylabel(f"query {truth.query_id} (s)")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    return fig
