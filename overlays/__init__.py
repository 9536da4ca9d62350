"""The PYNQ overlay: Vivado block design and build TCL (``overlays/zynqmm/``),
the configuration the build reads, its dry run, checks and the manifest of a
built bitstream."""
