# zynqmm block design: PS, control and data interconnects, the fabric
# (generated Verilog as a module reference: the whole fabric, or the feed path
# alone, as board.toml [fabric] says), one AXI DMA per record stream of that
# top and, per board, the Ethernet MACs or the PS-bridge ingest DMAs.
#
# Reads the zynqmm() array written by overlays.build (see build.tcl).

proc zynqmm_cell {vlnv name {config {}}} {
    set cell [create_bd_cell -type ip -vlnv $vlnv $name]
    if {[llength $config]} {
        set_property -dict $config [get_bd_cells $name]
    }
    return $cell
}

proc zynqmm_ps {} {
    global zynqmm
    if {$zynqmm(family) eq "zynq_ultrascale_plus"} {
        zynqmm_cell xilinx.com:ip:zynq_ultra_ps_e ps
        apply_bd_automation -rule xilinx.com:bd_rule:zynq_ultra_ps_e \
            -config {apply_board_preset "1"} [get_bd_cells ps]
        set_property -dict [list \
            CONFIG.PSU__USE__M_AXI_GP0 {1} CONFIG.PSU__USE__M_AXI_GP1 {0} \
            CONFIG.PSU__USE__M_AXI_GP2 {0} CONFIG.PSU__USE__S_AXI_GP2 {1} \
            CONFIG.PSU__SAXIGP2__DATA_WIDTH {64} \
            CONFIG.PSU__FPGA_PL0_ENABLE {1} CONFIG.PSU__FPGA_PL1_ENABLE {1} \
            CONFIG.PSU__CRL_APB__PL0_REF_CTRL__FREQMHZ $zynqmm(core_mhz) \
            CONFIG.PSU__CRL_APB__PL1_REF_CTRL__FREQMHZ {100} \
            CONFIG.PSU__USE__IRQ0 {1}] [get_bd_cells ps]
        return [dict create clk ps/pl_clk0 aux_clk ps/pl_clk1 resetn ps/pl_resetn0 \
                    ctrl ps/M_AXI_HPM0_FPD ctrl_clk ps/maxihpm0_fpd_aclk \
                    data ps/S_AXI_HP0_FPD data_clk ps/saxihp0_fpd_aclk irq ps/pl_ps_irq0]
    }
    zynqmm_cell xilinx.com:ip:processing_system7 ps
    apply_bd_automation -rule xilinx.com:bd_rule:processing_system7 \
        -config {make_external "FIXED_IO, DDR" apply_board_preset "1"} [get_bd_cells ps]
    set_property -dict [list \
        CONFIG.PCW_USE_M_AXI_GP0 {1} CONFIG.PCW_USE_S_AXI_HP0 {1} \
        CONFIG.PCW_S_AXI_HP0_DATA_WIDTH {64} \
        CONFIG.PCW_FPGA0_PERIPHERAL_FREQMHZ $zynqmm(core_mhz) \
        CONFIG.PCW_USE_FABRIC_INTERRUPT {1} CONFIG.PCW_IRQ_F2P_INTR {1}] [get_bd_cells ps]
    return [dict create clk ps/FCLK_CLK0 aux_clk ps/FCLK_CLK0 resetn ps/FCLK_RESET0_N \
                ctrl ps/M_AXI_GP0 ctrl_clk ps/M_AXI_GP0_ACLK \
                data ps/S_AXI_HP0 data_clk ps/S_AXI_HP0_ACLK irq ps/IRQ_F2P]
}

