"""What the tests share: test numbers, Vonage's canned answers, and the mocked SMS API."""

import json
from collections import deque
from pathlib import Path
from urllib.parse import parse_qsl

import responses

DATA = Path(__file__).parent / "data"
SMS_API = "https://rest.nexmo.com/sms/json"
VIRTUAL = "447700900000"
ALICE = "447700900001"
BOB = "447700900002"
CAROL = "447700900003"


def canned(name: str) -> dict:
    """Return one of Vonage's answers kept in tests/data."""
    return json.loads((DATA / f"{name}.json").read_text())


class SmsApi:
    """Vonage's SMS endpoint at the HTTP layer: the real SDK runs, nothing reaches the network.

    Each send is answered with the next queued answer, or `send-ok` when none is queued. An
    answer is the name of a file in tests/data (HTTP 200), an HTTP status, or an exception.
    """

    def __init__(self, mock: responses.RequestsMock) -> None:
        self.mock = mock
        self.answers: deque = deque()
        mock.add_callback(responses.POST, SMS_API, callback=self._answer)

    def then(self, *answers) -> None:
        """Queue answers for the next sends."""
        self.answers.extend(answers)

    @property
    def sent(self) -> list[dict]:
        """The form fields of every send the SDK made, in order."""
        return [dict(parse_qsl(call.request.body)) for call in self.mock.calls]

    def texts(self) -> list[tuple[str, str, str, str]]:
        """Every send as (from, to, text, type)."""
        return [(s["from"], s["to"], s["text"], s["type"]) for s in self.sent]

    def _answer(self, request):
        answer = self.answers.popleft() if self.answers else "send-ok"
        if isinstance(answer, Exception):
            return answer
        if isinstance(answer, int):
            return answer, {}, json.dumps({"type": "error", "title": f"HTTP {answer}"})
        return 200, {"Content-Type": "application/json"}, json.dumps(canned(answer))
