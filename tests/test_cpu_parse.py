import pytest

from inventory.cpu import CpuTimes, busy_fraction, parse_proc_stat

STAT1 = """cpu  100 0 50 800 50 0 0 0 0 0
cpu0 50 0 25 400 25 0 0 0 0 0
intr 1 2 3
"""
STAT2 = """cpu  200 0 100 900 100 0 0 0 0 0
cpu0 100 0 50 450 50 0 0 0 0 0
"""


def test_parse_first_line():
    t = parse_proc_stat(STAT1)
    assert t == CpuTimes(total=1000, idle=850)
    assert t.busy == 150


def test_busy_excludes_idle_and_iowait():
    a, b = parse_proc_stat(STAT1), parse_proc_stat(STAT2)
    # delta total 300, delta idle+iowait 150 -> busy 150/300
    assert busy_fraction(a, b) == pytest.approx(0.5)


def test_guest_not_double_counted_and_short_lines():
    t = parse_proc_stat("cpu 10 0 10 80 0 0 0 0 7 3\n")
    assert t.total == 100
    assert parse_proc_stat("cpu 1 2 3 4\n") == CpuTimes(total=10, idle=4)


def test_no_time_passed_or_counter_reset_is_zero_and_clamped():
    a = CpuTimes(1000, 500)
    assert busy_fraction(a, a) == 0.0
    assert busy_fraction(a, CpuTimes(900, 400)) == 0.0
    assert 0.0 <= busy_fraction(CpuTimes(0, 0), CpuTimes(10, -5)) <= 1.0


def test_garbage_raises_value_error():
    with pytest.raises(ValueError):
        parse_proc_stat("intr 1 2\n")
    with pytest.raises(ValueError):
        parse_proc_stat("cpu a b c d\n")
    with pytest.raises(ValueError):
        parse_proc_stat("cpu 1 2\n")
