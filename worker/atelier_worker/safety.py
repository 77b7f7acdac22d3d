"""Safety checking of generated images, as a hook the model's catalog entry configures.

A checker looks at a run's images and flags some; flagged images are dropped (never written, never charged) and the
result says how many. `none` means no check runs, and the response says so. No real checker's weights can be
fetched where Atelier is built, so the only checker shipped besides `none` is a test fixture with a known,
testable rule; a model-based checker plugs in here by implementing `SafetyChecker`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from PIL import Image


class SafetyChecker(Protocol):
    name: str

    def flags(self, images: list[Image.Image], seeds: list[int]) -> list[bool]:
        """One verdict per image: True drops it."""
        ...


@dataclass(frozen=True)
class SeedRuleChecker:
    """Test fixture: flags the images whose seed % modulus == remainder. Deterministic, so a test can ask for
    num_outputs=4 from seed 0 and know exactly which image is dropped. Never a production checker."""

    modulus: int
    remainder: int

    @property
    def name(self) -> str:
        return f"fixture:seed-mod:{self.modulus}:{self.remainder}"

    def flags(self, images: list[Image.Image], seeds: list[int]) -> list[bool]:
        return [seed % self.modulus == self.remainder for seed in seeds]


class SafetySpecError(ValueError):
    pass


def load_checker(spec: str | None) -> SafetyChecker | None:
    """`none` (or nothing) → None; `fixture:seed-mod:M:R` → SeedRuleChecker."""
    if spec is None or spec == "none":
        return None
    parts = spec.split(":")
    if len(parts) == 4 and parts[:2] == ["fixture", "seed-mod"]:
        try:
            modulus, remainder = int(parts[2]), int(parts[3])
        except ValueError as exc:
            raise SafetySpecError(f"bad safety checker {spec!r}: M and R must be integers") from exc
        if modulus < 1 or not 0 <= remainder < modulus:
            raise SafetySpecError(f"bad safety checker {spec!r}: need M >= 1 and 0 <= R < M")
        return SeedRuleChecker(modulus, remainder)
    raise SafetySpecError(f"unknown safety checker {spec!r}; known: none, fixture:seed-mod:M:R")
