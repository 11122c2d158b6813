"""Nothing false is said: the request gate (actions and facts ATLAS has no means for)
and the answer guard (false claims, never-say, loops and rambling cut before TTS).

The turn flow calls these; they never import it.
"""

from atlas.honesty.claims import ClaimDetector, claim_in
from atlas.honesty.gate import CapabilityGate, RequestStage
from atlas.honesty.guard import AnswerGuard, GuardPolicy, GuardReport

__all__ = [
    "AnswerGuard",
    "CapabilityGate",
    "ClaimDetector",
    "GuardPolicy",
    "GuardReport",
    "RequestStage",
    "claim_in",
]
