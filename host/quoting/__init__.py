"""Quoting: what the fabric's quoter and risk gate tell the host.

``records`` declares the quote record (quotes and pulls) the risk gate
streams to the host, shared by the gate's model, its RTL tests and the host.
"""
