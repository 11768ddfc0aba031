"""The actor's spool: sequences that never go backwards, acknowledgements and trimming, crash
recovery, the audit log, and the capacity limit."""

import os
import signal
import subprocess
import sys
import textwrap

import pytest

from serl.transport.produced_log import LINE_BYTES, read_produced_log
from serl.transport.spool import Spool


def _records(spool):
    return list(spool.unacked())


def _payload(i: int) -> bytes:
    return f"transition-{i}".encode() * (1 + i % 5)


@pytest.mark.timeout(10)
def test_add_read_acknowledge_trim(tmp_path):
    with_spool = Spool(tmp_path, segment_bytes=200)
    for i in range(40):
        assert with_spool.add(_payload(i), intervened=i % 4 == 0) == i
    assert [s for s, _ in _records(with_spool)] == list(range(40))
    assert with_spool.read(5, 3, 1 << 20) == [(5, _payload(5)), (6, _payload(6)), (7, _payload(7))]
    assert len(with_spool.read(0, 100, 30)) == 1  # at least one record, however large
    segments_before = len(list((tmp_path / "segments").iterdir()))
    with_spool.acknowledge(25)
    assert [s for s, _ in _records(with_spool)] == list(range(26, 40))
    assert with_spool.read(0, 2, 1 << 20)[0][0] == 26  # never below the watermark
    assert len(list((tmp_path / "segments").iterdir())) < segments_before  # whole segments deleted
    with_spool.acknowledge(10)  # lower: no-op
    assert with_spool.acked == 25
    with pytest.raises(ValueError):
        with_spool.acknowledge(40)  # not produced yet
    assert with_spool.wait_acked(25, 0) and not with_spool.wait_acked(30, 0.01)
    with_spool.close()


@pytest.mark.timeout(10)
def test_sequences_and_unacked_entries_survive_a_reopen(tmp_path):
    spool = Spool(tmp_path, segment_bytes=300)
    for i in range(30):
        spool.add(_payload(i))
    spool.acknowledge(11)
    spool.close()  # no flush: 12..29 unacknowledged
    spool = Spool(tmp_path, segment_bytes=300)
    assert spool.acked == 11 and spool.next_sequence == 30
    assert _records(spool) == [(i, _payload(i)) for i in range(12, 30)]
    assert spool.add(b"next") == 30  # appended after the records already there
    assert _records(spool) == [(i, _payload(i)) for i in range(12, 30)] + [(30, b"next")]
    spool.close()
    spool = Spool(tmp_path, segment_bytes=300)
    assert _records(spool) == [(i, _payload(i)) for i in range(12, 30)] + [(30, b"next")]
    spool.acknowledge(30)
    spool.close()
    spool = Spool(tmp_path)  # everything acknowledged and trimmed: the sequence still continues
    assert spool.add(b"after") == 31 and _records(spool) == [(31, b"after")]
    spool.close()


@pytest.mark.timeout(10)
def test_a_torn_last_record_is_cut_on_open(tmp_path):
    spool = Spool(tmp_path)
    for i in range(10):
        spool.add(_payload(i))
    spool.close()
    segment = sorted((tmp_path / "segments").iterdir())[-1]
    size = segment.stat().st_size
    # a record whose write was cut short: header and half its payload
    with open(segment, "r+b") as f:
        f.truncate(size - 5)
    spool = Spool(tmp_path)
    assert [s for s, _ in _records(spool)] == list(range(9))
    # produced.log still knows 9 was produced: never reuse its number
    assert spool.next_sequence == 10
    spool.close()
    cut = segment.stat().st_size
    with open(segment, "ab") as f:
        f.write(b"\x00" * 7)  # garbage shorter than a header
    spool = Spool(tmp_path)
    assert segment.stat().st_size == cut
    assert [s for s, _ in _records(spool)] == list(range(9))
    spool.close()


