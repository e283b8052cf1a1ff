"""Named actions behind the rater pages; each one owns its database transaction.

Views validate input, call one of these and render the result, so the rules
(who may vote, which pair comes next, who joins which cohort) live here once.
"""

from comparisons.actions.common import ActionError, EndState, get_membership
from comparisons.actions.joining import (
    InvalidParticipant,
    JoinResult,
    Participant,
    join_cohort,
    participant_from_query,
)
from comparisons.actions.serving import Serving, serve_comparison
from comparisons.actions.voting import VoteResult, record_judgment

__all__ = [
    "ActionError",
    "EndState",
    "InvalidParticipant",
    "JoinResult",
    "Participant",
    "Serving",
    "VoteResult",
    "get_membership",
    "join_cohort",
    "participant_from_query",
    "record_judgment",
    "serve_comparison",
]
