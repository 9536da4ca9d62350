"""kill -9 of the running appliance at random points, then restart on the same
state: nothing it sent or received is lost.

The exchange simulator runs as its own process the whole time (a real TCP
server on loopback, journaling everything); the appliance (`zynqmm run
--replay`) is killed with SIGKILL a few times at random moments and started
again on the same journal, then run to the end.  Afterwards:

* every request the exchange received from us is in our journal, byte for
  byte and in order (a request always reaches the journal before the socket);
* every sequenced message the exchange sent us is in our journal once, with
  contiguous sequence numbers (re-login asks for the first one missing);
* no UserRefNum was used twice (the exchange ignores a reused one);
* the order manager rebuilt from our journal is consistent and agrees with
  the exchange on every order's state.
"""
import os
import random
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from host.exchange.records import EX_IN, EX_OUT, decode_in, decode_out
from host.gateway.gateway import RX, TX, rebuild
from host.journal import Journal
from host.protocols import ouch50
from host.runtime.app import JOURNAL_NAME

ROOT = Path(__file__).resolve().parents[2]
ZYNQMM = [sys.executable, "-m", "host.cli"]
CAPTURE = ROOT / "captures" / "day-faults-vlan.pcap"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_listening(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise AssertionError(f"nothing listens on {port}")


CONFIG = """
[appliance]
backend = "model"
ingest = "replay"
state_dir = "{state}"
status_file = "{state}/status.json"

[[chains]]
underlying = "AAPL"
strikes = [180, 185, 190, 195, 200]
expiries_days = [30]
sigma = 0.28

[[chains]]
underlying = "MSFT"
strikes = [400, 410, 420]
expiries_days = [30]
sigma = 0.25

[quoting]
bid_size = 3
ask_size = 3

[exchange]
connect = "127.0.0.1:{port}"
username = "ZMM01"
password_env = "ZYNQMM_TEST_PASSWORD"

[metrics]
enabled = false
"""


@pytest.fixture
def exchange(tmp_path):
    port = _free_port()
    journal = tmp_path / "exchange.journal"
    proc = subprocess.Popen(ZYNQMM + ["exchange-sim", "--listen", f"127.0.0.1:{port}",
                                      "--journal", str(journal)], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        _wait_listening(port)
        yield port, journal
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_kill_9_at_random_points_loses_nothing(tmp_path, exchange):
    port, exchange_journal = exchange
    state = tmp_path / "state"
    config = tmp_path / "appliance.toml"
    config.write_text(CONFIG.format(state=state, port=port))
    env = {**os.environ, "ZYNQMM_TEST_PASSWORD": "s3cret"}
    # The capture spans 16 hours: at 10,000 times real time the replay takes
    # about 6 s after start-up, and the kills land anywhere in it.
    command = ZYNQMM + ["run", "--config", str(config), "--replay", str(CAPTURE)]
    rng = random.Random(20261121)
    kills = 0
    for _ in range(3):
        proc = subprocess.Popen(command + ["--speed", "10000"], cwd=ROOT, env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(2.0, 7.0))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait()
    final = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True,
                           timeout=240)
    assert final.returncode == 0, final.stderr[-2000:]
    assert kills >= 1

    with Journal(state / JOURNAL_NAME) as ours:
        sent = [r.payload for r in ours if r.kind == TX]
        received = [r.payload for r in ours if r.kind == RX]
        manager, next_sequence, _, counts = rebuild(ours)
    manager.check_invariants()
    assert not counts

    with Journal(exchange_journal) as theirs:
        got = [decode_in(r.payload) for r in theirs if r.kind == EX_IN]
        out = [decode_out(r.payload) for r in theirs if r.kind == EX_OUT]
    requests = [raw for user, raw in got if user == "ZMM01"]
    # Every request the exchange saw is ours and journaled, in order.  (A request
    # journaled but never sent -- killed between the two -- is allowed: it
    # is the one thing a crash may leave unsent.)
    position = 0
    for raw in requests:
        while position < len(sent) and sent[position] != raw:
            position += 1
        assert position < len(sent), "the exchange received a request we have no record of"
        position += 1
    # Every sequenced message to us, once and contiguous.
    to_us = [(seq, raw) for user, seq, raw in out if user == "ZMM01"]
    sequences = [int.from_bytes(p[:8], "big") for p in received]
    assert sequences == list(range(1, len(sequences) + 1))
    assert len(sequences) == len(to_us) and next_sequence == len(to_us) + 1
    assert [p[8:] for p in received] == [raw for _, raw in to_us]
    # No UserRefNum reused: the exchange silently ignores a new order whose
    # UserRefNum is not above every one before it.
    refs = [m.user_ref_num for m in map(ouch50.decode_inbound, requests)
            if isinstance(m, (ouch50.EnterOrder, ouch50.ReplaceOrderRequest))]
    assert all(a < b for a, b in zip(refs, refs[1:]))
    assert len(requests) > 0 and manager.unique_orders()
