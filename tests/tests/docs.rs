//! The repository's documentation stands alone and stays true:
//! - no links out of the repository to the design notes it was built from, no references to
//!   issue numbers, no link to a file or heading that is not there, no file named that is
//!   not there;
//! - every command of the README and the guide runs, in order, against a fresh local stack
//!   and answers what the docs show after it; the flags the docs give the binaries are in
//!   their documented `--help` (docs/cli.md, which the binaries' own tests compare with
//!   their `--help`); the scripts, benchmarks and tests CONTRIBUTING.md names exist;
//! - the README's screenshots show the dashboard as its sources are now;
//! - the benchmark summary names only figures a benchmark (or test) prints;
//! - the API reference indexes every route and gives every event type's fields as the
//!   OpenAPI document does;
//! - the container build context leaves out what the build does not need.

// Helpers here are not `#[test]` functions, which clippy's allow-expect-in-tests covers:
// they too stop a test with `expect`, saying what they were doing.
#![allow(clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;

const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");

/// The documents a reader meets: the README, CONTRIBUTING.md and docs/.
const MARKDOWN: [&str; 2] = ["README.md", "CONTRIBUTING.md"];

fn read(relative: &str) -> String {
    std::fs::read_to_string(format!("{ROOT}/{relative}"))
        .unwrap_or_else(|e| panic!("reading {relative}: {e}"))
}

/// Every document as (path relative to the root, text): the Markdown files at the root and
/// the Markdown and JSON of docs/.
fn documents() -> Vec<(String, String)> {
    let mut paths: Vec<String> = MARKDOWN.iter().map(|p| (*p).to_owned()).collect();
    let mut docs: Vec<String> = std::fs::read_dir(format!("{ROOT}/docs"))
        .expect("listing docs/")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "md" || e == "json"))
        .filter_map(|p| {
            p.file_name()
                .map(|n| format!("docs/{}", n.to_string_lossy()))
        })
        .collect();
    docs.sort();
    paths.extend(docs);
    paths
        .into_iter()
        .map(|p| {
            let text = read(&p);
            (p, text)
        })
        .collect()
}

fn markdown_documents() -> Vec<(String, String)> {
    documents()
        .into_iter()
        .filter(|(p, _)| p.ends_with(".md"))
        .collect()
}

#[test]
fn docs_point_nowhere_outside_the_repository_and_name_no_issue_numbers() {
    for (path, text) in documents() {
        assert!(
            !text.contains("../shared"),
            "{path} links outside the repository"
        );
        let lower = text.to_lowercase();
        for (i, _) in lower.match_indices("issue ") {
            let next = lower[i + 6..].chars().next().unwrap_or(' ');
            assert!(
                !next.is_ascii_digit(),
                "{path} names an issue number: {}",
                &text[i..(i + 12).min(text.len())]
            );
        }
    }
}

#[test]
fn the_container_build_context_leaves_out_build_output_and_data() {
    let ignore = std::fs::read_to_string(format!("{ROOT}/.dockerignore"))
        .unwrap_or_else(|e| panic!(".dockerignore: {e}"));
    for entry in ["target/", ".tools/", "data/", ".git/"] {
        assert!(
            ignore.lines().any(|l| l.trim() == entry),
            ".dockerignore lacks {entry}"
        );
    }
}

// ---------------------------------------------------------------------------------------
// Markdown: headings, links, code blocks.

/// The anchor GitHub gives a heading: lower case, punctuation dropped (but `-` and `_`),
/// spaces as `-`.
fn slug(heading: &str) -> String {
    heading
        .trim()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c.to_ascii_lowercase()),
            _ => None,
        })
        .flat_map(char::to_lowercase)
        .collect()
}

/// The anchors of a Markdown document's headings (a repeated heading gets `-1`, `-2`, ...),
/// leaving out fenced code blocks.
fn anchors(text: &str) -> BTreeSet<String> {
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut out = BTreeSet::new();
    for line in prose_lines(text) {
        if !line.starts_with('#') {
            continue;
        }
        let heading = line.trim_start_matches('#');
        if !heading.starts_with(' ') {
            continue;
        }
        let base = slug(heading);
        let n = seen.entry(base.clone()).or_default();
        out.insert(if *n == 0 {
            base.clone()
        } else {
            format!("{base}-{n}")
        });
        *n += 1;
    }
    out
}

/// The targets of a document's inline links `[text](target)`, outside code.
fn link_targets(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in prose_lines(text) {
        let mut rest = line;
        while let Some(i) = rest.find("](") {
            let after = &rest[i + 2..];
            let Some(end) = after.find(')') else { break };
            out.push(after[..end].to_owned());
            rest = &after[end..];
        }
    }
    out
}

