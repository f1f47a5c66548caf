"""The simulated browsers of a load stream, for session affinity.

A user is one browser session, like a person following links or a load tester's virtual user:
it sends its next request only once its previous one is answered. So every request a user sends
carries every cookie the user's earlier answers set, and "the backend of the user's previous
answer" means the same thing whatever the machine's speed.

Users that could send at the same time (several requests in flight each) would not: a request
sent before the answer that sets the affinity cookie goes out without it, may be routed to the
primary and be answered after the canary's answer, which reads as a user leaving the canary
although the router kept every request that carried the cookie there. How many requests
overlap would then depend on the load on the machine, and so would the counts.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field


@dataclass(eq=False)
class User:
    """One browser: its cookies and the backend of its last answer."""

    _idle: deque[User] = field(repr=False)
    jar: dict[str, str] = field(default_factory=dict)
    last_backend: str = ""

    def answered(self, backend: str, set_cookies: list[str]) -> str | None:
        """Take an answer from ``backend`` (its ``Set-Cookie`` headers): the switch it makes,
        "from->to", when another backend answered the user's previous request."""
        previous = self.last_backend
        if backend:
            self.last_backend = backend
        for header in set_cookies:
            _keep_cookie(self.jar, header)
        if previous and backend and previous != backend:
            return f"{previous}->{backend}"
        return None

    def done(self) -> None:
        """The request is over (answered or failed): the user may send again."""
        self._idle.append(self)


class Users:
    """A fixed set of users taking turns: the one idle longest sends the next request."""

    def __init__(self, count: int) -> None:
        self._idle: deque[User] = deque()
        self._idle.extend(User(self._idle) for _ in range(count))

    @property
    def idle(self) -> int:
        """How many users may send now."""
        return len(self._idle)

    def take(self) -> User | None:
        """An idle user, now busy until :meth:`User.done`; None when every user waits for an answer."""
        return self._idle.popleft() if self._idle else None


def _keep_cookie(jar: dict[str, str], header: str) -> None:
    """Store (or, with ``Max-Age`` 0 or less, delete) the cookie a ``Set-Cookie`` header sets."""
    first, *attributes = header.split(";")
    name, sep, value = first.strip().partition("=")
    if not sep or not name:
        return
    for attribute in attributes:
        key, _, raw = attribute.strip().partition("=")
        if key.lower() == "max-age" and raw.strip().lstrip("-").isdigit() and int(raw) <= 0:
            jar.pop(name, None)
            return
    jar[name] = value
