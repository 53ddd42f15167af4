"""The rules every store applies inside its atomic steps: which number a new chat takes, and how
much of a long text may wait.
"""

import random
from collections.abc import Mapping, Sequence

from private_sms.chats import Part, in_order
from private_sms.errors import Conflict, InvalidRequest
from private_sms.phone_numbers import mask

# What one text may be: Vonage sends up to 3,200 characters in one go. A sender's long texts
# may keep this many parts waiting at once: every part of the longest possible text.
MAX_JOINED_TEXT = 3200
MAX_WAITING_PARTS = 255
# What the dry run keeps of the texts it sent, for the console's phone simulator: each phone's
# latest, of the latest in all.
SENT_PER_PHONE = 50
SENT_IN_ALL = 50_000


def check_part_fits(part: Part, waiting: Sequence[Part], waiting_of_sender: int) -> None:
    """Raise `InvalidRequest` if keeping `part` would exceed what a long text may be."""
    if part.key in {p.key for p in waiting}:
        return
    joined = in_order([*waiting, part])
    # A part that completes its text frees the others rather than adding one that waits.
    if waiting_of_sender >= MAX_WAITING_PARTS and len(joined) < part.total:
        raise InvalidRequest(
            "concat-part",
            f"is one part too many: this sender has {MAX_WAITING_PARTS} parts of long texts "
            "waiting already",
        )
    if sum(len(p.text) for p in joined) > MAX_JOINED_TEXT:
        raise InvalidRequest(
            "text",
            f"makes its long text longer than the {MAX_JOINED_TEXT} characters one text may be",
        )


def pair_conflict(user_a: str, user_b: str, chat_id: str, number: str) -> Conflict:
    """The error for two people who already have an active chat together."""
    return Conflict(
        f"userANumber ({mask(user_a)}) and userBNumber ({mask(user_b)}) already have an active "
        f"chat, {chat_id}, on the virtual number {mask(number)}."
    )


def no_free_number(user_a: str, user_b: str, pool_size: int) -> Conflict:
    """The error for two people who, between them, are busy on every number of the pool."""
    pool = {1: "the virtual number", 2: "both virtual numbers"}.get(
        pool_size, f"all {pool_size} virtual numbers"
    )
    return Conflict(
        f"No virtual number is free for userANumber ({mask(user_a)}) and userBNumber "
        f"({mask(user_b)}): between them they already have active chats on {pool} of the "
        "pool, and a person has one chat per number. End one of those chats or add numbers "
        "to VONAGE_NUMBERS."
    )


def pick_free_number(
    pool: Sequence[str], user_a: str, user_b: str, routes: Mapping[tuple[str, str], str]
) -> str:
    """Return a pool number on which neither person has an active chat.

    `routes` maps (number, participant) to the active chat routed there, for at least these
    two people. The number is picked at random among the free ones, so that chats spread
    over the pool (and over Vonage's per-number limits). Raises `Conflict` when the two
    already chat together, or no number is free.
    """
    free = []
    for number in pool:
        chat_of_a, chat_of_b = routes.get((number, user_a)), routes.get((number, user_b))
        if chat_of_a is not None and chat_of_a == chat_of_b:
            raise pair_conflict(user_a, user_b, chat_of_a, number)
        if chat_of_a is None and chat_of_b is None:
            free.append(number)
    if not free:
        raise no_free_number(user_a, user_b, len(pool))
    return random.choice(free)
