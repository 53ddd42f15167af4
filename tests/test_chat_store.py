"""The contract every chat store keeps (one store so far: in memory)."""

import threading

import pytest

from chat_store import Chat, MemoryChatStore
from errors import Conflict
from tests.support import ALICE, BOB, CAROL, VIRTUAL

OTHER_NUMBER = "447700900999"


@pytest.fixture(params=["memory"])
def store(request):
    return {"memory": MemoryChatStore}[request.param]()


def test_a_chat_is_found_by_either_participant_on_its_number(store):
    chat = Chat(number=VIRTUAL, user_a=ALICE, user_b=BOB)
    store.add(chat)
    assert store.find(VIRTUAL, ALICE) == chat
    assert store.find(VIRTUAL, BOB) == chat
    assert chat.partner_of(ALICE) == BOB
    assert chat.partner_of(BOB) == ALICE


def test_nothing_is_found_for_a_stranger_or_on_another_number(store):
    store.add(Chat(number=VIRTUAL, user_a=ALICE, user_b=BOB))
    assert store.find(VIRTUAL, CAROL) is None
    assert store.find(OTHER_NUMBER, ALICE) is None


@pytest.mark.parametrize(
    ("user_a", "user_b", "field"),
    [(ALICE, CAROL, "userANumber"), (CAROL, ALICE, "userBNumber"), (CAROL, BOB, "userBNumber")],
)
def test_a_participant_has_one_chat_per_number(store, user_a, user_b, field):
    first = Chat(number=VIRTUAL, user_a=ALICE, user_b=BOB)
    store.add(first)
    with pytest.raises(Conflict, match=f"{field} .* already in a chat"):
        store.add(Chat(number=VIRTUAL, user_a=user_a, user_b=user_b))
    assert store.find(VIRTUAL, CAROL) is None
    assert store.find(VIRTUAL, ALICE) == first


def test_the_same_person_may_chat_on_another_number(store):
    store.add(Chat(number=VIRTUAL, user_a=ALICE, user_b=BOB))
    other = Chat(number=OTHER_NUMBER, user_a=ALICE, user_b=CAROL)
    store.add(other)
    assert store.find(OTHER_NUMBER, ALICE) == other


def test_a_removed_chat_routes_nothing_and_frees_its_people(store):
    chat = Chat(number=VIRTUAL, user_a=ALICE, user_b=BOB)
    store.add(chat)
    store.remove(chat.id)
    assert store.find(VIRTUAL, ALICE) is None
    store.remove(chat.id)  # a second removal changes nothing
    store.add(Chat(number=VIRTUAL, user_a=BOB, user_b=CAROL))


def test_a_chat_is_not_its_own_participant():
    with pytest.raises(ValueError, match="not a participant"):
        Chat(number=VIRTUAL, user_a=ALICE, user_b=BOB).partner_of(CAROL)


def test_concurrent_adds_for_one_person_leave_exactly_one_chat(store):
    rivals = [f"4477009002{n:02d}" for n in range(16)]
    barrier = threading.Barrier(len(rivals))
    won, lost = [], []

    def add(partner: str) -> None:
        barrier.wait()
        try:
            store.add(Chat(number=VIRTUAL, user_a=ALICE, user_b=partner))
            won.append(partner)
        except Conflict:
            lost.append(partner)

    threads = [threading.Thread(target=add, args=(rival,)) for rival in rivals]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(won) == 1
    assert len(lost) == len(rivals) - 1
    assert store.find(VIRTUAL, ALICE).partner_of(ALICE) == won[0]
    assert all(store.find(VIRTUAL, loser) is None for loser in lost)
