import pytest

from inventory.cpu import CpuReading, cores_used, parse_usage, usage_cmd


def test_usage_command_quotes_the_unit_and_falls_back_to_the_cgroup():
    cmd = usage_cmd("agent@main.service")
    assert "CPUUsageNSec --value --no-pager agent@main.service" in cmd
    assert "/sys/fs/cgroup/unified$cg/cpu.stat" in cmd and "usage_usec" in cmd
    assert "'a b.service'" in usage_cmd("a b.service")


def test_parse_usage_reads_systemd_nanoseconds_or_cgroup_microseconds():
    assert parse_usage("nsec 123456789\n") == 123456789
    assert parse_usage("usec 40279411\n") == 40_279_411_000
    assert parse_usage("") is None  # neither source: unknown, never 0 %
    assert parse_usage(f"nsec {2**64 - 1}") is None
    with pytest.raises(ValueError):
        parse_usage("garbage here")
    with pytest.raises(ValueError):
        parse_usage("usec many")


def test_cores_used_is_cpu_time_over_wall_time():
    assert cores_used(CpuReading(0, 10.0), CpuReading(1_500_000_000, 12.0)) == pytest.approx(0.75)
    assert cores_used(CpuReading(0, 10.0), CpuReading(4_000_000_000, 12.0)) == pytest.approx(2.0)


def test_restart_or_no_time_reads_zero():
    assert cores_used(CpuReading(5_000, 10.0), CpuReading(1_000, 11.0)) == 0.0  # counter reset by a restart
    assert cores_used(CpuReading(0, 10.0), CpuReading(10, 10.0)) == 0.0
