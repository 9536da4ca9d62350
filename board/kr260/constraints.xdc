# zynqmm overlay constraints: KR260 (K26 SOM, xck26-sfvc784-2LV-c).
#
# Port names are the external ports overlays/zynqmm/block_design.tcl creates.
# Pin locations follow the public KR260 carrier-card pin-out; every line marked
# CHECK must be compared with the KR260 schematic (XTP743) and the K26 SOM240
# connector tables before a board is powered with this bitstream.
#
# The core clock (pl_clk0, 250 MHz) comes from the PS and is constrained by the
# PS IP itself; nothing is declared for it here.

set_property BITSTREAM.GENERAL.COMPRESS true [current_design]

# ---- SFP+ cage (sfp0): GTH quad 224, channel 2 ------------------------------
# CHECK: the GT channel site of quad 224 lane 2 and the cage wiring
# against the schematic.
set_property PACKAGE_PIN T2 [get_ports sfp0_rx_p]
set_property PACKAGE_PIN T1 [get_ports sfp0_rx_n]
set_property PACKAGE_PIN R4 [get_ports sfp0_tx_p]
set_property PACKAGE_PIN R3 [get_ports sfp0_tx_n]
# 156.25 MHz MGTREFCLK0 of quad 224 from U90.
set_property PACKAGE_PIN Y6 [get_ports sfp0_refclk_clk_p]
set_property PACKAGE_PIN Y5 [get_ports sfp0_refclk_clk_n]
create_clock -period 6.400 -name sfp0_refclk [get_ports sfp0_refclk_clk_p]
# CHECK: HDIO bank voltage (3.3 V on the carrier card) for the SFP sideband.
set_property -dict {PACKAGE_PIN Y10 IOSTANDARD LVCMOS33 SLEW SLOW DRIVE 8} [get_ports sfp0_tx_disable]
set_false_path -to [get_ports sfp0_tx_disable]

# ---- RGMII PHY2 (rgmii0, U79 DP83867), HPA pins, 1.8 V ----------------------
set_property -dict {PACKAGE_PIN D4 IOSTANDARD LVCMOS18} [get_ports rgmii0_rxc]
set_property -dict {PACKAGE_PIN A1 IOSTANDARD LVCMOS18} [get_ports {rgmii0_rd[0]}]
set_property -dict {PACKAGE_PIN B3 IOSTANDARD LVCMOS18} [get_ports {rgmii0_rd[1]}]
set_property -dict {PACKAGE_PIN A3 IOSTANDARD LVCMOS18} [get_ports {rgmii0_rd[2]}]
set_property -dict {PACKAGE_PIN B4 IOSTANDARD LVCMOS18} [get_ports {rgmii0_rd[3]}]
set_property -dict {PACKAGE_PIN A4 IOSTANDARD LVCMOS18} [get_ports rgmii0_rx_ctl]
set_property -dict {PACKAGE_PIN A2 IOSTANDARD LVCMOS18 SLEW FAST DRIVE 12} [get_ports rgmii0_txc]
set_property -dict {PACKAGE_PIN E1 IOSTANDARD LVCMOS18 SLEW FAST DRIVE 12} [get_ports {rgmii0_td[0]}]
set_property -dict {PACKAGE_PIN D1 IOSTANDARD LVCMOS18 SLEW FAST DRIVE 12} [get_ports {rgmii0_td[1]}]
set_property -dict {PACKAGE_PIN F2 IOSTANDARD LVCMOS18 SLEW FAST DRIVE 12} [get_ports {rgmii0_td[2]}]
set_property -dict {PACKAGE_PIN E2 IOSTANDARD LVCMOS18 SLEW FAST DRIVE 12} [get_ports {rgmii0_td[3]}]
set_property -dict {PACKAGE_PIN F1 IOSTANDARD LVCMOS18 SLEW FAST DRIVE 12} [get_ports rgmii0_tx_ctl]
set_property -dict {PACKAGE_PIN G3 IOSTANDARD LVCMOS18} [get_ports rgmii0_mdio_mdc]
set_property -dict {PACKAGE_PIN F3 IOSTANDARD LVCMOS18} [get_ports rgmii0_mdio_mdio_io]
set_property -dict {PACKAGE_PIN B1 IOSTANDARD LVCMOS18 SLEW SLOW DRIVE 12} [get_ports rgmii0_phy_reset_n]
create_clock -period 8.000 -name rgmii0_rxc [get_ports rgmii0_rxc]
set_false_path -to [get_ports rgmii0_phy_reset_n]

# ---- RGMII PHY3 (rgmii1, U80 DP83867), HPB pins, 1.8 V ----------------------
# Not in the default design (feeds A and B use sfp0 and rgmii0): uncomment when
# rgmii1 carries a feed, so Vivado is not asked to place ports that do not exist.
# CHECK: the TX pins of PHY3 sit in a different bank from its RX pins; confirm
# both banks are 1.8 V on the carrier card.
# set_property -dict {PACKAGE_PIN K4 IOSTANDARD LVCMOS18} [get_ports rgmii1_rxc]
# set_property -dict {PACKAGE_PIN H1 IOSTANDARD LVCMOS18} [get_ports {rgmii1_rd[0]}]
# set_property -dict {PACKAGE_PIN K2 IOSTANDARD LVCMOS18} [get_ports {rgmii1_rd[1]}]
# set_property -dict {PACKAGE_PIN J2 IOSTANDARD LVCMOS18} [get_ports {rgmii1_rd[2]}]
# set_property -dict {PACKAGE_PIN H4 IOSTANDARD LVCMOS18} [get_ports {rgmii1_rd[3]}]
# set_property -dict {PACKAGE_PIN H3 IOSTANDARD LVCMOS18} [get_ports rgmii1_rx_ctl]
# set_property -dict {PACKAGE_PIN J1 IOSTANDARD LVCMOS18 SLEW FAST DRIVE 12} [get_ports rgmii1_txc]
# set_property -dict {PACKAGE_PIN U9 IOSTANDARD LVCMOS18 SLEW FAST DRIVE 12} [get_ports {rgmii1_td[0]}]
# set_property -dict {PACKAGE_PIN V9 IOSTANDARD LVCMOS18 SLEW FAST DRIVE 12} [get_ports {rgmii1_td[1]}]
# set_property -dict {PACKAGE_PIN U8 IOSTANDARD LVCMOS18 SLEW FAST DRIVE 12} [get_ports {rgmii1_td[2]}]
# set_property -dict {PACKAGE_PIN V8 IOSTANDARD LVCMOS18 SLEW FAST DRIVE 12} [get_ports {rgmii1_td[3]}]
# set_property -dict {PACKAGE_PIN Y8 IOSTANDARD LVCMOS18 SLEW FAST DRIVE 12} [get_ports rgmii1_tx_ctl]
# set_property -dict {PACKAGE_PIN R8 IOSTANDARD LVCMOS18} [get_ports rgmii1_mdio_mdc]
# set_property -dict {PACKAGE_PIN T8 IOSTANDARD LVCMOS18} [get_ports rgmii1_mdio_mdio_io]
# set_property -dict {PACKAGE_PIN K1 IOSTANDARD LVCMOS18 SLEW SLOW DRIVE 12} [get_ports rgmii1_phy_reset_n]
# create_clock -period 8.000 -name rgmii1_rxc [get_ports rgmii1_rxc]
# set_false_path -to [get_ports rgmii1_phy_reset_n]
