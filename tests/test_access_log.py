import json

import pytest

from inventory import access_log
from inventory.driver import PoolStats


def line(pool="agent_stable", status=200, ustatus="200", uaddr="10.77.0.11:8080", rt="0.005"):
    return json.dumps({"t": "1700000000.123", "pool": pool, "status": str(status),
                       "ustatus": ustatus, "uaddr": uaddr, "rt": rt, "urt": rt})


def test_counts_per_pool_with_prefix_stripped():
    text = "\n".join([line(), line(), line(pool="agent_canary", uaddr="10.77.0.12:8080")]) + "\n"
    res = access_log.parse(text, "agent")
    assert set(res.pools) == {"stable", "canary"}
    assert res.pools["stable"].requests == 2
    assert res.pools["canary"].requests == 1
    assert res.pools["stable"].latencies == [0.005, 0.005]
    assert res.backends == {"10.77.0.11:8080": 2, "10.77.0.12:8080": 1}
    assert res.bad_lines == 0


def test_retried_counts_once_by_final_status():
    text = line(ustatus="502, 200", uaddr="10.77.0.11:8080, 10.77.0.12:8080") + "\n"
    st = access_log.parse_pools(text, "agent")["stable"]
    assert (st.requests, st.errors, st.retried, st.hidden) == (1, 0, 1, 1)
    assert access_log.parse(text, "agent").backends == {"10.77.0.12:8080": 1}


def test_errors_are_final_5xx_only():
    text = "\n".join([line(status=500, ustatus="500"), line(status=404, ustatus="404"),
                      line(status=502, ustatus="502, 502", rt="1.0"),
                      line(status=504, ustatus="-", uaddr="")])
    st = access_log.parse_pools(text, "agent")["stable"]
    assert st.requests == 4
    assert st.errors == 3
    assert st.retried == 1 and st.hidden == 0  # the retry failed too: the client saw it


def test_torn_and_garbage_lines_counted_not_raised():
    good = line()
    text = "\n".join([good, good[:17], "not json", "[1,2]", '{"pool":"agent_stable"}', "", good])
    res = access_log.parse(text, "agent")
    assert res.pools["stable"].requests == 2
    assert res.bad_lines == 4


def test_pool_without_prefix_and_without_upstream_kept():
    assert set(access_log.parse_pools(line(pool="other") + "\n", "agent")) == {"other"}
    assert set(access_log.parse_pools(line() + "\n")) == {"agent_stable"}


def test_missing_rt_is_tolerated():
    rec = {"pool": "agent_stable", "status": "200", "ustatus": "200", "rt": "-"}
    st = access_log.parse_pools(json.dumps(rec), "agent")["stable"]
    assert st.requests == 1 and st.latencies == []


def test_split_complete_keeps_partial_tail():
    done, rest = access_log.split_complete("a\nb\nc")
    assert (done, rest) == ("a\nb\n", "c")
    assert access_log.split_complete("abc") == ("", "abc")
    assert access_log.split_complete("a\n") == ("a\n", "")


def test_merge_poolstats():
    a = access_log.parse_pools(line() + "\n", "agent")["stable"]
    b = PoolStats(requests=2, errors=1, retried=1, latencies=[0.1])
    a.merge(b)
    assert (a.requests, a.errors, a.retried) == (3, 1, 1)
    assert a.latencies == pytest.approx([0.005, 0.1])


def test_matches_renderer_log_format_escape_json():
    # What nginx writes with escape=json for an unusual pool value.
    raw = '{"t":"1.0","pool":"agent_blue","status":"503","ustatus":"503","uaddr":"a:1",' \
          '"rt":"0.001","urt":"0.001"}'
    st = access_log.parse_pools(raw, "agent")["blue"]
    assert st.errors == 1