#[test]
fn every_relative_link_reaches_a_file_and_heading_that_exist() {
    let docs: BTreeMap<String, String> = markdown_documents().into_iter().collect();
    let mut broken = Vec::new();
    for (path, text) in &docs {
        let dir = Path::new(path).parent().unwrap_or(Path::new(""));
        for target in link_targets(text) {
            if target.starts_with("http://") || target.starts_with("https://") {
                continue;
            }
            let (file, anchor) = target.split_once('#').unwrap_or((&target, ""));
            let resolved = if file.is_empty() {
                path.clone()
            } else {
                normalize(&dir.join(file))
            };
            if !Path::new(&format!("{ROOT}/{resolved}")).exists() {
                broken.push(format!("{path}: {target} (no {resolved})"));
                continue;
            }
            if anchor.is_empty() {
                continue;
            }
            let Some(linked) = docs.get(&resolved) else {
                broken.push(format!(
                    "{path}: {target} (an anchor in a non-Markdown file)"
                ));
                continue;
            };
            if !anchors(linked).contains(anchor) {
                broken.push(format!("{path}: {target} (no such heading in {resolved})"));
            }
        }
    }
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}

/// `a/b/../c` as `a/c`.
fn normalize(path: &Path) -> String {
    let mut parts: Vec<String> = Vec::new();
    for c in path.components() {
        match c {
            std::path::Component::ParentDir => {
                parts.pop();
            }
            std::path::Component::Normal(p) => parts.push(p.to_string_lossy().into_owned()),
            _ => {}
        }
    }
    parts.join("/")
}

/// The lines of a document outside its fenced code blocks (the fences left out too).
fn prose_lines(text: &str) -> impl Iterator<Item = &str> {
    let mut fenced = false;
    text.lines().filter(move |line| {
        if line.starts_with("```") {
            fenced = !fenced;
            return false;
        }
        !fenced
    })
}

/// A document without its fenced code blocks.
fn prose(text: &str) -> String {
    prose_lines(text).flat_map(|line| [line, "\n"]).collect()
}

/// The inline code spans of a document's prose.
fn inline_code(text: &str) -> Vec<String> {
    prose(text)
        .split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect()
}

