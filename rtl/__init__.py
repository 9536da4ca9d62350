"""The fabric: MyHDL blocks, their bit-accurate models, the register map and
the tooling that turns them into Verilog and simulates them."""
