//! The check behind `local-stack/tests/help.rs` and `sidecar/tests/help.rs` (included by
//! path: a binary's `--help` can only be run from its own package's tests): docs/cli.md
//! shows each binary's `--help` as it prints it.

use std::process::Command;

const CLI_DOC: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/cli.md");

/// The page's `$ <name> ...` blocks: the arguments, and the text shown after them.
fn documented(name: &str) -> Vec<(Vec<String>, String)> {
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
        if words.next() != Some(name) {
            continue;
        }
        out.push((words.map(str::to_owned).collect(), rest.join("\n")));
    }
    out
}

/// What the binary `exe` prints for `args`, with an empty environment (clap shows the
/// values of set environment variables in `--help`).
fn printed(name: &str, exe: &str, args: &[String]) -> String {
    let out = Command::new(exe)
        .args(args)
        .env_clear()
        .output()
        .unwrap_or_else(|e| panic!("running {name} {}: {e}", args.join(" ")));
    assert!(
        out.status.success(),
        "{name} {} failed: {}",
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

/// Checks docs/cli.md against binary `name` (built at `exe`): every `$ <name> ...` block
/// is what the binary prints, and every subcommand has its block.
pub fn check(name: &str, exe: &str) {
    let blocks = documented(name);
    assert!(
        blocks.iter().any(|(args, _)| args == &["--help"]),
        "docs/cli.md has no `$ {name} --help` block"
    );
    for (args, shown) in &blocks {
        let printed = printed(name, exe, args);
        assert_eq!(
            normalized(shown),
            normalized(&printed),
            "docs/cli.md's `$ {name} {}` is not what the binary prints; paste this:\n{printed}",
            args.join(" ")
        );
    }
    let help = printed(name, exe, &["--help".to_owned()]);
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
            "docs/cli.md has no `$ {name} {sub} --help` block"
        );
    }
}