# 10GBASE-R ports share one 10G/25G Ethernet subsystem (MAC + PCS/PMA), one
# core per port, so ports in one GT quad share its reference clock buffer.
# Each port's receive stream (156.25 MHz, no back-pressure) goes through an
# asynchronous FIFO to the core clock.  The reference clock enters once, on the
# first port's pins.
proc zynqmm_mac_10g {port index cores core_clk core_rstn} {
    if {$index == 0} {
        zynqmm_cell xilinx.com:ip:xxv_ethernet sfp_mac [list \
            CONFIG.NUM_OF_CORES $cores CONFIG.LINE_RATE {10} CONFIG.BASE_R_KR {BASE-R} \
            CONFIG.INCLUDE_AXI4_INTERFACE {1} CONFIG.GT_REF_CLK_FREQ {156.25} \
            CONFIG.INCLUDE_SHARED_LOGIC {2} CONFIG.ENABLE_PIPELINE_REG {1}]
        create_bd_intf_port -mode Slave -vlnv xilinx.com:interface:diff_clock_rtl:1.0 ${port}_refclk
        set_property CONFIG.FREQ_HZ 156250000 [get_bd_intf_ports ${port}_refclk]
        connect_bd_intf_net [get_bd_intf_ports ${port}_refclk] [get_bd_intf_pins sfp_mac/gt_ref_clk]
    }
    zynqmm_cell xilinx.com:ip:axis_data_fifo ${port}_rx_fifo [list \
        CONFIG.FIFO_DEPTH {4096} CONFIG.IS_ACLK_ASYNC {1} CONFIG.FIFO_MODE {2}]
    foreach {external pin direction} {rx_p gt_rxp_in I rx_n gt_rxn_in I \
                                      tx_p gt_txp_out O tx_n gt_txn_out O} {
        create_bd_port -dir $direction ${port}_$external
        connect_bd_net [get_bd_ports ${port}_$external] [get_bd_pins sfp_mac/${pin}_$index]
    }
    create_bd_port -dir O ${port}_tx_disable
    zynqmm_cell xilinx.com:ip:xlconstant ${port}_tx_enable_const [list CONFIG.CONST_VAL {0}]
    connect_bd_net [get_bd_pins ${port}_tx_enable_const/dout] [get_bd_ports ${port}_tx_disable]
    connect_bd_intf_net [get_bd_intf_pins sfp_mac/axis_rx_$index] \
        [get_bd_intf_pins ${port}_rx_fifo/S_AXIS]
    connect_bd_net [get_bd_pins sfp_mac/rx_clk_out_$index] [get_bd_pins ${port}_rx_fifo/s_axis_aclk]
    connect_bd_net [get_bd_pins $core_clk] [get_bd_pins ${port}_rx_fifo/m_axis_aclk]
    connect_bd_net [get_bd_pins $core_rstn] [get_bd_pins ${port}_rx_fifo/s_axis_aresetn]
    return ${port}_rx_fifo/M_AXIS
}

# One RGMII port: Tri-Mode Ethernet MAC (8-bit stream at 125 MHz) into an
# asynchronous FIFO and an 8 -> 64 bit width converter at the core clock.
proc zynqmm_mac_rgmii {port core_clk core_rstn aux_clk} {
    zynqmm_cell xilinx.com:ip:tri_mode_ethernet_mac ${port}_mac [list \
        CONFIG.Physical_Interface {RGMII} CONFIG.MAC_Speed {1000_Mbps} \
        CONFIG.Management_Interface {true} CONFIG.SupportLevel {1}]
    zynqmm_cell xilinx.com:ip:clk_wiz ${port}_clocks [list \
        CONFIG.CLKOUT1_REQUESTED_OUT_FREQ {125} CONFIG.CLKOUT2_USED {true} \
        CONFIG.CLKOUT2_REQUESTED_OUT_FREQ {333.333}]
    zynqmm_cell xilinx.com:ip:axis_data_fifo ${port}_rx_fifo [list \
        CONFIG.FIFO_DEPTH {4096} CONFIG.IS_ACLK_ASYNC {1} CONFIG.FIFO_MODE {2}]
    zynqmm_cell xilinx.com:ip:axis_dwidth_converter ${port}_rx_width [list \
        CONFIG.M_TDATA_NUM_BYTES {8}]
    create_bd_intf_port -mode Master -vlnv xilinx.com:interface:rgmii_rtl:1.0 $port
    create_bd_intf_port -mode Master -vlnv xilinx.com:interface:mdio_rtl:1.0 ${port}_mdio
    create_bd_port -dir O -type rst ${port}_phy_reset_n
    connect_bd_intf_net [get_bd_intf_ports $port] [get_bd_intf_pins ${port}_mac/rgmii]
    connect_bd_intf_net [get_bd_intf_ports ${port}_mdio] [get_bd_intf_pins ${port}_mac/mdio]
    connect_bd_net [get_bd_pins $core_rstn] [get_bd_ports ${port}_phy_reset_n]
    connect_bd_net [get_bd_pins $aux_clk] [get_bd_pins ${port}_clocks/clk_in1]
    connect_bd_net [get_bd_pins ${port}_clocks/clk_out1] [get_bd_pins ${port}_mac/gtx_clk]
    connect_bd_net [get_bd_pins ${port}_clocks/clk_out2] [get_bd_pins ${port}_mac/refclk]
    connect_bd_intf_net [get_bd_intf_pins ${port}_mac/m_axis_rx] \
        [get_bd_intf_pins ${port}_rx_fifo/S_AXIS]
    connect_bd_net [get_bd_pins ${port}_mac/rx_mac_aclk] [get_bd_pins ${port}_rx_fifo/s_axis_aclk]
    connect_bd_net [get_bd_pins $core_clk] [get_bd_pins ${port}_rx_fifo/m_axis_aclk] \
        [get_bd_pins ${port}_rx_width/aclk]
    connect_bd_net [get_bd_pins $core_rstn] [get_bd_pins ${port}_rx_fifo/s_axis_aresetn] \
        [get_bd_pins ${port}_rx_width/aresetn]
    connect_bd_intf_net [get_bd_intf_pins ${port}_rx_fifo/M_AXIS] \
        [get_bd_intf_pins ${port}_rx_width/S_AXIS]
    return ${port}_rx_width/M_AXIS
}

