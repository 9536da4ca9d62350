"""What every fabric block shares: stream and bus conventions, Verilog
conversion, and the cocotb runner that builds each toplevel once."""