@pytest.mark.timeout(10)
def test_a_corrupted_record_is_cut_even_if_its_length_is_intact(tmp_path):
    spool = Spool(tmp_path)
    for i in range(5):
        spool.add(_payload(i))
    spool.close()
    segment = sorted((tmp_path / "segments").iterdir())[-1]
    data = bytearray(segment.read_bytes())
    data[-3] ^= 0xFF
    segment.write_bytes(bytes(data))
    spool = Spool(tmp_path)
    assert [s for s, _ in _records(spool)] == [0, 1, 2, 3]
    spool.close()


@pytest.mark.timeout(10)
def test_produced_log_has_one_line_per_session_and_flush_with_intervention_counts(tmp_path):
    spool = Spool(tmp_path)
    for i in range(10):
        spool.add(b"x", intervened=i < 3)
    spool.sync(break_line=True)
    for _ in range(5):
        spool.add(b"y", intervened=True)
    spool.acknowledge(14)  # trimming never touches the audit log
    spool.close()
    spool = Spool(tmp_path)
    spool.add(b"z")
    spool.close()
    ranges = read_produced_log(tmp_path / "produced.log")
    assert [(r.first, r.last, r.count,
             r.interventions) for r in ranges] == [(0, 9, 10, 3), (10, 14, 5, 5), (15, 15, 1, 0)]
    lines = (tmp_path / "produced.log").read_bytes().splitlines(keepends=True)
    assert all(len(line) == LINE_BYTES for line in lines[1:])


@pytest.mark.timeout(10)
def test_produced_log_is_repaired_from_the_spool(tmp_path):
    spool = Spool(tmp_path)
    for i in range(6):
        spool.add(b"r", intervened=i % 2 == 0)
    spool.close()
    log = tmp_path / "produced.log"
    data = log.read_bytes()
    # a torn line (as after a power cut)
    log.write_bytes(data[:len(data) - LINE_BYTES] + data[-LINE_BYTES:-20])
    spool = Spool(tmp_path)
    assert spool.next_sequence == 6
    spool.close()
    assert [(r.first, r.last, r.interventions) for r in read_produced_log(log)] == [(0, 5, 3)]


@pytest.mark.timeout(10)
def test_full_at_capacity_and_nothing_is_refused(tmp_path):
    spool = Spool(tmp_path, capacity_bytes=1000)
    while not spool.full:
        spool.add(b"p" * 100)
    n = spool.next_sequence
    spool.add(b"still accepted")
    assert spool.next_sequence == n + 1 and spool.full
    spool.close()


@pytest.mark.timeout(10)
def test_one_process_per_spool(tmp_path):
    spool = Spool(tmp_path)
    with pytest.raises(RuntimeError, match="already open"):
        Spool(tmp_path)
    spool.close()


@pytest.mark.timeout(30)
def test_everything_added_survives_sigkill(tmp_path):
    """add() returns only after write(2): the OS keeps the data and the audit line when the process
    is killed."""
    script = textwrap.dedent(f"""
        import os, signal, sys
        from serl.transport.spool import Spool
        spool = Spool({str(tmp_path)!r}, segment_bytes=1024, fsync_interval=3600)
        for i in range(500):
            spool.add(b"k%d" % i, intervened=i % 10 == 0)
            if i == 200:
                spool.acknowledge(149)
        sys.stdout.write("added\\n"); sys.stdout.flush()
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            timeout=20)
    assert result.returncode == -signal.SIGKILL and result.stdout == "added\n", result.stderr
    spool = Spool(tmp_path)
    assert spool.acked == 149 and spool.next_sequence == 500
    assert _records(spool) == [(i, b"k%d" % i) for i in range(150, 500)]
    spool.close()
    ranges = read_produced_log(tmp_path / "produced.log")
    assert [(r.first, r.last, r.interventions) for r in ranges] == [(0, 499, 50)]
    assert not os.path.exists(tmp_path / "segments" / f"{0:020d}.seg")  # trimmed before the kill
