//! The dependency rule of `src/lib.rs`, checked on the source: the `crate::` paths of each
//! top-level module (outside comments) name the modules it depends on, and those dependencies
//! form no cycle; the leaves import nothing else from the crate.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

type Graph = BTreeMap<String, BTreeSet<String>>;

/// The top-level module a file of `src/` belongs to (`src/ftp/auth.rs` -> `ftp`).
fn module_of(src: &Path, file: &Path) -> Option<String> {
    let rel = file.strip_prefix(src).ok()?;
    let first = rel.components().next()?.as_os_str().to_str()?;
    let name = first.strip_suffix(".rs").unwrap_or(first);
    (!matches!(name, "lib" | "main")).then(|| name.to_owned())
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read src/") {
        let path = entry.expect("read src/").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The modules named by `crate::NAME` in `text`, comments left out (doc links are no
/// dependency), `use crate::{a, b::c}` groups included.
fn crate_paths(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for line in text.lines() {
        let code = line.split("//").next().unwrap_or("");
        let mut rest = code;
        while let Some(at) = rest.find("crate::") {
            let after = &rest[at + "crate::".len()..];
            if let Some(group) = after.strip_prefix('{') {
                let end = group.find('}').unwrap_or(group.len());
                for item in group[..end].split(',') {
                    let name: String = item
                        .trim()
                        .chars()
                        .take_while(|c| c.is_alphanumeric() || *c == '_')
                        .collect();
                    if !name.is_empty() {
                        names.insert(name);
                    }
                }
            } else {
                let name: String = after
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                if !name.is_empty() {
                    names.insert(name);
                }
            }
            rest = after;
        }
    }
    names
}

fn graph() -> Graph {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut graph = Graph::new();
    for file in files {
        let Some(module) = module_of(&src, &file) else {
            continue;
        };
        let text = std::fs::read_to_string(&file).expect("read a source file");
        let deps = graph.entry(module.clone()).or_default();
        deps.extend(crate_paths(&text).into_iter().filter(|d| *d != module));
    }
    // Names that are no module (a `crate::` path to an item of lib.rs) are no edge.
    let modules: BTreeSet<String> = graph.keys().cloned().collect();
    for deps in graph.values_mut() {
        deps.retain(|d| modules.contains(d));
    }
    graph
}

/// A cycle of `graph`, if there is one, as the modules along it.
fn find_cycle(graph: &Graph) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &Graph,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|n| n == node) {
            let mut cycle = path[at..].to_vec();
            cycle.push(node.to_owned());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_owned());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, graph, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(node.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|node| visit(node, graph, &mut Vec::new(), &mut done))
}

#[test]
fn top_level_modules_depend_on_each_other_one_way() {
    let graph = graph();
    assert!(graph.len() > 8, "too few modules found in src/: {graph:?}");
    if let Some(cycle) = find_cycle(&graph) {
        panic!(
            "import cycle between top-level modules: {}\nall: {graph:#?}",
            cycle.join(" -> ")
        );
    }
}

#[test]
fn the_leaves_import_nothing_else_from_the_crate() {
    let graph = graph();
    for leaf in ["config", "exit", "qumulo", "sim", "state"] {
        let deps = graph
            .get(leaf)
            .unwrap_or_else(|| panic!("no module {leaf} in src/"));
        assert!(deps.is_empty(), "{leaf} imports {deps:?}");
    }
    for helper in ["listener", "systemd", "logging", "descriptors"] {
        let deps = graph
            .get(helper)
            .unwrap_or_else(|| panic!("no module {helper} in src/"));
        let beyond: Vec<_> = deps
            .iter()
            .filter(|d| *d != "config" && *d != "exit")
            .collect();
        assert!(
            beyond.is_empty(),
            "the daemon's helper {helper} imports {beyond:?}"
        );
    }
    for (module, deps) in &graph {
        assert!(!deps.contains("cli"), "{module} imports cli: only main may");
        assert!(
            module == "daemon" || !deps.contains("metrics"),
            "{module} imports metrics: only daemon may"
        );
    }
    let metrics = graph.get("metrics").expect("no module metrics in src/");
    let beyond: Vec<_> = metrics
        .iter()
        .filter(|d| !["config", "exit", "ftp", "qumulo", "state"].contains(&d.as_str()))
        .collect();
    assert!(beyond.is_empty(), "metrics imports {beyond:?}");
}

/// The simulator is a leaf behind the feature `sim`: what imports it is built only with that
/// feature (the `sim` and `demo` commands) or with `fuzzing`, never in the gateway's path.
#[test]
fn only_the_demo_the_sim_command_and_fuzzing_import_the_simulator() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let allowed = ["cli/sim.rs", "demo.rs", "ftp/fuzzing.rs"];
    for file in files {
        let rel = file
            .strip_prefix(&src)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        if rel.starts_with("sim/") || allowed.contains(&rel.as_str()) {
            continue;
        }
        let text = std::fs::read_to_string(&file).expect("read a source file");
        assert!(
            !crate_paths(&text).contains("sim"),
            "src/{rel} imports the simulator"
        );
    }
}

#[test]
fn the_cycle_check_finds_cycles_and_reads_use_groups() {
    let mut graph = Graph::new();
    graph.insert("a".into(), ["b".into()].into());
    graph.insert("b".into(), ["c".into()].into());
    graph.insert("c".into(), BTreeSet::new());
    assert_eq!(find_cycle(&graph), None);
    graph.get_mut("c").unwrap().insert("a".into());
    assert_eq!(find_cycle(&graph).unwrap(), ["a", "b", "c", "a"]);

    let names = crate_paths(
        "use crate::{config::Config, exit};\n// crate::cli is a comment\nlet x = crate::ftp::Gateway::new();",
    );
    assert_eq!(names, ["config", "exit", "ftp"].map(String::from).into());
}
