"""Exponential backoff with full jitter: the one retry pause of every AWS caller in the project.

AWS's guidance for throttling and transient errors ("Exponential Backoff And Jitter", AWS Architecture
Blog): pause a random time in ``[0, min(cap, base * 2 ** attempt)]`` before retry ``attempt + 1``, so
callers that failed together do not retry together. Pure: the randomness and the clock are the caller's.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Backoff:
    """Pauses before retries; ``attempt`` counts the attempts already made (1 after the first failure)."""

    base_seconds: float = 0.05
    cap_seconds: float = 2.0
    jitter: bool = True
    random: random.Random = field(default_factory=random.Random, compare=False, repr=False)

    def ceiling(self, attempt: int) -> float:
        """The longest pause before retry ``attempt + 1``."""
        # 2 ** attempt overflows a float near attempt 1024; the cap is reached long before.
        growth: float = 2.0 ** min(attempt, 64)
        return min(self.cap_seconds, self.base_seconds * growth)

    def pause(self, attempt: int) -> float:
        """The pause before retry ``attempt + 1``: uniform in ``[0, ceiling]``, or the ceiling itself
        without jitter (for a single caller, where spreading retries out buys nothing)."""
        ceiling = self.ceiling(attempt)
        return self.random.uniform(0, ceiling) if self.jitter else ceiling
