"""Load stream settings and the simulated users' cookies, without sending anything."""

from __future__ import annotations

import pytest

from e2e.mesh.loadgen import LoadError, LoadGenerator, LoadStream


def test_users_keep_the_cookies_their_answers_set_and_drop_expired_ones() -> None:
    stream = LoadStream(namespace="t", service="s", rps=1, headers={"cookie": "fixed=1"})
    stream.set_users(2)
    first, second = stream.next_user(), stream.next_user()
    assert first is not None and second is not None and first is not second
    stream.answered(first, "primary", ["session=abc; Path=/; HttpOnly", "flagger-cookie=x; Max-Age=60"])
    assert stream.cookie_header(first) == "fixed=1; session=abc; flagger-cookie=x"
    assert stream.cookie_header(second) == "fixed=1"
    stream.answered(first, "canary", ["flagger-cookie=; Max-Age=0"])
    assert stream.cookie_header(first) == "fixed=1; session=abc"
    assert stream.switches == {"primary->canary": 1}
    assert stream.backends == {"primary": 1, "canary": 1}


def test_a_user_sends_again_only_once_its_request_is_over() -> None:
    # A user with two requests in flight would send the second without the cookie the first's
    # answer sets: its "switches" would then depend on which answer the machine delivers first.
    stream = LoadStream(namespace="t", service="s", rps=1)
    stream.set_users(2)
    first, second = stream.next_user(), stream.next_user()
    assert first is not None and second is not None
    assert stream.every_user_waits
    second.done()
    assert not stream.every_user_waits
    assert stream.next_user() is second and stream.every_user_waits
    first.done()
    assert stream.next_user() is first


def test_without_users_nothing_is_kept() -> None:
    stream = LoadStream(namespace="t", service="s", rps=1)
    assert stream.next_user() is None and not stream.every_user_waits
    stream.answered(None, "primary", ["c=1"])
    assert stream.cookie_header(None) is None


def test_target_appends_the_query() -> None:
    assert LoadStream(namespace="t", service="s", rps=1, path="/a", query={"b": "1 2"}).target == "/a?b=1+2"
    assert LoadStream(namespace="t", service="s", rps=1, path="/a?x=1", query={"b": "2"}).target == "/a?x=1&b=2"


@pytest.mark.parametrize(
    ("args", "kwargs"),
    [
        (("", "", 1.0), {}),  # neither a Service nor a host
        (("t", "s", 1.0), {"headers": {"Host": "x"}}),
        (("t", "s", 1.0), {"headers": {"x-mesh-load": "x"}}),
        (("t", "s", 1.0), {"method": "BREW"}),
        (("t", "s", 1.0), {"users": -1}),
        (("t", "s", 1.0), {"path": "no-slash"}),
    ],
)
def test_invalid_settings_are_refused_before_anything_starts(args: tuple[str, str, float], kwargs: dict[str, object]) -> None:
    with pytest.raises(LoadError):
        LoadGenerator("http://127.0.0.1:1").set(*args, **kwargs)  # type: ignore[arg-type]
