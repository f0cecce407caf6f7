//! docs/cli.md shows `local-stack`'s `--help` as the binary prints it: every text block of
//! that page that starts with `$ local-stack` is run and compared, and every subcommand the
//! binary lists has its own block. (The docs test checks that the flags the other docs
//! give the binary are on that page.)

#[path = "../../tests/src/cli_help.rs"]
mod cli_help;

#[test]
fn the_help_on_the_command_line_page_is_what_the_binary_prints() {
    cli_help::check("local-stack", env!("CARGO_BIN_EXE_local-stack"));
}
