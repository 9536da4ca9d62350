# Dry run of build.tcl under plain tclsh: every Vivado command it uses is a
# stub that appends the call to a record file and answers with a plausible
# value.  A command not stubbed here is an error, so a misspelt Vivado
# command fails the dry run as it would fail in Vivado.
#
#   tclsh dryrun.tcl <record_file> <vivado_version> <board> <config.tcl> <out_dir>
#
# Record format: one call per line, fields separated by \x1f (command, then
# each argument as passed); newlines inside arguments are written as \n.

lassign $argv zynqmm_record_file zynqmm_stub_version
set argv [lrange $argv 2 end]
set argc [llength $argv]
set zynqmm_dry_run 1
set zynqmm_record_channel [open $zynqmm_record_file w]

proc zynqmm_record {command args} {
    set fields [list $command]
    foreach arg $args {
        lappend fields [string map [list "\n" "\\n" "\x1f" " "] $arg]
    }
    puts $::zynqmm_record_channel [join $fields "\x1f"]
}

# Answers: the object a query names (the last non-option argument).
proc zynqmm_named {arguments} {
    set names {}
    foreach arg $arguments {
        if {![string match -* $arg]} { lappend names $arg }
    }
    return [lindex $names end]
}

foreach command {
    create_project set_property add_files update_compile_order create_bd_design
    create_bd_port create_bd_intf_port connect_bd_net connect_bd_intf_net
    apply_bd_automation assign_bd_address validate_bd_design save_bd_design
    generate_target launch_runs wait_on_run
} {
    proc $command {args} "zynqmm_record $command {*}\$args; return \[zynqmm_named \$args\]"
}
foreach command {get_bd_pins get_bd_intf_pins get_bd_ports get_bd_intf_ports get_runs get_files} {
    proc $command {args} "return \[zynqmm_named \$args\]"
}
proc create_bd_cell {args} {
    zynqmm_record create_bd_cell {*}$args
    return [zynqmm_named $args]
}
# Cells exist once created.
proc get_bd_cells {args} {
    set name [zynqmm_named $args]
    flush $::zynqmm_record_channel
    set channel [open $::zynqmm_record_file r]
    set text [read $channel]
    close $channel
    foreach line [split $text "\n"] {
        set fields [split $line "\x1f"]
        if {[lindex $fields 0] eq "create_bd_cell" && [lindex $fields end] eq $name} {
            return $name
        }
    }
    if {"-quiet" in $args} { return {} }
    error "get_bd_cells: no cell $name"
}
proc get_board_parts {args} { return [string map {* dryrun} [zynqmm_named $args]] }
proc current_project {args} { return zynqmm }
proc current_fileset {args} { return sources_1 }
proc version {args} { return $::zynqmm_stub_version }
proc make_wrapper {args} {
    zynqmm_record make_wrapper {*}$args
    return /dryrun/zynqmm_wrapper.v
}
proc get_property {name object} {
    switch -- $name {
        PROGRESS { return 100% }
        STATUS { return {write_bitstream Complete!} }
        DIRECTORY { return /dryrun/$object }
        default { return {} }
    }
}

set zynqmm_status [catch {source [file join [file dirname [info script]] build.tcl]} zynqmm_error]
close $zynqmm_record_channel
if {$zynqmm_status} {
    puts stderr "dry run failed: $zynqmm_error"
    exit 1
}
exit 0
