//! The library's imports go one way: each room (top-level module of `shared/src`) imports
//! only rooms of lower layers, as the map in docs/design.md places them, and no modules
//! import each other around a loop. Read from the source text, so it needs no build and
//! fails with the file and the path that break the map.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// A module's path inside the crate (`store::live`; the crate root is "").
type Module = String;

/// Each module's imports of other modules (not its ancestors or descendants), with the
/// path that made each one.
type Graph = BTreeMap<Module, BTreeMap<Module, String>>;

fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap_or_else(|| panic!("the tests crate sits in the repository"))
        .to_owned()
}

/// The room → layer table of docs/design.md's "The map" section.
fn layers_of_the_map(design: &str) -> BTreeMap<String, u32> {
    let section = design
        .split("\n## ")
        .find(|s| s.starts_with("The map"))
        .unwrap_or_else(|| panic!("docs/design.md has a section \"The map: layers and rooms\""));
    let mut layers = BTreeMap::new();
    for line in section.lines().filter(|l| l.starts_with('|')) {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        let Some(layer) = cells.get(1).and_then(|c| c.parse::<u32>().ok()) else {
            continue;
        };
        let rooms = cells
            .get(2)
            .unwrap_or_else(|| panic!("a layer row of the map names its rooms: {line}"));
        for room in rooms.split(',') {
            layers.insert(room.trim().trim_matches('`').to_owned(), layer);
        }
    }
    assert!(
        !layers.is_empty(),
        "reading the layer table of docs/design.md's map: no rows found"
    );
    layers
}

/// The source without `#[cfg(...test...)] mod` blocks and without comments: tests may
/// reach anywhere, and a doc link is not an import.
fn without_tests_and_comments(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("#[cfg(") {
        let attribute_end = rest[at..].find(")]").map_or(rest.len(), |e| at + e + 2);
        let attribute = &rest[at..attribute_end];
        let after = rest[attribute_end..].trim_start();
        let is_test_module = attribute.contains("test")
            && (after.starts_with("mod ") || after.starts_with("pub(crate) mod "));
        let open = rest[attribute_end..].find('{').map(|o| attribute_end + o);
        match (is_test_module, open) {
            (true, Some(open)) => {
                out.push_str(&rest[..at]);
                let mut depth = 0usize;
                let mut end = rest.len();
                for (i, c) in rest[open..].char_indices() {
                    match c {
                        '{' => depth += 1,
                        '}' => {
                            depth -= 1;
                            if depth == 0 {
                                end = open + i + 1;
                                break;
                            }
                        }
                        _ => {}
                    }
                }
                rest = &rest[end..];
            }
            _ => {
                out.push_str(&rest[..attribute_end]);
                rest = &rest[attribute_end..];
            }
        }
    }
    out.push_str(rest);
    out.lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// The paths a source names from `anchor` (`crate::` or `super::`), with one level of
/// `{a::b, c}` groups expanded: `crate::{a::b, c}` gives `a::b` and `c`.
fn paths_after(text: &str, anchor: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(found) = text[from..].find(anchor) {
        let at = from + found;
        from = at + anchor.len();
        if at > 0 && text[..at].ends_with(|c: char| is_ident(c) || c == ':') {
            continue;
        }
        let rest = &text[from..];
        let head: String = rest
            .chars()
            .take_while(|c| is_ident(*c) || *c == ':')
            .collect();
        let head = head.trim_end_matches(':').to_owned();
        let group = rest[head.len()..].trim_start_matches(':');
        if let Some(group) = group.strip_prefix('{') {
            let body: String = group.chars().take_while(|c| *c != '}').collect();
            for item in body.split(',') {
                let item: String = item
                    .trim()
                    .chars()
                    .take_while(|c| is_ident(*c) || *c == ':')
                    .collect();
                if !item.is_empty() && item != "self" {
                    out.push(if head.is_empty() {
                        item
                    } else {
                        format!("{head}::{item}")
                    });
                }
            }
            if !head.is_empty() {
                out.push(head);
            }
        } else if !head.is_empty() {
            out.push(head);
        }
    }
    out
}

/// Modules of the crate at `src` (one per file) and their imports.
fn module_graph(files: &BTreeMap<Module, String>) -> Graph {
    // `pub use room::Item;` in the crate root: `crate::Item` names the room.
    let root_reexports: BTreeMap<String, String> = files
        .get("")
        .map(|root| {
            root.lines()
                .filter_map(|l| l.trim().strip_prefix("pub use "))
                .filter_map(|l| {
                    let path = l.trim_end_matches(';');
                    let (room, item) = path.split_once("::")?;
                    Some((item.rsplit("::").next()?.to_owned(), room.to_owned()))
                })
                .collect()
        })
        .unwrap_or_default();
    let mut graph = Graph::new();
    for (module, text) in files {
        let text = without_tests_and_comments(text);
        let parent = module.rsplit_once("::").map_or("", |(p, _)| p);
        let mut named: Vec<String> = paths_after(&text, "crate::")
            .into_iter()
            .map(|p| {
                let first = p.split("::").next().unwrap_or_default();
                match root_reexports.get(first) {
                    Some(room) => format!("{room}::{p}"),
                    None => p,
                }
            })
            .collect();
        named.extend(
            paths_after(&text, "super::")
                .into_iter()
                .filter(|p| !p.starts_with("super"))
                .map(|p| {
                    if parent.is_empty() {
                        p
                    } else {
                        format!("{parent}::{p}")
                    }
                }),
        );
        for path in named {
            let segments: Vec<&str> = path.split("::").collect();
            let target = (1..=segments.len())
                .rev()
                .map(|k| segments[..k].join("::"))
                .find(|candidate| files.contains_key(candidate));
            let Some(target) = target else { continue };
            let related = target == *module
                || module.starts_with(&format!("{target}::"))
                || target.starts_with(&format!("{module}::"))
                || target.is_empty();
            if !related {
                graph
                    .entry(module.clone())
                    .or_default()
                    .entry(target)
                    .or_insert(path);
            }
        }
    }
    graph
}

/// Every module of the crate whose sources are under `src`, with its text.
fn crate_files(src: &Path) -> BTreeMap<Module, String> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let entries =
            std::fs::read_dir(dir).unwrap_or_else(|e| panic!("listing {}: {e}", dir.display()));
        for entry in entries {
            let path = entry
                .unwrap_or_else(|e| panic!("listing {}: {e}", dir.display()))
                .path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|x| x == "rs") {
                out.push(path);
            }
        }
    }
    let mut paths = Vec::new();
    walk(src, &mut paths);
    paths
        .into_iter()
        .map(|path| {
            let relative = path
                .strip_prefix(src)
                .unwrap_or_else(|e| panic!("{} is under {}: {e}", path.display(), src.display()))
                .with_extension("");
            let mut parts: Vec<String> = relative
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            if parts
                .last()
                .is_some_and(|l| l == "mod" || l == "lib" || l == "main")
            {
                parts.pop();
            }
            let text = std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
            (parts.join("::"), text)
        })
        .collect()
}