/// Paths of the repository the docs name in backticks (`shared/src/ws/`,
/// `functions/health-lambda`, ...) exist: a doc naming a binary or module that is gone
/// misleads the next reader.
#[test]
fn every_file_the_docs_name_exists() {
    const ROOTS: [&str; 11] = [
        "shared/",
        "functions/",
        "local-stack/",
        "sidecar/",
        "tests/",
        "dashboard/",
        "infra/",
        "scripts/",
        "docs/",
        ".ci/",
        ".cargo/",
    ];
    let mut missing = Vec::new();
    for (path, text) in markdown_documents() {
        for quoted in inline_code(&text) {
            let quoted = quoted.as_str();
            let candidate = quoted.trim_end_matches('/');
            let named = ROOTS.iter().any(|r| quoted.starts_with(r))
                && !quoted.contains([' ', '<', '*', '{', '$'])
                // Written by the tests, not kept in the repository.
                && !quoted.starts_with("tests/artifacts");
            if named && !Path::new(&format!("{ROOT}/{candidate}")).exists() {
                missing.push(format!("{path}: `{quoted}`"));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "the docs name files that do not exist:\n{}",
        missing.join("\n")
    );
}

/// A fenced code block of a Markdown document.
struct Block {
    /// The info string: `sh`, `yaml`, `text`, ...
    lang: String,
    /// Why the tests do not run it, when the line before the fence is
    /// `<!-- not run: why -->`.
    not_run: Option<String>,
    /// Its lines.
    lines: Vec<String>,
    /// Line number (1-based) of its first line in the document.
    line: usize,
}

fn blocks(text: &str) -> Vec<Block> {
    let mut out = Vec::new();
    let mut lines = text.lines().enumerate();
    let mut previous = "";
    while let Some((i, line)) = lines.next() {
        if let Some(lang) = line.strip_prefix("```") {
            let not_run = previous
                .trim()
                .strip_prefix("<!-- not run:")
                .map(|why| why.trim_end_matches("-->").trim().to_owned());
            let body = lines
                .by_ref()
                .map(|(_, l)| l)
                .take_while(|l| !l.starts_with("```"))
                .map(str::to_owned)
                .collect();
            out.push(Block {
                lang: lang.trim().to_owned(),
                not_run,
                lines: body,
                line: i + 2,
            });
            previous = "";
        } else if !line.trim().is_empty() {
            previous = line;
        }
    }
    out
}

/// One shell command of a block (its continuation lines and the line breaks inside its
/// quotes joined), with the comment lines that follow it: what the docs show it answers.
#[derive(Debug)]
struct Shell {
    text: String,
    shown: String,
    line: usize,
}

/// Follows a line's shell quoting: the quote still open at its end, if any.
fn open_quote(line: &str, mut quote: Option<char>) -> Option<char> {
    let mut chars = line.chars().peekable();
    let mut previous = ' ';
    while let Some(c) = chars.next() {
        match (quote, c) {
            (None, '#') if previous.is_whitespace() => break,
            (None, '\'' | '"') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            (None | Some('"'), '\\') => {
                chars.next();
            }
            _ => {}
        }
        previous = c;
    }
    quote
}

fn shell_commands(block: &Block) -> Vec<Shell> {
    let mut out: Vec<Shell> = Vec::new();
    let mut open: Option<Shell> = None;
    let mut quote = None;
    for (k, line) in block.lines.iter().enumerate() {
        if let Some(mut command) = open.take() {
            command.text.push('\n');
            command.text.push_str(line);
            quote = open_quote(line, quote);
            if quote.is_some() || line.trim_end().ends_with('\\') {
                open = Some(command);
            } else {
                out.push(command);
            }
            continue;
        }
        let trimmed = line.trim_start();
        if trimmed.is_empty() {
            continue;
        }
        if let Some(comment) = trimmed.strip_prefix('#') {
            if let Some(last) = out.last_mut() {
                last.shown
                    .push_str(comment.strip_prefix(' ').unwrap_or(comment));
                last.shown.push('\n');
            }
            continue;
        }
        let command = Shell {
            text: line.clone(),
            shown: String::new(),
            line: block.line + k,
        };
        quote = open_quote(line, None);
        if quote.is_some() || line.trim_end().ends_with('\\') {
            open = Some(command);
        } else {
            out.push(command);
        }
    }
    out.extend(open);
    out
}

/// Every shell command of a document, run or not, with its block.
fn all_shell_commands(text: &str) -> Vec<(Shell, bool)> {
    blocks(text)
        .iter()
        .filter(|b| b.lang == "sh")
        .flat_map(|b| {
            let run = b.not_run.is_none();
            shell_commands(b).into_iter().map(move |c| (c, run))
        })
        .collect()
}

#[test]
fn the_shell_block_parser_joins_continuations_and_quoted_lines_and_keeps_answers() {
    let text = "intro\n\n```sh\nKEY=$(cat data/local-api-key)   # the key\ncurl -s -X POST url \\\n  -d '{\"a\": [\n   1]}'\n# {\"accepted\":1}\n# more\necho \"it's\"\n```\n\n<!-- not run: a server -->\n```sh\ncargo run\n```\n";
    let parsed = blocks(text);
    assert_eq!(parsed.len(), 2);
    assert_eq!(parsed[1].not_run.as_deref(), Some("a server"));
    let commands = shell_commands(&parsed[0]);
    let texts: Vec<&str> = commands.iter().map(|c| c.text.as_str()).collect();
    assert_eq!(
        texts,
        [
            "KEY=$(cat data/local-api-key)   # the key",
            "curl -s -X POST url \\\n  -d '{\"a\": [\n   1]}'",
            "echo \"it's\""
        ]
    );
    assert_eq!(commands[1].shown, "{\"accepted\":1}\nmore\n");
    assert_eq!(commands[1].line, 5);
}

// ---------------------------------------------------------------------------------------
// What the docs show an answer to be.

/// The `"field":value` pairs with a plain value (a string, a number, true, false or null)
/// in what the docs show an answer to be, leaving out those whose value is elided (`…`).
fn fragments(shown: &str) -> Vec<String> {
    let bytes = shown.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'"' {
            i += 1;
            continue;
        }
        let key_end = (i + 1..bytes.len())
            .find(|&j| !(bytes[j].is_ascii_alphanumeric() || bytes[j] == b'_'))
            .unwrap_or(bytes.len());
        if key_end == i + 1 || !shown[key_end..].starts_with("\":") {
            i += 1;
            continue;
        }
        let value_start = key_end + 2;
        let rest = &shown[value_start..];
        let value_len = if rest.starts_with('"') {
            let mut escaped = false;
            rest.char_indices()
                .skip(1)
                .find(|&(_, c)| {
                    let end = c == '"' && !escaped;
                    escaped = c == '\\' && !escaped;
                    end
                })
                .map(|(j, _)| j + 1)
        } else if rest.starts_with(|c: char| c.is_ascii_digit() || c == '-') {
            Some(
                rest.find(|c: char| !(c.is_ascii_digit() || matches!(c, '.' | '-' | '+' | 'e')))
                    .unwrap_or(rest.len()),
            )
        } else {
            ["true", "false", "null"]
                .into_iter()
                .find(|w| rest.starts_with(w))
                .map(str::len)
        };
        match value_len {
            Some(n) => {
                let fragment = &shown[i..value_start + n];
                if !fragment.contains('…') && !fragment.contains("...") {
                    out.push(fragment.to_owned());
                }
                i = value_start + n;
            }
            None => i = value_start,
        }
    }
    out
}

#[test]
fn fragments_are_the_plain_fields_of_a_shown_answer() {
    assert_eq!(
        fragments(
            "[{\"alert_id\":\"alert_…_1\",\"severity\":\"warning\",\n  \"n\":-1.5e3,\"ok\":true, \"x\":null, \"list\":[1], \"t\":\"a \\\"q\\\"\"}]"
        ),
        [
            "\"severity\":\"warning\"",
            "\"n\":-1.5e3",
            "\"ok\":true",
            "\"x\":null",
            "\"t\":\"a \\\"q\\\"\""
        ]
    );
}

/// Why `output` is not what the docs show, if it is not: a shown answer that is JSON with
/// nothing elided must equal the output; otherwise every plain field it shows must be in the output, and one
/// without such fields must be how the output starts, up to its first `…`.
fn mismatch(shown: &str, output: &str) -> Option<String> {
    let shown = shown.trim();
    if shown.is_empty() {
        return None;
    }
    let elided = shown.contains('…') || shown.contains("...");
    if let Some(expected) = serde_json::from_str::<Value>(shown)
        .ok()
        .filter(|_| !elided)
    {
        let got = serde_json::from_str::<Value>(output.trim()).ok();
        return (got.as_ref() != Some(&expected)).then(|| format!("not {expected}"));
    }
    let fields = fragments(shown);
    if fields.is_empty() {
        let start = shown.split('…').next().unwrap_or_default().trim_end();
        return (!output.trim_start().starts_with(start))
            .then(|| format!("does not start with {start:?}"));
    }
    let missing: Vec<&String> = fields
        .iter()
        .filter(|f| !output.contains(f.as_str()))
        .collect();
    (!missing.is_empty()).then(|| format!("lacks {missing:?}"))
}

/// `<field>` placeholders of a command, filled with that field's value in the latest
/// earlier answer that has it.
fn fill_placeholders(command: &str, answers: &[String]) -> String {
    let mut out = String::new();
    let mut rest = command;
    while let Some(i) = rest.find('<') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        let name_len = after
            .find(|c: char| !(c.is_ascii_lowercase() || c == '_'))
            .unwrap_or(after.len());
        if name_len == 0 || !after[name_len..].starts_with('>') {
            out.push('<');
            rest = after;
            continue;
        }
        let name = &after[..name_len];
        let needle = format!("\"{name}\":\"");
        let value = answers
            .iter()
            .rev()
            .find_map(|a| {
                let start = a.find(&needle)? + needle.len();
                a[start..].split('"').next()
            })
            .unwrap_or_else(|| panic!("no earlier answer has a {name} for <{name}> in {command}"));
        out.push_str(value);
        rest = &after[name_len + 1..];
    }
    out.push_str(rest);
    out
}

