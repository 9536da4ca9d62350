"""Market-day replay harness: recorded days onto interfaces, sockets or a
fabric backend, the appliance's orders captured and matched to the ticks
that caused them, latency and correctness reports.

Pieces, each usable on its own:

* :mod:`host.replay.source` -- which frames of a capture are replayed
  (feeds A/B, a time window, a symbol filter with MoldUDP64 renumbering);
* :mod:`host.replay.sender` -- paced sending (scapy L2 socket, UDP socket)
  and line-rate sending through tcpreplay, with the achieved timing;
* :mod:`host.replay.capture` -- tcpdump captures of feed and order entry,
  OUCH requests and answers read back from them;
* :mod:`host.replay.expected` -- the model backend's run on the same frames;
* :mod:`host.replay.stamps` -- the model on another fabric's timing (the
  RTL backend's stamp of every book record), so rate windows decide alike;
* :mod:`host.replay.match` -- orders against the expected run (the rule
  is in that module's docstring), tick-to-order latency;
* :mod:`host.replay.report` -- summary.json, plots and an HTML page;
* :mod:`host.replay.backend` -- the appliance in-process on a backend;
* :mod:`host.replay.netns` / :mod:`host.replay.lab` -- a two-namespace
  network with a veth pair for real multicast and TCP;
* :mod:`host.replay.batch` -- many days at once (processes or Ray).
"""