/// The modules that import each other around a loop (strongly connected components of
/// more than one module).
fn cycles(graph: &Graph) -> Vec<Vec<Module>> {
    // Kosaraju: finish order on the graph, then components on the reversed graph.
    let nodes: BTreeSet<&Module> = graph
        .iter()
        .flat_map(|(m, targets)| std::iter::once(m).chain(targets.keys()))
        .collect();
    let mut order = Vec::new();
    let mut seen = BTreeSet::new();
    for &start in &nodes {
        if !seen.insert(start) {
            continue;
        }
        let mut stack = vec![(
            start,
            graph.get(start).map(|t| t.keys().collect::<Vec<_>>()),
        )];
        while let Some((node, next)) = stack.last_mut() {
            match next.as_mut().and_then(Vec::pop) {
                Some(target) if seen.insert(target) => {
                    let targets = graph.get(target).map(|t| t.keys().collect());
                    stack.push((target, targets));
                }
                Some(_) => {}
                None => {
                    order.push(*node);
                    stack.pop();
                }
            }
        }
    }
    let mut reversed: BTreeMap<&Module, Vec<&Module>> = BTreeMap::new();
    for (m, targets) in graph {
        for t in targets.keys() {
            reversed.entry(t).or_default().push(m);
        }
    }
    let mut assigned = BTreeSet::new();
    let mut out = Vec::new();
    for &start in order.iter().rev() {
        if !assigned.insert(start) {
            continue;
        }
        let mut component = vec![start.clone()];
        let mut stack = vec![start];
        while let Some(node) = stack.pop() {
            for &from in reversed.get(node).into_iter().flatten() {
                if assigned.insert(from) {
                    component.push(from.clone());
                    stack.push(from);
                }
            }
        }
        if component.len() > 1 {
            component.sort();
            out.push(component);
        }
    }
    out
}

