"""Errors that carry a one-line message naming the input and the fix."""

from __future__ import annotations

from pathlib import Path

from pydantic import ValidationError


class StoryHashError(Exception):
    """Base class: an input problem the user can fix; the message is one line."""


class VideoReadError(StoryHashError):
    """A video or frame folder cannot be read."""

    def __init__(self, path: str | Path, reason: str, fix: str = "") -> None:
        self.path = str(path)
        self.reason = reason
        message = f"cannot read video {self.path}: {reason}"
        if fix:
            message += f" ({fix})"
        super().__init__(message)


class ManifestError(StoryHashError):
    """A manifest or a directory scan does not describe a usable corpus."""


class TransformError(StoryHashError):
    """ffmpeg failed to produce a transformed video."""


class ParamsError(StoryHashError):
    """A parameter file is missing, malformed or has unknown keys."""


class DownloadError(StoryHashError):
    """A download failed, or its result does not match the expected size or checksum."""


class IndexFileError(StoryHashError):
    """A saved index folder is missing, damaged, or was made another way than the query."""


class FolderError(StoryHashError):
    """A cache or output folder cannot be created or written."""


class Interrupted(StoryHashError):
    """The user stopped a run (Ctrl-C); the message says where and how to resume."""


def problems(exc: ValidationError) -> list[tuple[str, str]]:
    """Each problem of a pydantic validation error as (dotted location, message), the message
    without pydantic's "Value error, " and an extra key called an unknown key."""
    return [
        (
            ".".join(str(p) for p in e["loc"]),
            "unknown key"
            if e["type"] == "extra_forbidden"
            else e["msg"].removeprefix("Value error, "),
        )
        for e in exc.errors()
    ]
