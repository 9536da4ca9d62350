"""Market-data feeds: MoldUDP64 accounting and A/B arbitration.

``sequencer`` is the readable golden reference; ``fastpath`` is the numba
path that turns capture batches into the arbitrated ITCH message stream.
"""