/// What breaks the map: imports up or across layers, rooms it does not place, and cycles.
fn breaches(
    graph: &Graph,
    layers: &BTreeMap<String, u32>,
    rooms: &BTreeSet<String>,
) -> Vec<String> {
    let room = |m: &str| m.split("::").next().unwrap_or_default().to_owned();
    let mut out: Vec<String> = rooms
        .iter()
        .filter(|r| !layers.contains_key(*r))
        .map(|r| format!("room `{r}` is not in the map's layer table"))
        .collect();
    for (module, targets) in graph {
        for (target, path) in targets {
            let (from, to) = (room(module), room(target));
            if from == to {
                continue;
            }
            if let (Some(&lf), Some(&lt)) = (layers.get(&from), layers.get(&to)) {
                if lt >= lf {
                    out.push(format!(
                        "`{module}` (layer {lf}) imports `{path}` of `{to}` (layer {lt})"
                    ));
                }
            }
        }
    }
    for cycle in cycles(graph) {
        out.push(format!("import cycle: {}", cycle.join(" <-> ")));
    }
    out
}

#[test]
fn the_library_imports_only_down_the_layers_of_the_map() {
    let root = repository();
    let design = std::fs::read_to_string(root.join("docs/design.md"))
        .unwrap_or_else(|e| panic!("reading docs/design.md for the map: {e}"));
    let layers = layers_of_the_map(&design);
    let files = crate_files(&root.join("shared/src"));
    let rooms: BTreeSet<String> = files
        .keys()
        .filter(|m| !m.is_empty())
        .map(|m| m.split("::").next().unwrap_or_default().to_owned())
        .collect();
    let graph = module_graph(&files);
    assert!(
        graph.values().map(BTreeMap::len).sum::<usize>() > 100,
        "reading shared/src's imports found almost none: the reader is broken"
    );
    let found = breaches(&graph, &layers, &rooms);
    assert!(
        found.is_empty(),
        "shared/src against the map of docs/design.md:\n{}",
        found.join("\n")
    );
}

#[test]
fn the_check_finds_an_import_up_a_layer_a_cycle_and_an_unplaced_room() {
    let files: BTreeMap<Module, String> = [
        ("", "pub mod domain;\npub mod store;\npub use store::Store;\n"),
        ("domain", "pub mod a;\npub mod b;\n"),
        ("domain::a", "use super::b::Thing;\n"),
        ("domain::b", "use crate::domain::a::Other;\n"),
        ("store", "use crate::domain::{a::Other, b};\n"),
        ("cache", "use crate::Store;\n"),
        (
            "ws",
            "#[cfg(test)]\nmod tests {\n    use crate::store::Anything;\n}\n/// [`crate::store::Doc`]\n",
        ),
    ]
    .into_iter()
    .map(|(m, t)| (m.to_owned(), t.to_owned()))
    .collect();
    let layers: BTreeMap<String, u32> = [
        ("domain".to_owned(), 1),
        ("store".to_owned(), 4),
        ("ws".to_owned(), 8),
    ]
    .into_iter()
    .collect();
    let graph = module_graph(&files);
    let mut design_domain = files.clone();
    design_domain.insert("domain::b".into(), "use crate::store::Store;\n".into());
    let rooms: BTreeSet<String> = ["cache", "domain", "store", "ws"].map(String::from).into();
    let found = breaches(&graph, &layers, &rooms);
    assert_eq!(
        found,
        [
            "room `cache` is not in the map's layer table",
            "import cycle: domain::a <-> domain::b",
        ],
        "checking a made-up crate with a cycle inside a room and an unplaced room \
         (a test module's and a doc link's imports do not count)"
    );
    let upward = breaches(&module_graph(&design_domain), &layers, &rooms);
    assert!(
        upward
            .iter()
            .any(|b| b == "`domain::b` (layer 1) imports `store::Store` of `store` (layer 4)"),
        "checking a made-up crate whose domain imports the store: {upward:?}"
    );
}

#[test]
fn the_map_places_every_room_of_the_design() {
    let design = std::fs::read_to_string(repository().join("docs/design.md"))
        .unwrap_or_else(|e| panic!("reading docs/design.md for the map: {e}"));
    let layers = layers_of_the_map(&design);
    for room in [
        "time",
        "domain",
        "store",
        "collector",
        "api",
        "ws",
        "lambda",
    ] {
        assert!(
            layers.contains_key(room),
            "the map places `{room}`: {layers:?}"
        );
    }
    assert!(
        layers["domain"] < layers["store"] && layers["store"] < layers["collector"],
        "the map orders domain, store, services: {layers:?}"
    );
    assert!(
        layers["collector"] < layers["api"] && layers["api"] < layers["lambda"],
        "the map orders services, api, lambda: {layers:?}"
    );
}
