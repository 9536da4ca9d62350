# zynqmm overlay constraints: ZCU102 (xczu9eg-ffvb1156-2-e).
#
# Port names are the external ports overlays/zynqmm/block_design.tcl creates.
# Pin locations follow the public ZCU102 pin-out (UG1182); lines marked CHECK
# must be compared with the board schematic before use.
#
# The core clock (pl_clk0, 250 MHz) comes from the PS and is constrained by the
# PS IP itself.

set_property BITSTREAM.GENERAL.COMPRESS true [current_design]

# ---- SFP+ cages on GTH quad 230 ----------------------------------------------
# sfp0: channel 0 (GTHE4_CHANNEL_X1Y12); sfp1: channel 1 (X1Y13).
set_property PACKAGE_PIN D2 [get_ports sfp0_rx_p]
set_property PACKAGE_PIN D1 [get_ports sfp0_rx_n]
set_property PACKAGE_PIN E4 [get_ports sfp0_tx_p]
set_property PACKAGE_PIN E3 [get_ports sfp0_tx_n]
set_property PACKAGE_PIN C4 [get_ports sfp1_rx_p]
set_property PACKAGE_PIN C3 [get_ports sfp1_rx_n]
set_property PACKAGE_PIN D6 [get_ports sfp1_tx_p]
set_property PACKAGE_PIN D5 [get_ports sfp1_tx_n]

# MGTREFCLK0 of quad 230: the U56 Si570 through the U51 buffer.
# CHECK: the Si570 powers up at 156.25 MHz only if programmed so; the system
# controller or the host must set it before the MAC comes out of reset.
set_property PACKAGE_PIN C8 [get_ports sfp0_refclk_clk_p]
set_property PACKAGE_PIN C7 [get_ports sfp0_refclk_clk_n]
create_clock -period 6.400 -name sfp0_refclk [get_ports sfp0_refclk_clk_p]

# Transmit disables (3.3 V HD bank).
set_property -dict {PACKAGE_PIN A12 IOSTANDARD LVCMOS33 SLEW SLOW DRIVE 8} [get_ports sfp0_tx_disable]
set_property -dict {PACKAGE_PIN A13 IOSTANDARD LVCMOS33 SLEW SLOW DRIVE 8} [get_ports sfp1_tx_disable]
set_false_path -to [get_ports {sfp0_tx_disable sfp1_tx_disable}]
