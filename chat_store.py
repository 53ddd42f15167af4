"""Where chats live: the `ChatStore` interface and the in-memory store."""

import threading
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

from errors import Conflict
from phone_numbers import mask


@dataclass(frozen=True)
class Chat:
    """Two people texting each other through one virtual number."""

    number: str
    user_a: str
    user_b: str
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    def partner_of(self, participant: str) -> str:
        """Return the other participant's real number."""
        if participant == self.user_a:
            return self.user_b
        if participant == self.user_b:
            return self.user_a
        raise ValueError("not a participant of this chat")

    def to_dict(self) -> dict:
        """Return the chat as the JSON the API answers with."""
        return {
            "id": self.id,
            "userANumber": self.user_a,
            "userBNumber": self.user_b,
            "virtualNumber": self.number,
            "createdAt": self.created_at.isoformat(),
        }


class ChatStore(Protocol):
    """Keeps the active chats; every method is one atomic step."""

    def add(self, chat: Chat) -> None:
        """Keep `chat`, or raise `Conflict` if a participant already has a chat on its number."""

    def find(self, number: str, participant: str) -> Chat | None:
        """Return the chat `participant` has on the virtual `number`, if any."""

    def remove(self, chat_id: str) -> None:
        """Forget the chat with this id (nothing happens if there is none)."""


class MemoryChatStore:
    """Chats in this process's memory, safe under concurrent requests; gone at exit."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._chats: dict[str, Chat] = {}
        self._routes: dict[tuple[str, str], Chat] = {}

    def add(self, chat: Chat) -> None:
        """Keep `chat`, or raise `Conflict` if a participant already has a chat on its number."""
        with self._lock:
            for label, participant in (("userANumber", chat.user_a), ("userBNumber", chat.user_b)):
                if (chat.number, participant) in self._routes:
                    raise Conflict(
                        f"{label} ({mask(participant)}) is already in a chat on the virtual "
                        f"number {mask(chat.number)}; a person has one chat per virtual number."
                    )
            self._chats[chat.id] = chat
            self._routes[chat.number, chat.user_a] = chat
            self._routes[chat.number, chat.user_b] = chat

    def find(self, number: str, participant: str) -> Chat | None:
        """Return the chat `participant` has on the virtual `number`, if any."""
        # One dict read is atomic; the lock only orders the writes.
        return self._routes.get((number, participant))

    def remove(self, chat_id: str) -> None:
        """Forget the chat with this id (nothing happens if there is none)."""
        with self._lock:
            chat = self._chats.pop(chat_id, None)
            if chat is not None:
                del self._routes[chat.number, chat.user_a]
                del self._routes[chat.number, chat.user_b]
