"""The zynqmm overlay: its Vivado TCL (``*.tcl``) and its pynq driver
(:mod:`overlays.zynqmm.driver`, the ``board`` backend)."""