# PS-bridge ingest: the host writes received frames to memory and an MM2S
# channel streams them into the fabric at the core clock.
proc zynqmm_ps_bridge {feed} {
    zynqmm_cell xilinx.com:ip:axi_dma ingest_dma_$feed [list \
        CONFIG.c_include_sg {0} CONFIG.c_include_mm2s {1} CONFIG.c_include_s2mm {0} \
        CONFIG.c_sg_length_width {26} CONFIG.c_m_axis_mm2s_tdata_width {64} \
        CONFIG.c_mm2s_burst_size {64}]
    return ingest_dma_$feed/M_AXIS_MM2S
}

proc zynqmm_block_design {name} {
    global zynqmm
    create_bd_design $name
    set ps [zynqmm_ps]
    set clk [dict get $ps clk]

    zynqmm_cell xilinx.com:ip:proc_sys_reset core_reset
    connect_bd_net [get_bd_pins $clk] [get_bd_pins core_reset/slowest_sync_clk]
    connect_bd_net [get_bd_pins [dict get $ps resetn]] [get_bd_pins core_reset/ext_reset_in]
    set rstn core_reset/peripheral_aresetn

    create_bd_cell -type module -reference $zynqmm(fabric_top) fabric
    connect_bd_net [get_bd_pins $clk] [get_bd_pins fabric/clk]
    connect_bd_net [get_bd_pins core_reset/peripheral_reset] [get_bd_pins fabric/rst]

    # Records to memory: one S2MM channel per record stream of the top (the
    # whole fabric has one; the feed path has book records and feed events).
    set record_dmas {}
    foreach {stream dma} $zynqmm(record_streams) {
        zynqmm_cell xilinx.com:ip:axi_dma $dma [list \
            CONFIG.c_include_sg {0} CONFIG.c_include_mm2s {0} CONFIG.c_include_s2mm {1} \
            CONFIG.c_sg_length_width {26} CONFIG.c_s2mm_burst_size {64} \
            CONFIG.c_m_axi_s2mm_data_width {64}]
        connect_bd_intf_net [get_bd_intf_pins fabric/$stream] [get_bd_intf_pins $dma/S_AXIS_S2MM]
        lappend record_dmas $dma
    }

    # Feeds A and B into the fabric.
    set feed_ports [lsort -unique [list $zynqmm(feed_a) $zynqmm(feed_b)]]
    set ten_gig {}
    foreach port $feed_ports {
        if {[dict get $zynqmm(ethernet) $port kind] eq "10gbase-r"
            && [dict get $zynqmm(ethernet) $port attach] eq "pl-mac"} {
            lappend ten_gig $port
        }
    }
    foreach feed {a b} port [list $zynqmm(feed_a) $zynqmm(feed_b)] {
        set kind [dict get $zynqmm(ethernet) $port kind]
        set attach [dict get $zynqmm(ethernet) $port attach]
        if {$attach eq "ps-bridge"} {
            set source [zynqmm_ps_bridge $feed]
        } elseif {$kind eq "10gbase-r"} {
            set source [zynqmm_mac_10g $port [lsearch $ten_gig $port] [llength $ten_gig] \
                            $clk $rstn]
        } elseif {$kind eq "rgmii"} {
            set source [zynqmm_mac_rgmii $port $clk $rstn [dict get $ps aux_clk]]
        } else {
            error "no ingest for $port ($attach, $kind)"
        }
        connect_bd_intf_net [get_bd_intf_pins $source] [get_bd_intf_pins fabric/s_axis_$feed]
    }

    # Control: PS master -> SmartConnect -> fabric registers and every AXI-Lite slave.
    set lite_slaves [list fabric/s_axil]
    set dma_masters {}
    foreach dma $record_dmas {
        lappend lite_slaves $dma/S_AXI_LITE
        lappend dma_masters $dma/M_AXI_S2MM
    }
    foreach feed {a b} {
        if {[llength [get_bd_cells -quiet ingest_dma_$feed]]} {
            lappend lite_slaves ingest_dma_$feed/S_AXI_LITE
            lappend dma_masters ingest_dma_$feed/M_AXI_MM2S
        }
    }
    zynqmm_cell xilinx.com:ip:smartconnect ctrl_interconnect [list \
        CONFIG.NUM_SI {1} CONFIG.NUM_MI [llength $lite_slaves]]
    connect_bd_intf_net [get_bd_intf_pins [dict get $ps ctrl]] \
        [get_bd_intf_pins ctrl_interconnect/S00_AXI]
    set index 0
    foreach slave $lite_slaves {
        connect_bd_intf_net [get_bd_intf_pins ctrl_interconnect/[format M%02d_AXI $index]] \
            [get_bd_intf_pins $slave]
        incr index
    }

    # Data: DMA masters -> SmartConnect -> PS high-performance port.
    zynqmm_cell xilinx.com:ip:smartconnect data_interconnect [list \
        CONFIG.NUM_SI [llength $dma_masters] CONFIG.NUM_MI {1}]
    set index 0
    foreach master $dma_masters {
        connect_bd_intf_net [get_bd_intf_pins $master] \
            [get_bd_intf_pins data_interconnect/[format S%02d_AXI $index]]
        incr index
    }
    connect_bd_intf_net [get_bd_intf_pins data_interconnect/M00_AXI] \
        [get_bd_intf_pins [dict get $ps data]]

    # Everything on the PS side runs at the core clock and its reset; each DMA
    # signals completion to the PS.
    set clocked [list [dict get $ps ctrl_clk] [dict get $ps data_clk] \
                     ctrl_interconnect/aclk data_interconnect/aclk]
    set reset_pins [list ctrl_interconnect/aresetn data_interconnect/aresetn]
    set interrupts {}
    foreach dma $record_dmas {
        lappend clocked $dma/s_axi_lite_aclk $dma/m_axi_s2mm_aclk
        lappend reset_pins $dma/axi_resetn
        lappend interrupts $dma/s2mm_introut
    }
    foreach feed {a b} {
        if {[llength [get_bd_cells -quiet ingest_dma_$feed]]} {
            lappend clocked ingest_dma_$feed/s_axi_lite_aclk ingest_dma_$feed/m_axi_mm2s_aclk
            lappend reset_pins ingest_dma_$feed/axi_resetn
            lappend interrupts ingest_dma_$feed/mm2s_introut
        }
    }
    foreach pin $clocked {
        connect_bd_net [get_bd_pins $clk] [get_bd_pins $pin]
    }
    foreach pin $reset_pins {
        connect_bd_net [get_bd_pins $rstn] [get_bd_pins $pin]
    }
    zynqmm_cell xilinx.com:ip:xlconcat irq_concat [list CONFIG.NUM_PORTS [llength $interrupts]]
    set index 0
    foreach source $interrupts {
        connect_bd_net [get_bd_pins $source] [get_bd_pins irq_concat/In$index]
        incr index
    }
    connect_bd_net [get_bd_pins irq_concat/dout] [get_bd_pins [dict get $ps irq]]

    assign_bd_address
    validate_bd_design
    save_bd_design
}
