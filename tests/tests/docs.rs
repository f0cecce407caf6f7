//! The repository's documentation stands alone: no links out of the repository to the
//! design notes it was built from, no references to issue numbers, and the container build
//! context leaves out what the build does not need.

// Helpers here are not `#[test]` functions, which clippy's allow-expect-in-tests covers:
// they too stop a test with `expect`, saying what they were doing.
#![allow(clippy::expect_used)]

const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");

fn documents() -> Vec<(String, String)> {
    let mut paths = vec![format!("{ROOT}/README.md")];
    for entry in std::fs::read_dir(format!("{ROOT}/docs"))
        .expect("listing docs/")
        .flatten()
    {
        let path = entry.path();
        if path.extension().is_some_and(|e| e == "md" || e == "json") {
            paths.push(path.to_string_lossy().into_owned());
        }
    }
    paths
        .into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{p}: {e}"));
            (p, text)
        })
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
