# zynqmm overlay build: project, block design, bitstream, .hwh.
#
#   vivado -mode batch -source overlays/zynqmm/build.tcl \
#          -tclargs <board> <config.tcl> <out_dir>
#
# <config.tcl> is written by `python -m overlays.build` from board/<board>/board.toml
# (overlays/config.py): part, clocks, Ethernet ports, the fabric top the board's
# [fabric] table names, its generated Verilog and the record streams it sends.
# Results: <out_dir>/zynqmm.bit and <out_dir>/zynqmm.hwh (the names PYNQ pairs).

set zynqmm_required_vivado 2024.2

if {[llength $argv] != 3} {
    error "usage: vivado -mode batch -source build.tcl -tclargs <board> <config.tcl> <out_dir>"
}
lassign $argv zynqmm_board zynqmm_config_file zynqmm_out_dir

set zynqmm_running [lindex [split [version -short] "_ "] 0]
if {$zynqmm_running ne $zynqmm_required_vivado} {
    error "zynqmm overlay needs Vivado $zynqmm_required_vivado, this is Vivado $zynqmm_running"
}

source $zynqmm_config_file
if {$zynqmm(board) ne $zynqmm_board} {
    error "config $zynqmm_config_file is for board $zynqmm(board), not $zynqmm_board"
}
if {$zynqmm(vivado) ne $zynqmm_required_vivado} {
    error "config $zynqmm_config_file was written for Vivado $zynqmm(vivado)"
}

# File operations go through here so a dry run records them instead.
proc zynqmm_file {op args} {
    if {[info exists ::zynqmm_dry_run]} {
        zynqmm_record file_$op {*}$args
        return
    }
    file $op {*}$args
}

set zynqmm_project_dir [file join $zynqmm_out_dir project]
zynqmm_file mkdir $zynqmm_out_dir
create_project -force zynqmm $zynqmm_project_dir -part $zynqmm(part)
set zynqmm_board_parts [get_board_parts -quiet $zynqmm(board_part)]
if {[llength $zynqmm_board_parts] == 0} {
    error "Vivado has no board file matching $zynqmm(board_part); install it from the Vivado board store"
}
set_property board_part [lindex [lsort $zynqmm_board_parts] end] [current_project]
set_property target_language Verilog [current_project]

foreach zynqmm_source $zynqmm(rtl_sources) {
    add_files -norecurse $zynqmm_source
}
add_files -fileset constrs_1 -norecurse $zynqmm(constraints)
update_compile_order -fileset sources_1

source [file join [file dirname [info script]] block_design.tcl]
zynqmm_block_design zynqmm

set zynqmm_bd_file [get_files zynqmm.bd]
generate_target all $zynqmm_bd_file
set zynqmm_wrapper [make_wrapper -files $zynqmm_bd_file -top]
add_files -norecurse $zynqmm_wrapper
set_property top zynqmm_wrapper [current_fileset]
update_compile_order -fileset sources_1

launch_runs impl_1 -to_step write_bitstream -jobs $zynqmm(jobs)
wait_on_run impl_1
if {[get_property PROGRESS [get_runs impl_1]] ne "100%"} {
    error "implementation did not complete: [get_property STATUS [get_runs impl_1]]"
}

set zynqmm_impl_dir [get_property DIRECTORY [get_runs impl_1]]
set zynqmm_gen_dir [file join $zynqmm_project_dir zynqmm.gen sources_1 bd zynqmm hw_handoff]
zynqmm_file copy -force [file join $zynqmm_impl_dir zynqmm_wrapper.bit] \
    [file join $zynqmm_out_dir zynqmm.bit]
zynqmm_file copy -force [file join $zynqmm_gen_dir zynqmm.hwh] \
    [file join $zynqmm_out_dir zynqmm.hwh]
puts "zynqmm: wrote [file join $zynqmm_out_dir zynqmm.bit] and zynqmm.hwh"
