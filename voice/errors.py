"""Errors the voice package raises for bad input or missing hardware.

Their text is one line meant for the user: it names the thing and the problem.
"""

from __future__ import annotations

from pathlib import Path


class VoiceError(Exception):
    """Base class: a problem a user can act on (never a bug)."""


class AudioFileError(VoiceError):
    """An audio file that cannot be used: missing, a directory, corrupt, empty..."""

    def __init__(self, path: Path | str, problem: str) -> None:
        self.path = Path(path)
        self.problem = problem
        super().__init__(f"{path}: {problem}")


class AudioDeviceError(VoiceError):
    """No usable sound device (none present, PortAudio missing, device vanished)."""


class ModelLoadError(VoiceError):
    """An engine could not load its model files."""
