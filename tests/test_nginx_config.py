"""The managed nginx file: rendering is pure, and refuses unsafe values."""
import pytest

from inventory.nginx_config import Backend, ConfigError, LbState, parse_generation, parse_pools, render


def state(**kw):
    base = dict(upstream="agent", pools={"stable": (Backend("10.0.0.1", 8080), Backend("10.0.0.2", 8080))},
                default_pool="stable", generation="g1")
    base.update(kw)
    return LbState(**base)


def test_single_pool_routes_everything_to_it():
    text = render(state())
    assert "split_clients" not in text
    assert "default agent_stable;" in text
    assert parse_pools(text, "agent") == {"stable": (Backend("10.0.0.1", 8080), Backend("10.0.0.2", 8080))}
    assert parse_generation(text) == "g1"


def test_split_renders_exact_percentages_summing_to_100():
    s = state(pools={"stable": (Backend("10.0.0.1", 8080),), "canary": (Backend("10.0.0.2", 8080),)},
              weights={"canary": 12.345, "stable": 87.655})
    text = render(s)
    assert "    12.35% agent_canary;" in text and "    * agent_stable;" in text


def test_cookie_stickiness_keys_on_the_uid():
    s = state(pools={"stable": (Backend("a", 1),), "canary": (Backend("b", 1),)},
              weights={"canary": 5, "stable": 95}, sticky="cookie")
    text = render(s)
    assert 'split_clients "${uid_got}${uid_set}"' in text and "userid on;" in text


def test_forcing_header_maps_pool_names():
    text = render(state(force_header="X-Canary"))
    assert "map $http_x_canary $agent_pool" in text and '"stable" agent_stable;' in text


@pytest.mark.parametrize("kw", [
    {"upstream": "agent; include /etc/passwd"},
    {"pools": {"stable": (Backend("10.0.0.1;", 80),)}},
    {"pools": {"stable": ()}},
    {"weights": {"canary": 10}},
    {"force_header": "X-Canary\nproxy_pass"},
    {"access_log": "/var/log/x.log; error"},
    {"generation": "1\"; }"},
])
def test_unsafe_or_impossible_states_are_refused(kw):
    with pytest.raises(ConfigError):
        render(state(**kw))


def test_weights_over_100_are_refused():
    s = state(pools={"stable": (Backend("a", 1),), "canary": (Backend("b", 1),)}, weights={"canary": 60, "stable": 50})
    with pytest.raises(ConfigError):
        render(s)


def test_fallback_pool_backs_up_without_joining_it():
    a, b, c = Backend("10.0.0.1", 8080), Backend("10.0.0.2", 8080), Backend("10.0.0.3", 8080)
    text = render(state(pools={"stable": (a, b), "canary": (c,)}, weights={"canary": 10, "stable": 90},
                        fallback={"canary": "stable"}))
    canary = text.split("upstream agent_canary {")[1].split("}")[0]
    assert canary.split("\n")[1:4] == ["    server 10.0.0.3:8080 max_fails=0;",
                                       "    server 10.0.0.1:8080 backup max_fails=0;",
                                       "    server 10.0.0.2:8080 backup max_fails=0;"]
    assert "backup" not in text.split("upstream agent_stable {")[1].split("}")[0]
    # read back, a pool holds only its own servers: backups never count as serving
    assert parse_pools(text, "agent") == {"stable": (a, b), "canary": (c,)}


@pytest.mark.parametrize("fallback", [{"canary": "nope"}, {"canary": "canary"}, {"gone": "stable"}])
def test_fallback_to_an_empty_or_same_pool_is_refused(fallback):
    with pytest.raises(ConfigError, match="fall back"):
        render(state(pools={"stable": (Backend("a", 1),), "canary": (Backend("b", 1),)}, fallback=fallback))