// ---------------------------------------------------------------------------------------
// Running the commands.

/// Where the docs' commands send what cannot leave this machine in a test: the local
/// stack's documented address, and the public endpoints of the examples (a Slack webhook,
/// Slack's API as a probe target), answered here by a local receiver.
fn substitutions(stack: &str, receiver: &str) -> [(&'static str, String); 3] {
    [
        ("http://127.0.0.1:3000", stack.to_owned()),
        ("https://hooks.slack.com", receiver.to_owned()),
        ("https://slack.com", receiver.to_owned()),
    ]
}

/// A command only reads (no method but GET, no body): it may be run again while what it
/// reads is still being decided (an alert raised within 2 s of its event).
fn reads_only(command: &str) -> bool {
    !command.contains(" -X ") && !command.contains(" -d ") && !command.contains("--data")
}

/// Runs every shell block of `doc` that is not marked as not run, command by command in
/// one shell environment (variables carry over), in a fresh directory whose `data/` is a
/// fresh local stack's; fails on the first command that fails or does not answer what the
/// doc shows. Returns how many commands ran.
async fn run_documented_commands(doc: &str) -> usize {
    let text = read(doc);
    let receiver = e2e_tests::Sink::start().await;
    let work = e2e_tests::temp_dir();
    let mut config = shared::config::Config {
        polling_enabled: false,
        ..shared::config::Config::default()
    };
    config.probe_allowed_addresses = vec![receiver.addr.into()];
    let stack = e2e_tests::start(local_stack::Options {
        config,
        ..e2e_tests::stack_options(&work.path().join("data"))
    })
    .await;
    let swaps = substitutions(&stack.url(), &receiver.url(""));
    let state_file = work.path().join(".docs-env");
    let mut env: Vec<(String, String)> = std::env::vars().collect();
    let mut answers: Vec<String> = Vec::new();
    let mut ran = 0;
    for (command, run) in all_shell_commands(&text) {
        if !run {
            continue;
        }
        let mut script = fill_placeholders(&command.text, &answers);
        for (documented, here) in &swaps {
            script = script.replace(documented, here);
        }
        // Strict bash; curl as the docs call it, but failing on an HTTP error status (the
        // docs' `-s` alone would pass a 4xx) and never through a proxy of the environment;
        // every variable the command sets exported, and the environment saved for the next.
        let full = format!(
            "set -euo pipefail\n\
             curl() {{ command curl --noproxy '*' --fail-with-body --show-error \"$@\"; }}\n\
             set -a\n{script}\nset +a\nenv -0 > \"$DOCS_ENV_FILE\"\n"
        );
        let deadline = Instant::now() + Duration::from_secs(5);
        let output = loop {
            let out = tokio::time::timeout(
                Duration::from_secs(30),
                tokio::process::Command::new("bash")
                    .args(["-c", &full])
                    .env_clear()
                    .envs(env.iter().map(|(k, v)| (k, v)))
                    .env("DOCS_ENV_FILE", &state_file)
                    .current_dir(work.path())
                    .kill_on_drop(true)
                    .output(),
            )
            .await
            .unwrap_or_else(|_| {
                panic!("{doc}:{}: still running after 30 s: {script}", command.line)
            })
            .unwrap_or_else(|e| panic!("running bash for {doc}:{}: {e}", command.line));
            let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
            let problem = if out.status.success() {
                mismatch(&command.shown, &stdout)
            } else {
                Some(format!(
                    "failed ({}): {}",
                    out.status,
                    String::from_utf8_lossy(&out.stderr)
                ))
            };
            match problem {
                None => break stdout,
                Some(_) if reads_only(&script) && Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Some(p) => panic!(
                    "{doc}:{}: {script}\n{p}\nanswered: {stdout}\nthe doc shows: {}",
                    command.line, command.shown
                ),
            }
        };
        let saved = std::fs::read(&state_file).unwrap_or_else(|e| {
            panic!(
                "reading the shell's environment after {doc}:{}: {e}",
                command.line
            )
        });
        env = saved
            .split(|b| *b == 0)
            .filter_map(|kv| {
                let kv = String::from_utf8_lossy(kv);
                kv.split_once('=')
                    .map(|(k, v)| (k.to_owned(), v.to_owned()))
            })
            .filter(|(k, _)| k != "DOCS_ENV_FILE")
            .collect();
        answers.push(output);
        ran += 1;
    }
    let _ = stack.stop().await;
    ran
}

#[tokio::test(flavor = "multi_thread")]
async fn every_command_of_the_guide_runs_and_answers_as_shown() {
    let ran = run_documented_commands("docs/guide.md").await;
    assert!(ran >= 25, "only {ran} commands of the guide ran");
}

#[tokio::test(flavor = "multi_thread")]
async fn every_command_of_the_readme_runs_and_answers_as_shown() {
    let ran = run_documented_commands("README.md").await;
    assert!(ran >= 5, "only {ran} commands of the README ran");
}

/// Blocks the tests do not run say why, and are few: what can run here does.
#[test]
fn blocks_left_unrun_say_why() {
    for (path, text) in markdown_documents() {
        for block in blocks(&text) {
            if let Some(why) = &block.not_run {
                assert!(
                    why.len() >= 10,
                    "{path}:{}: say why the block is not run",
                    block.line
                );
                assert_eq!(
                    block.lang, "sh",
                    "{path}:{}: only shell blocks are run",
                    block.line
                );
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Flags, scripts, benchmarks and tests the docs name.

/// docs/cli.md's `--help` texts by invocation (`local-stack create-key --help`, ...): text
/// blocks whose first line is `$ <invocation>`.
fn help_texts() -> BTreeMap<String, String> {
    blocks(&read("docs/cli.md"))
        .into_iter()
        .filter(|b| b.lang == "text")
        .filter_map(|b| {
            let (first, rest) = b.lines.split_first()?;
            let invocation = first.strip_prefix("$ ")?.to_owned();
            Some((invocation, rest.join("\n")))
        })
        .collect()
}

/// The `--flags` of the words after `start` in a command, up to a shell operator.
fn flags_after<'a>(words: &[&'a str], start: usize) -> Vec<&'a str> {
    words[start..]
        .iter()
        .take_while(|w| !matches!(**w, "|" | "&&" | ";" | "#" | ">"))
        .filter(|w| w.starts_with("--"))
        .map(|w| w.split('=').next().unwrap_or(w))
        .collect()
}

/// Every flag the docs give the local stack (`cargo run -- ...`) or the sidecar
/// (`health-sidecar ...`) is in the `--help` docs/cli.md documents for that command; the
/// binaries' own tests compare those texts with the binaries.
#[test]
fn the_flags_the_docs_give_the_binaries_are_in_their_help() {
    let help = help_texts();
    assert!(
        help.contains_key("local-stack --help") && help.contains_key("health-sidecar --help"),
        "docs/cli.md documents both binaries' --help: {:?}",
        help.keys().collect::<Vec<_>>()
    );
    let mut checked = 0;
    let mut unknown = Vec::new();
    for (path, text) in markdown_documents() {
        for (command, _) in all_shell_commands(&text) {
            let words: Vec<&str> = command.text.split_whitespace().collect();
            for (i, w) in words.iter().enumerate() {
                let (invocation, start) =
                    if *w == "--" && i >= 2 && words[i - 2..i] == ["cargo", "run"] {
                        match words.get(i + 1) {
                            Some(sub) if !sub.starts_with('-') => {
                                (format!("local-stack {sub} --help"), i + 2)
                            }
                            _ => ("local-stack --help".to_owned(), i + 1),
                        }
                    } else if w.ends_with("/health-sidecar")
                        || *w == "health-sidecar"
                            && !matches!(
                                i.checked_sub(1).map(|p| words[p]),
                                Some("-p" | "--package" | "--bin")
                            )
                    {
                        ("health-sidecar --help".to_owned(), i + 1)
                    } else {
                        continue;
                    };
                let Some(text) = help.get(&invocation) else {
                    unknown.push(format!(
                        "{path}:{}: no `{invocation}` in docs/cli.md",
                        command.line
                    ));
                    continue;
                };
                for flag in flags_after(&words, start) {
                    checked += 1;
                    let documented = text
                        .split(|c: char| c.is_whitespace() || c == ',' || c == '[' || c == ']')
                        .any(|t| t == flag);
                    if !documented {
                        unknown.push(format!(
                            "{path}:{}: {flag} is not in `{invocation}`",
                            command.line
                        ));
                    }
                }
            }
        }
    }
    assert!(unknown.is_empty(), "{}", unknown.join("\n"));
    assert!(
        checked >= 10,
        "only {checked} flags found in the docs' commands"
    );
}

/// The benchmarks `./scripts/bench` accepts, each with the sources that print its figures:
/// the bench binary's main and the modules its match arm calls.
fn bench_names() -> BTreeMap<String, Vec<String>> {
    let dir = "tests/src/bin/bench";
    let main = read(&format!("{dir}/main.rs"));
    let lines: Vec<&str> = main.lines().collect();
    let indent = |line: &str| line.len() - line.trim_start().len();
    let mut out = BTreeMap::new();
    // An arm `"cost" => cost::cost_benchmark().await,` chooses a benchmark; it ends at the
    // next line as far left as it.
    for (n, line) in lines.iter().enumerate() {
        let Some((name, _)) = line
            .trim_start()
            .strip_prefix('"')
            .and_then(|rest| rest.split_once("\" =>"))
        else {
            continue;
        };
        if name == "all" {
            continue;
        }
        let arm_end = lines[n + 1..]
            .iter()
            .position(|l| !l.trim().is_empty() && indent(l) <= indent(line))
            .map_or(lines.len(), |k| n + 1 + k);
        let branch = lines[n..arm_end].join("\n");
        let mut sources = vec![format!("{dir}/main.rs")];
        for (j, _) in branch.match_indices("::") {
            let module_start = branch[..j]
                .rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .map_or(0, |k| k + 1);
            let file = format!("{dir}/{}.rs", &branch[module_start..j]);
            if Path::new(&format!("{ROOT}/{file}")).exists() && !sources.contains(&file) {
                sources.push(file);
            }
        }
        out.entry(name.to_owned()).or_insert(sources);
    }
    out
}

/// What prints the figures of `command`, or why it is not a command the docs may name.
fn sources_of(command: &str) -> Result<Vec<String>, String> {
    let words: Vec<&str> = command.split_whitespace().collect();
    match words.as_slice() {
        ["./scripts/bench", name, ..] => bench_names()
            .remove(*name)
            .ok_or_else(|| format!("`./scripts/bench {name}`: no such benchmark")),
        ["./scripts/bench"] => Ok(vec!["tests/src/bin/bench/main.rs".to_owned()]),
        [script, ..] | ["CI=true", script, ..] if script.starts_with("./scripts/") => {
            let file = script.trim_start_matches("./").to_owned();
            if Path::new(&format!("{ROOT}/{file}")).exists() {
                Ok(vec![file])
            } else {
                Err(format!("{script} does not exist"))
            }
        }
        ["cargo", "test", "--test", name, ..] => {
            let file = format!("tests/tests/{name}.rs");
            let Ok(test) = std::fs::read_to_string(format!("{ROOT}/{file}")) else {
                return Err(format!("`cargo test --test {name}`: no {file}"));
            };
            let mut sources = vec![file];
            for dir in ["tests/browser", "tests/support"] {
                for entry in std::fs::read_dir(format!("{ROOT}/{dir}"))
                    .expect("listing test helpers")
                    .flatten()
                {
                    let file_name = entry.file_name().to_string_lossy().into_owned();
                    if test.contains(&format!("\"{file_name}\""))
                        || test.contains(&format!("/{file_name}\""))
                    {
                        sources.push(format!("{dir}/{file_name}"));
                    }
                }
            }
            Ok(sources)
        }
        _ => Err(format!(
            "`{command}` is not a bench, script or test command"
        )),
    }
}

/// Whether `label` is printed by one of `sources`: inside a string of a print (Rust, shell,
/// JavaScript), or as a field of the browser test's result.
fn printed_by(sources: &[String], label: &str) -> bool {
    sources.iter().any(|file| {
        read(file).lines().any(|line| {
            line.find(label)
                .is_some_and(|i| line[..i].contains(['"', '\'']) || line[..i].ends_with("result."))
        })
    })
}

/// The cells of a Markdown table's rows under the heading `heading`, by column name.
fn table_under(text: &str, heading: &str) -> Vec<BTreeMap<String, String>> {
    let section = text
        .split_once(&format!("\n{heading}\n"))
        .map(|(_, rest)| rest)
        .unwrap_or_else(|| panic!("no section {heading:?}"));
    let rows: Vec<Vec<String>> = section
        .lines()
        .skip_while(|l| !l.starts_with('|'))
        .take_while(|l| l.starts_with('|'))
        .map(|l| {
            l.trim()
                .trim_matches('|')
                .split(" | ")
                .map(|c| c.trim().to_owned())
                .collect()
        })
        .collect();
    let Some((header, body)) = rows.split_first() else {
        panic!("no table under {heading:?}");
    };
    body.iter()
        .filter(|r| {
            !r.iter()
                .all(|c| c.chars().all(|ch| matches!(ch, '-' | '|' | ':' | ' ')))
        })
        .map(|r| header.iter().cloned().zip(r.iter().cloned()).collect())
        .collect()
}

/// The text between the first pair of backticks of a cell.
fn code(cell: &str) -> Option<&str> {
    cell.split('`').nth(1)
}

/// Each figure of the benchmarks' summary names the command that prints it, and that
/// command exists and prints it: a summary row cannot outlive the benchmark it quotes.
#[test]
fn the_benchmark_summary_names_only_figures_a_benchmark_prints() {
    let text = read("docs/benchmarks.md");
    let rows = table_under(&text, "## Summary");
    assert!(rows.len() >= 15, "the summary has {} rows", rows.len());
    let sections = anchors(&text);
    let mut wrong = Vec::new();
    for row in &rows {
        let figure = row.get("figure").cloned().unwrap_or_default();
        let cell = |name: &str| {
            row.get(name)
                .cloned()
                .unwrap_or_else(|| panic!("the summary has no column {name:?}"))
        };
        let Some(command) = code(&cell("command")).map(str::to_owned) else {
            wrong.push(format!("{figure}: no command in backticks"));
            continue;
        };
        let Some(label) = code(&cell("printed as")).map(str::to_owned) else {
            wrong.push(format!("{figure}: no printed label in backticks"));
            continue;
        };
        match sources_of(&command) {
            Err(e) => wrong.push(format!("{figure}: {e}")),
            Ok(sources) if !printed_by(&sources, &label) => wrong.push(format!(
                "{figure}: `{label}` is printed by none of {sources:?}"
            )),
            Ok(_) => {}
        }
        let met = cell("met");
        if !["yes", "no", "partly", "no goal"].contains(&met.as_str()) {
            wrong.push(format!(
                "{figure}: met is {met:?}, not yes, no, partly or no goal"
            ));
        }
        let measured = cell("measured");
        let dated = measured.len() >= 10
            && measured[..10].chars().enumerate().all(|(i, c)| match i {
                4 | 7 => c == '-',
                _ => c.is_ascii_digit(),
            });
        if !dated {
            wrong.push(format!(
                "{figure}: measured {measured:?} does not start with a date"
            ));
        }
        let section = figure
            .split_once("](#")
            .and_then(|(_, rest)| rest.split(')').next())
            .unwrap_or_default();
        if !sections.contains(section) {
            wrong.push(format!("{figure}: does not link to a section of this page"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// The benchmarks and scripts CONTRIBUTING.md and the benchmarks page tell contributors to
/// run exist.
#[test]
fn the_scripts_benchmarks_and_tests_contributors_are_told_to_run_exist() {
    let mut wrong = Vec::new();
    let mut checked = 0;
    for doc in ["CONTRIBUTING.md", "docs/benchmarks.md"] {
        let text = read(doc);
        let mut commands: Vec<String> = all_shell_commands(&text)
            .into_iter()
            .map(|(c, _)| c.text)
            .collect();
        commands.extend(inline_code(&text));
        for command in commands {
            for line in command.lines() {
                let words: Vec<&str> = line.split_whitespace().collect();
                let Some(start) = words.iter().position(|w| {
                    w.starts_with("./scripts/")
                        || *w == "cargo" && line.contains("cargo test --test ")
                }) else {
                    continue;
                };
                let invocation = words[start..]
                    .iter()
                    .take_while(|w| !w.starts_with('#'))
                    .copied()
                    .collect::<Vec<_>>()
                    .join(" ");
                if invocation.contains('<') {
                    // A placeholder (`./scripts/bench <name>`), not a command.
                    continue;
                }
                checked += 1;
                if let Err(e) = sources_of(&invocation) {
                    wrong.push(format!("{doc}: {e}"));
                }
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    assert!(checked >= 10, "only {checked} commands found");
}

#[test]
fn bench_names_are_read_from_the_bench_binary() {
    let names = bench_names();
    for name in ["cost", "collector", "reads", "otlp-bomb", "soak", "ingest"] {
        assert!(names.contains_key(name), "{name} in {names:?}");
    }
    assert!(names["cost"].iter().any(|s| s.ends_with("/cost.rs")));
    assert!(names["otlp-bomb"].iter().any(|s| s.ends_with("/bomb.rs")));
    assert!(sources_of("./scripts/bench no-such-bench").is_err());
    assert!(printed_by(&names["cost"], "weighted mean over the month's"));
    assert!(!printed_by(&names["cost"], "spans a second"));
}

// ---------------------------------------------------------------------------------------
// The API reference against the OpenAPI document and the router.

fn openapi() -> Value {
    serde_json::from_str(&read("docs/openapi.json")).expect("docs/openapi.json is JSON")
}

/// docs/api.md's route index lists every endpoint of the router with its path, scope (as
/// the OpenAPI document gives it) and Lambda function, and nothing the router lacks.
#[test]
fn the_route_index_lists_every_endpoint_with_its_scope_and_function() {
    let doc = openapi();
    let rows = table_under(&read("docs/api.md"), "## Route index");
    let mut listed = BTreeSet::new();
    let mut wrong = Vec::new();
    for row in &rows {
        let (Some(method), Some(path)) = (
            row.get("method").map(|m| m.trim_matches('`').to_owned()),
            row.get("path").and_then(|p| code(p)).map(str::to_owned),
        ) else {
            wrong.push(format!("a row without method or path: {row:?}"));
            continue;
        };
        let function = row
            .get("Lambda function")
            .map(|f| f.trim_matches('`').to_owned())
            .unwrap_or_default();
        if function == "local stack only" {
            continue;
        }
        let Some(endpoint) = shared::api::Endpoint::ALL
            .into_iter()
            .find(|e| e.route() == (method.as_str(), path.as_str()))
        else {
            wrong.push(format!("{method} {path}: not a route of the router"));
            continue;
        };
        listed.insert((method.clone(), path.clone()));
        if function != endpoint.function() {
            wrong.push(format!(
                "{method} {path}: function {function}, not {}",
                endpoint.function()
            ));
        }
        let operation = &doc["paths"][&path][method.to_lowercase()];
        let scope = if endpoint.needs_key() {
            operation["x-scope"].as_str().unwrap_or("?").to_owned()
        } else {
            "none".to_owned()
        };
        let documented = row
            .get("scope")
            .map(|s| s.trim_matches('`').to_owned())
            .unwrap_or_default();
        if documented != scope {
            wrong.push(format!("{method} {path}: scope {documented}, not {scope}"));
        }
    }
    for endpoint in shared::api::Endpoint::ALL {
        let (method, path) = endpoint.route();
        if !listed.contains(&(method.to_owned(), path.to_owned())) {
            wrong.push(format!("{method} {path} is not in the route index"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// docs/api.md gives every event type the OpenAPI document accepts, with exactly its fields
/// and which of them are required.
#[test]
fn every_event_type_is_documented_with_its_fields() {
    let doc = openapi();
    let api = read("docs/api.md");
    let variants = doc["components"]["schemas"]["Event"]["oneOf"]
        .as_array()
        .expect("Event.oneOf in docs/openapi.json");
    assert_eq!(variants.len(), 5, "event types in the OpenAPI document");
    for variant in variants {
        let kind = variant["title"]
            .as_str()
            .expect("each event type has a title");
        let heading = format!("### `{kind}`");
        let rows = table_under(&api, &heading);
        let documented: BTreeMap<String, String> = rows
            .iter()
            .filter_map(|r| {
                Some((
                    code(r.get("field")?)?.to_owned(),
                    r.get("required")?.clone(),
                ))
            })
            .collect();
        let required: BTreeSet<&str> = variant["required"]
            .as_array()
            .map(|r| r.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let fields: BTreeSet<&str> = variant["properties"]
            .as_object()
            .map(|p| {
                p.keys()
                    .map(String::as_str)
                    .filter(|k| *k != "type")
                    .collect()
            })
            .unwrap_or_default();
        let names: BTreeSet<&str> = documented.keys().map(String::as_str).collect();
        assert_eq!(names, fields, "the fields of {kind} in docs/api.md");
        for (field, is_required) in &documented {
            let expected = if required.contains(field.as_str()) {
                "yes"
            } else {
                "no"
            };
            assert_eq!(is_required, expected, "{kind}.{field}: required?");
        }
    }
}

// ---------------------------------------------------------------------------------------
// The screenshots.

/// The README shows the dashboard and a drill-down page as the browser test took them, of
/// the dashboard as its sources are now.
#[test]
fn the_readme_shows_current_screenshots() {
    let readme = read("README.md");
    for shot in e2e_tests::screenshots::FILES {
        assert!(
            readme.contains(&format!("({shot})")) || readme.contains(&format!("src=\"{shot}\"")),
            "the README does not show {shot}"
        );
        let png = std::fs::read(format!("{ROOT}/{shot}"))
            .unwrap_or_else(|e| panic!("reading {shot}: {e}"));
        assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "{shot} is not a PNG");
        let width = png
            .get(16..20)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
            .unwrap_or_default();
        assert_eq!(width, 1280, "{shot} is {width} px wide");
    }
    let recorded =
        std::fs::read_to_string(format!("{ROOT}/{}", e2e_tests::screenshots::DIGEST_FILE))
            .unwrap_or_default();
    assert_eq!(
        recorded.trim(),
        e2e_tests::screenshots::dashboard_digest(),
        "the screenshots in docs/img/ were taken of another version of dashboard/: run the \
         browser test (cargo test --test dashboard, as ./scripts/test does, not with CI=true), \
         which takes them again, and commit docs/img/"
    );
}
