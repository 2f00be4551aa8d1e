"""Guest-side files (scripts that run inside containers and VMs), shipped with the package."""

from pathlib import Path

FILES_DIR = Path(__file__).parent


def file_bytes(name: str) -> bytes:
    return (FILES_DIR / name).read_bytes()
