from inventory import systemd
from inventory.driver import UnitStatus


def test_show_parsed_in_any_order():
    text = "SubState=running\nActiveState=active\nLoadState=loaded\n"
    st = systemd.parse_unit_status(text)
    assert st == UnitStatus("loaded", "active", "running")
    assert st.active


def test_missing_unit_is_not_active_even_though_inactive_exit_zero():
    st = systemd.parse_unit_status("LoadState=not-found\nActiveState=inactive\nSubState=dead\n")
    assert st.load_state == "not-found"
    assert not st.active


def test_value_with_equals_and_blank_and_garbage_lines():
    props = systemd.parse_show("\nFoo=a=b\ngarbage\n  LoadState = loaded \r\n")
    assert props == {"Foo": "a=b", "LoadState": "loaded"}


def test_empty_output_is_unknown():
    st = systemd.parse_unit_status("")
    assert st.load_state == "unknown" and st.active_state == "unknown" and not st.active


def test_failed_unit():
    st = systemd.parse_unit_status("ActiveState=failed\nSubState=failed\nLoadState=loaded")
    assert st.active_state == "failed" and not st.active


def test_commands_quote_unit_names():
    assert systemd.restart_cmd("agent@main.service") == "systemctl restart agent@main.service"
    assert systemd.stop_cmd("agent@blue") == "systemctl stop agent@blue"
    assert systemd.start_cmd("x; rm -rf /") == "systemctl start 'x; rm -rf /'"
    assert systemd.show_cmd("agent@main") == (
        "systemctl show -p LoadState,ActiveState,SubState --no-pager agent@main")
    assert systemd.journal_cmd("a b", 20) == "journalctl -u 'a b' -n 20 --no-pager -o short-iso"
    assert systemd.journal_cmd("u", 0).split()[4] == "1"


def test_bad_unit_name_refused():
    import pytest
    with pytest.raises(ValueError):
        systemd.restart_cmd("")
    with pytest.raises(ValueError):
        systemd.restart_cmd("a\nb")
