//! The source tree stays a map: `src/runtime/` (the layer over glommio)
//! and `src/grpc/` (the 5.x gRPC transport) never reach into the broker,
//! `src/acl/` (access control) uses nothing of the crate but the protocol
//! codec, and the files of `src/broker/` import
//! each other without cycles, so each can be read knowing only what is
//! below it. A file-level graph from `super::…` and `crate::broker::…`
//! paths (comments and test modules ignored).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).expect("read_dir").flatten() {
        let p = e.path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The code of a file without its test module and comments.
fn code_of(p: &Path) -> String {
    let src = std::fs::read_to_string(p).expect("read");
    let src = src.split("#[cfg(test)]").next().unwrap_or("");
    src.lines()
        .map(|l| l.split("//").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Module path (within `root`) of a file: `a/b.rs` and `a/b/mod.rs` → `a::b`.
fn module_of(root: &Path, p: &Path) -> Vec<String> {
    let rel = p.strip_prefix(root).expect("under root").with_extension("");
    let mut parts: Vec<String> = rel.iter().map(|s| s.to_string_lossy().into_owned()).collect();
    if parts.last().is_some_and(|l| l == "mod") {
        parts.pop();
    }
    parts
}

/// Every path expression starting with `super::` or `crate::broker::`.
fn paths(code: &str) -> Vec<(usize, Vec<String>)> {
    let mut out = Vec::new();
    let bytes = code.as_bytes();
    let mut i = 0;
    while i < code.len() {
        // Strings in code may hold non-ASCII text: step over its bytes.
        if !code.is_char_boundary(i) {
            i += 1;
            continue;
        }
        let rest = &code[i..];
        let boundary =
            i == 0 || !(bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_' || bytes[i - 1] == b':');
        let (supers, start) = if boundary && rest.starts_with("crate::broker::") {
            (0, "crate::broker::".len())
        } else if boundary && rest.starts_with("super::") {
            let mut n = 0;
            let mut at = 0;
            while rest[at..].starts_with("super::") {
                n += 1;
                at += "super::".len();
            }
            (n, at)
        } else {
            i += 1;
            continue;
        };
        let segs: Vec<String> = rest[start..]
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
            .next()
            .unwrap_or("")
            .split("::")
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect();
        out.push((supers, segs));
        i += start;
    }
    out
}

#[test]
fn runtime_does_not_reach_into_the_broker() {
    let mut files = Vec::new();
    rust_files(Path::new("src/runtime"), &mut files);
    for f in files {
        let code = code_of(&f);
        assert!(
            !code.contains("crate::broker"),
            "{} imports the broker: runtime/ is the layer below it",
            f.display()
        );
    }
}

#[test]
fn grpc_does_not_reach_into_the_broker() {
    // src/grpc is the transport below the broker's gRPC service: the broker
    // implements grpc::MessagingService, never the other way round.
    let mut files = Vec::new();
    rust_files(Path::new("src/grpc"), &mut files);
    assert!(!files.is_empty());
    for f in files {
        let code = code_of(&f);
        assert!(
            !code.contains("crate::broker"),
            "{} imports the broker: grpc/ is the layer below it",
            f.display()
        );
    }
}

#[test]
fn acl_uses_only_the_protocol() {
    // src/acl is pure logic the broker calls: it may use the protocol
    // codec (commands, codes, bodies) and nothing else of the crate. Test
    // files (`tests.rs`, `*_tests.rs`) may compare with the broker.
    let mut files = Vec::new();
    rust_files(Path::new("src/acl"), &mut files);
    assert!(files.len() >= 5, "found only {} files", files.len());
    for f in files {
        let name = f
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if name == "tests.rs" || name.ends_with("_tests.rs") {
            continue;
        }
        let code = code_of(&f);
        for (at, _) in code.match_indices("crate::") {
            let rest = &code[at + "crate::".len()..];
            assert!(
                rest.starts_with("protocol"),
                "{} uses crate::{}: src/acl may use only crate::protocol",
                f.display(),
                rest.chars().take(30).collect::<String>()
            );
        }
    }
}

#[test]
fn broker_files_import_each_other_without_cycles() {
    let root = Path::new("src/broker");
    let mut files = Vec::new();
    rust_files(root, &mut files);
    let mut modules: BTreeMap<Vec<String>, PathBuf> = BTreeMap::new();
    for f in files {
        let m = module_of(root, &f);
        if m.first().is_some_and(|s| s == "tests") {
            continue;
        }
        modules.insert(m, f);
    }
    let resolve = |segs: Vec<String>| -> Option<Vec<String>> {
        (1..=segs.len())
            .rev()
            .map(|n| segs[..n].to_vec())
            .find(|k| modules.contains_key(k))
    };
    let mut edges: BTreeMap<Vec<String>, BTreeSet<Vec<String>>> = BTreeMap::new();
    for (m, f) in &modules {
        let code = code_of(f);
        let mut to = BTreeSet::new();
        for (supers, segs) in paths(&code) {
            let target = if supers == 0 {
                resolve(segs)
            } else if supers > m.len() {
                None // above src/broker: another part of the crate
            } else {
                // `super` is the parent of the current module, whether it
                // lives in `x.rs` or `x/mod.rs`.
                let mut base = m[..m.len() - supers].to_vec();
                base.extend(segs);
                resolve(base)
            };
            if let Some(t) = target {
                // A module may use its own children and ancestors freely
                // (a directory and its files are one unit).
                if t != *m && !t.starts_with(m) && !m.starts_with(&t) {
                    to.insert(t);
                }
            }
        }
        edges.insert(m.clone(), to);
    }
    // Depth-first search for a back edge; report the cycle it closes.
    fn visit(
        v: &Vec<String>,
        edges: &BTreeMap<Vec<String>, BTreeSet<Vec<String>>>,
        state: &mut BTreeMap<Vec<String>, u8>,
        stack: &mut Vec<Vec<String>>,
    ) -> Option<Vec<Vec<String>>> {
        state.insert(v.clone(), 1);
        stack.push(v.clone());
        for w in edges.get(v).into_iter().flatten() {
            match state.get(w).copied().unwrap_or(0) {
                1 => {
                    let at = stack.iter().position(|s| s == w).unwrap_or(0);
                    let mut cycle = stack[at..].to_vec();
                    cycle.push(w.clone());
                    return Some(cycle);
                }
                0 => {
                    if let Some(c) = visit(w, edges, state, stack) {
                        return Some(c);
                    }
                }
                _ => {}
            }
        }
        stack.pop();
        state.insert(v.clone(), 2);
        None
    }
    let mut state = BTreeMap::new();
    for v in edges.keys() {
        if state.get(v).copied().unwrap_or(0) == 0 {
            if let Some(c) = visit(v, &edges, &mut state, &mut Vec::new()) {
                let names: Vec<String> = c.iter().map(|m| m.join("::")).collect();
                panic!("import cycle in src/broker: {}", names.join(" -> "));
            }
        }
    }
    assert!(modules.len() > 10, "found only {} modules", modules.len());
}
