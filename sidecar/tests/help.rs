//! docs/cli.md shows `health-sidecar`'s `--help` as the binary prints it: every text block of
//! that page that starts with `$ health-sidecar` is run and compared, and every subcommand the
//! binary lists has its own block. (The docs test checks that the flags the other docs
//! give the binary are on that page.)

use std::process::Command;

const CLI_DOC: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/cli.md");

/// The page's `$ health-sidecar ...` blocks: the arguments, and the text shown after them.
fn documented() -> Vec<(Vec<String>, String)> {
    let text =
        std::fs::read_to_string(CLI_DOC).unwrap_or_else(|e| panic!("reading docs/cli.md: {e}"));
    let mut out = Vec::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        if line.trim() != "```text" {
            continue;
        }
        let block: Vec<&str> = lines
            .by_ref()
            .take_while(|l| !l.starts_with("```"))
            .collect();
        let Some((first, rest)) = block.split_first() else {
            continue;
        };
        let Some(invocation) = first.strip_prefix("$ ") else {
            continue;
        };
        let mut words = invocation.split_whitespace();
        if words.next() != Some("health-sidecar") {
            continue;
        }
        out.push((words.map(str::to_owned).collect(), rest.join("\n")));
    }
    out
}

/// What the binary prints for `args`, with an empty environment (clap shows the values of
/// set environment variables in `--help`).
fn printed(args: &[String]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_health-sidecar"))
        .args(args)
        .env_clear()
        .output()
        .unwrap_or_else(|e| panic!("running health-sidecar {}: {e}", args.join(" ")));
    assert!(
        out.status.success(),
        "health-sidecar {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn normalized(text: &str) -> String {
    text.lines()
        .map(str::trim_end)
        .collect::<Vec<_>>()
        .join("\n")
        .trim()
        .to_owned()
}

#[test]
fn the_help_on_the_command_line_page_is_what_the_binary_prints() {
    let blocks = documented();
    assert!(
        blocks.iter().any(|(args, _)| args == &["--help"]),
        "docs/cli.md has no `$ health-sidecar --help` block"
    );
    for (args, shown) in &blocks {
        let printed = printed(args);
        assert_eq!(
            normalized(shown),
            normalized(&printed),
            "docs/cli.md's `$ health-sidecar {}` is not what the binary prints; paste this:\n{printed}",
            args.join(" ")
        );
    }
    let help = printed(&["--help".to_owned()]);
    let subcommands: Vec<&str> = help
        .lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|c| *c != "help")
        .collect();
    for sub in subcommands {
        assert!(
            blocks
                .iter()
                .any(|(args, _)| args.first().map(String::as_str) == Some(sub)),
            "docs/cli.md has no `$ health-sidecar {sub} --help` block"
        );
    }
}
