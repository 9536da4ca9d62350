"""The fabric's Verilog as a simulator process the host can drive.

``server.cpp`` is a Verilator harness in server mode: it keeps the simulated
fabric alive between commands (reset, register writes and reads, frames,
run until idle) that come over a pipe, and answers with register values and
the records the fabric sent the host.  :mod:`.build` converts the fabric and
builds the server; :mod:`.client` speaks its protocol;
:class:`host.runtime.rtl_fabric.RtlFabric` is the host's ``rtl`` backend on
top of it.
"""
