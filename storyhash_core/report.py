"""Tables out (CSV, Markdown, LaTeX), the paper's reported numbers in, and pictures of tracks."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from .cache import atomic_path
from .tracking import Tracks

# The paper's configuration names -> this study's
PAPER_CONFIGURATIONS = {"fusion": "fusion", "clip": "visual_padded", "action": "action_padded"}


def write_table(df: pd.DataFrame, stem: Path, formats: tuple[str, ...] = ("csv",), digits: int = 4) -> None:
    """Write ``df`` as ``stem.csv`` (full precision) and, if asked, ``.md`` / ``.tex`` (rounded)."""
    writers = {
        "csv": lambda d, f: d.to_csv(f, index=False),
        "md": lambda d, f: f.write_text(d.round(digits).to_markdown(index=False) + "\n"),
        "tex": lambda d, f: f.write_text(d.round(digits).to_latex(index=False, float_format=f"%.{digits}f")),
    }
    for fmt in formats:
        with atomic_path(stem.with_suffix(f".{fmt}")) as tmp:
            writers[fmt](df, tmp)


def paper_table1(path: Path) -> pd.DataFrame:
    """The paper's Table 1 (R@1 %, average similarity) as rows (transform, configuration, ...)."""
    data = json.loads(Path(path).read_text())["paper_table1"]
    wide = pd.DataFrame(data["rows"], columns=data["columns"])
    rows = []
    for paper_name, ours in PAPER_CONFIGURATIONS.items():
        rows.append(pd.DataFrame({
            "transform": wide["transform"],
            "configuration": ours,
            "paper_recall_at_1": wide[f"recall_at_1_{paper_name}"],
            "paper_sim_mean": wide[f"avg_sim_{paper_name}"],
        }))
    return pd.concat(rows, ignore_index=True)


def beside_paper(table: pd.DataFrame, paper: pd.DataFrame) -> pd.DataFrame:
    """Our per-transform R@1 and mean similarity next to the paper's, where the paper has them."""
    ours = table[["configuration", "transform", "queries", "recall_at_1", "sim_mean"]]
    return ours.merge(paper, on=["configuration", "transform"], how="left")


def track_strip(frames: np.ndarray, tracks: Tracks, n: int = 4, height: int = 180) -> np.ndarray:
    """``n`` evenly spaced tracked frames side by side, each object's box, id and path so far drawn."""
    import cv2

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
                cv2.putText(tile, str(int(obj)), (x0 + 2, y0 + 14), cv2.FONT_HERSHEY_SIMPLEX, 0.5, colour, 1)
        scale = height / tile.shape[0]
        tiles.append(cv2.resize(tile, (round(tile.shape[1] * scale), height), interpolation=cv2.INTER_AREA))
    return np.concatenate(tiles, axis=1)


_PALETTE = np.array([(230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48),
                     (145, 30, 180), (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212)])
