# zynqmm overlay constraints: PYNQ-Z2 (xc7z020clg400-1).
#
# Ethernet reaches the PS only (RTL8211E on GEM0, MIO pins, set by the PS
# configuration), and the core clock is the PS's FCLK_CLK0 at 125 MHz, which
# the PS IP constrains itself.  The overlay has no PL pins to place.
#
# Kept for reference, unused by the overlay: the 125 MHz PL system clock.
# CHECK against the PYNQ-Z2 schematic before enabling.
# set_property -dict {PACKAGE_PIN H16 IOSTANDARD LVCMOS33} [get_ports sysclk]
# create_clock -period 8.000 -name sysclk [get_ports sysclk]

set_property BITSTREAM.GENERAL.COMPRESS true [current_design]
