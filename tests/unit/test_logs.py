import json
import logging

from common.logs import JsonFormatter, mask_identifiers


def test_identifiers_are_masked_but_other_tokens_are_not() -> None:
    text = "subject 11010519491231002X of 91350100M000100Y43 event 3604238c99974b049d1e81167112c1c7 code 101001/000001"
    masked = mask_identifiers(text)
    assert "11010519491231002X" not in masked
    assert "91350100M000100Y43" not in masked
    assert "11**************2X" in masked
    assert "3604238c99974b049d1e81167112c1c7" in masked
    assert "101001/000001" in masked


def test_json_log_lines_mask_messages_and_extra_fields() -> None:
    record = logging.LogRecord("x", logging.WARNING, __file__, 1, "bad key %s", ("11010519491231002X",), None)
    record.subject = "91350100M000100Y43"
    line = JsonFormatter("exchange").format(record)
    entry = json.loads(line)
    assert entry["service"] == "exchange"
    assert entry["level"] == "warning"
    assert "11010519491231002X" not in line and "91350100M000100Y43" not in line


def test_a_driver_repeating_itself_is_logged_once_per_window_with_a_count() -> None:
    from common.logs import RepeatFilter

    repeats = RepeatFilter(("aiokafka",), window=60)

    def record(name: str, msg: str) -> logging.LogRecord:
        return logging.LogRecord(name, logging.ERROR, __file__, 1, msg, ("node 0",), None)

    passed = [repeats.filter(record("aiokafka.conn", "Unable to connect to %s")) for _ in range(500)]
    assert passed.count(True) == 1
    assert repeats.filter(record("aiokafka.conn", "another message %s"))
    assert all(repeats.filter(record("services.exchange", "Unable to connect to %s")) for _ in range(3))
    repeats.last.clear()  # the window passed
    later = record("aiokafka.conn", "Unable to connect to %s")
    assert repeats.filter(later) and later.repeated == 499
