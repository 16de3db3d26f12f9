"""The similarity matrices behind a comparison table, committed beside it so that a reader
can recompute every number (``tables/<name>_scores.npz``).

A :class:`Scores` file holds, for one gallery, the query ids, each query's source video
(its true reference, when that is in the gallery), the gallery ids and one float32 queries ×
gallery matrix per method (NaN = not scored). It is a zip of ``.npy`` arrays with fixed
timestamps, stored uncompressed, so the same scores give the same bytes on any platform.
"""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .cache import atomic_path
from .detection import truth_matrix

_FIXED_TIME = (1980, 1, 1, 0, 0, 0)


@dataclass(frozen=True)
class Scores:
    query_ids: list[str]
    source_ids: list[str]  # each query's source video
    gallery_ids: list[str]
    matrices: dict[str, np.ndarray]  # method -> queries × gallery, float32

    @property
    def truth(self) -> np.ndarray:
        return truth_matrix(self.source_ids, self.gallery_ids)

    def save(self, path: Path) -> None:
        arrays = {
            "query_ids": np.array(self.query_ids),
            "source_ids": np.array(self.source_ids),
            "gallery_ids": np.array(self.gallery_ids),
            "methods": np.array(list(self.matrices)),
        }
        arrays |= {
            f"method_{i}": m.astype(np.float32) for i, m in enumerate(self.matrices.values())
        }
        with atomic_path(path) as tmp, zipfile.ZipFile(tmp, "w") as z:
            for name, array in arrays.items():
                buffer = io.BytesIO()
                np.lib.format.write_array(buffer, array, allow_pickle=False)
                info = zipfile.ZipInfo(f"{name}.npy", _FIXED_TIME)
                info.create_system, info.external_attr = 3, 0o644 << 16
                z.writestr(info, buffer.getvalue())

    @classmethod
    def load(cls, path: Path) -> Scores:
        with np.load(path, allow_pickle=False) as z:
            methods = z["methods"].tolist()
            return cls(
                z["query_ids"].tolist(),
                z["source_ids"].tolist(),
                z["gallery_ids"].tolist(),
                {m: z[f"method_{i}"] for i, m in enumerate(methods)},
            )
