//! Every repository path named in README.md, docs/**/*.md and configs/**/*.toml exists.
//!
//! A repository path is a word that starts with one of the repository's top-level entries
//! (`src/`, `docs/`, …, `Cargo.toml`, `README.md`), in code spans, code blocks, prose or TOML
//! comments alike, and the target of a relative Markdown link (resolved against the file that
//! holds it). `:LINE`, `:A-B` and `#anchor` suffixes are stripped; `{a,b}` alternatives are
//! expanded and each must exist; a `*` glob must match at least one file. Placeholders (a
//! component in capitals like `NAME` or `METHOD`, or in angle brackets) are not paths and are
//! skipped, and so is everything under other roots (`runs/`, `data/`, `demo/`, `target/`, `~/`).
use std::path::{Path, PathBuf};

/// Top-level directories whose names start a repository path.
const DIRS: &[&str] = &["src/", "docs/", "configs/", "scripts/", "bench/", "benches/", "tests/", "vendor/", ".ci/"];
/// Top-level files named on their own.
const FILES: &[&str] = &["Cargo.toml", "Cargo.lock", "README.md"];

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// A character that can belong to a path word (so a path cannot start right after one).
fn word_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "_./~-$".contains(c)
}

/// A character a path token may contain (`,` only inside `{…}`).
fn token_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "_./-*<>{}:#".contains(c)
}

/// The path words of one line, as written (suffixes not yet stripped).
fn path_tokens(line: &str) -> Vec<String> {
    let chars: Vec<(usize, char)> = line.char_indices().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let (at, _) = chars[i];
        let starts = (i == 0 || !word_char(chars[i - 1].1))
            && (DIRS.iter().any(|d| line[at..].starts_with(d))
                || FILES
                    .iter()
                    .any(|f| line[at..].starts_with(f) && !line[at + f.len()..].chars().next().is_some_and(word_char)));
        if !starts {
            i += 1;
            continue;
        }
        let mut depth = 0;
        let mut j = i;
        while j < chars.len() {
            let c = chars[j].1;
            match c {
                '{' => depth += 1,
                '}' if depth > 0 => depth -= 1,
                ',' if depth > 0 => {}
                c if token_char(c) => {}
                _ => break,
            }
            j += 1;
        }
        let end = chars.get(j).map_or(line.len(), |&(e, _)| e);
        out.push(line[at..end].to_string());
        i = j.max(i + 1);
    }
    out
}

/// Strip `#anchor`, `:LINE` / `:A-B`, and punctuation that ends the sentence.
fn clean(token: &str) -> String {
    let mut t = token.split('#').next().unwrap_or("").to_string();
    loop {
        let before = t.len();
        t = t.trim_end_matches(['.', ',', ':']).to_string();
        if let Some((head, tail)) = t.rsplit_once(':') {
            if !tail.is_empty() && tail.chars().all(|c| c.is_ascii_digit() || c == '-') {
                t = head.to_string();
            }
        }
        if t.len() == before {
            return t;
        }
    }
}

/// `a{b,c}d{e,f}` → abde, abdf, acde, acdf (groups not nested).
fn expand_braces(p: &str) -> Vec<String> {
    let (Some(open), Some(close)) = (p.find('{'), p.find('}')) else { return vec![p.to_string()] };
    if close < open {
        return vec![p.to_string()];
    }
    let (head, alts, tail) = (&p[..open], &p[open + 1..close], &p[close + 1..]);
    alts.split(',').flat_map(|a| expand_braces(&format!("{head}{a}{tail}"))).collect()
}

/// A component in capitals (`NAME`, `METHOD.toml`, `NNNNN.png`) or in angle brackets.
fn is_placeholder(p: &str) -> bool {
    p.split('/').any(|comp| {
        let stem = comp.split('.').next().unwrap_or(comp);
        comp.contains(['<', '>'])
            || (stem.len() >= 2
                && stem.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
                && !["README", "LICENSE"].contains(&stem))
    })
}

/// `*` and `?` within one component.
fn wildcard(pat: &[u8], s: &[u8]) -> bool {
    match (pat.first(), s.first()) {
        (None, None) => true,
        (Some(b'*'), _) => wildcard(&pat[1..], s) || (!s.is_empty() && wildcard(pat, &s[1..])),
        (Some(b'?'), Some(_)) => wildcard(&pat[1..], &s[1..]),
        (Some(a), Some(b)) if a == b => wildcard(&pat[1..], &s[1..]),
        _ => false,
    }
}

/// Does `rel` (relative to `base`, possibly with globs) name at least one existing entry?
fn exists(base: &Path, rel: &str) -> bool {
    let comps: Vec<&str> = rel.split('/').filter(|c| !c.is_empty() && *c != ".").collect();
    fn walk(dir: &Path, comps: &[&str]) -> bool {
        let Some((first, rest)) = comps.split_first() else { return dir.exists() };
        if *first == ".." {
            return dir.parent().is_some_and(|p| walk(p, rest));
        }
        if !first.contains(['*', '?']) {
            return walk(&dir.join(first), rest);
        }
        let Ok(rd) = std::fs::read_dir(dir) else { return false };
        rd.filter_map(|e| e.ok())
            .filter(|e| wildcard(first.as_bytes(), e.file_name().to_string_lossy().as_bytes()))
            .any(|e| walk(&e.path(), rest))
    }
    walk(base, &comps)
}

/// Relative Markdown link targets of one line: `[text](target)` without a scheme or a bare anchor.
fn link_targets(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = line;
    while let Some(i) = rest.find("](") {
        rest = &rest[i + 2..];
        let end = rest.find(|c: char| c == ')' || c.is_whitespace()).unwrap_or(rest.len());
        let target = &rest[..end];
        let external = target.contains("://") || target.starts_with("mailto:") || target.starts_with('#');
        if !target.is_empty() && !external {
            out.push(target.split('#').next().unwrap_or("").to_string());
        }
        rest = &rest[end..];
    }
    out
}

/// The files to check, relative to the repository root.
fn checked_files() -> Vec<PathBuf> {
    fn collect(dir: &Path, ext: &str, out: &mut Vec<PathBuf>) {
        let Ok(rd) = std::fs::read_dir(dir) else { return };
        for e in rd.filter_map(|e| e.ok()) {
            let p = e.path();
            if p.is_dir() {
                collect(&p, ext, out);
            } else if p.extension().is_some_and(|e| e == ext) {
                out.push(p.strip_prefix(repo()).expect("under the repository").to_path_buf());
            }
        }
    }
    let mut files = vec![PathBuf::from("README.md")];
    collect(&repo().join("docs"), "md", &mut files);
    collect(&repo().join("configs"), "toml", &mut files);
    files.sort();
    files
}

/// How many paths the file names, and `FILE:LINE: PATH` for each that does not exist.
fn check(file: &Path, text: &str) -> (usize, Vec<String>) {
    let markdown = file.extension().is_some_and(|e| e == "md");
    let dir = repo().join(file).parent().expect("a file has a parent").to_path_buf();
    let (mut checked, mut missing) = (0, Vec::new());
    for (n, line) in text.lines().enumerate() {
        let at = format!("{}:{}", file.display(), n + 1);
        for token in path_tokens(line) {
            for p in expand_braces(&clean(&token)) {
                if is_placeholder(&p) {
                    continue;
                }
                checked += 1;
                if !exists(repo(), &p) {
                    missing.push(format!("{at}: {p}"));
                }
            }
        }
        if markdown {
            for target in link_targets(line) {
                let (base, rel) = match target.strip_prefix('/') {
                    Some(r) => (repo().to_path_buf(), r.to_string()),
                    None => (dir.clone(), target.clone()),
                };
                if is_placeholder(&rel) {
                    continue;
                }
                checked += 1;
                if !exists(&base, &rel) {
                    missing.push(format!("{at}: link target {target}"));
                }
            }
        }
    }
    (checked, missing)
}

#[test]
fn every_path_the_docs_and_configs_name_exists() {
    let files = checked_files();
    assert!(files.len() > 40, "only {} files found to check", files.len());
    let (mut checked, mut missing) = (0, Vec::new());
    for f in &files {
        let text = std::fs::read_to_string(repo().join(f)).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        let (n, m) = check(f, &text);
        checked += n;
        missing.extend(m);
    }
    // a scanner that stopped recognising paths would pass vacuously
    assert!(checked > 100, "only {checked} paths found in {} files", files.len());
    assert!(
        missing.is_empty(),
        "{} repository path(s) named in the docs or configs do not exist (file:line: path):\n  {}",
        missing.len(),
        missing.join("\n  ")
    );
}

#[test]
fn the_scanner_finds_cleans_and_skips_what_it_should() {
    let line = "see `src/data/io.rs:42`, src/lib.rs#L3 and (docs/gpu.md). Also README.md; runs/so/x.rs, \
                my/src/x.rs, `configs/{gta5,synthia}/lse_{r101,vgg16}.toml`, configs/synth/METHOD.toml.";
    let paths: Vec<String> = path_tokens(line).iter().map(|t| clean(t)).collect();
    assert_eq!(
        paths,
        [
            "src/data/io.rs",
            "src/lib.rs",
            "docs/gpu.md",
            "README.md",
            "configs/{gta5,synthia}/lse_{r101,vgg16}.toml",
            "configs/synth/METHOD.toml"
        ]
    );
    assert_eq!(expand_braces(&paths[4]).len(), 4);
    assert!(expand_braces(&paths[4]).iter().all(|p| exists(repo(), p)));
    assert!(is_placeholder("configs/synth/METHOD.toml") && is_placeholder("configs/synth/<method>.toml"));
    assert!(!is_placeholder("tests/fixtures/README.md"));
    assert!(exists(repo(), "configs/synth/*.toml") && !exists(repo(), "src/*_nothing_.rs"));
    assert_eq!(link_targets("[a](../gpu.md#top) [b](https://x.org/y) [c](#here)"), ["../gpu.md"]);
    assert!(exists(&repo().join("docs/methods"), "../gpu.md"));
}

/// docs/design.md's map names every folder and file under src/ (a file by its stem, as the map
/// lists `conv/ (autodiff, dense, …)`; `mod.rs` stands for its folder), and every `NAME.rs` or
/// `NAME/` it names exists under src/.
#[test]
fn the_design_map_matches_the_source_tree() {
    let design = std::fs::read_to_string(repo().join("docs/design.md")).unwrap();
    let start = design.find("```\nsrc/\n").expect("docs/design.md has a map starting with src/");
    let map = &design[start + 4..start + 4 + design[start + 4..].find("```").unwrap()];
    let words: std::collections::HashSet<&str> = map.split(|c: char| !(c.is_alphanumeric() || c == '_')).collect();
    let mut names = std::collections::HashSet::new();
    let mut missing = Vec::new();
    fn walk(dir: &Path, f: &mut dyn FnMut(&Path)) {
        for e in std::fs::read_dir(dir).unwrap().filter_map(|e| e.ok()) {
            f(&e.path());
            if e.path().is_dir() {
                walk(&e.path(), f);
            }
        }
    }
    walk(&repo().join("src"), &mut |p| {
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        names.insert(name.clone());
        let stem = name.trim_end_matches(".rs");
        if name != "mod.rs" && !words.contains(stem) {
            missing.push(p.strip_prefix(repo()).unwrap().display().to_string());
        }
    });
    assert!(missing.is_empty(), "docs/design.md's map does not name: {missing:?}");
    // the folders beside src/ (benches/, tests/, …) are named on the map's last lines
    let outside = ["src/", "benches/", "tests/", "configs/", "docs/", "bench/", "scripts/"];
    let stale: Vec<&str> = map
        .split(|c: char| c.is_whitespace() || "(),;:`".contains(c))
        .filter(|t| {
            t.ends_with(".rs")
                || (t.len() > 1
                    && t.ends_with('/')
                    && t[..t.len() - 1].chars().all(|c| c.is_ascii_lowercase() || c == '_'))
        })
        .filter(|t| !outside.contains(t) && !names.contains(t.trim_end_matches('/')))
        .collect();
    assert!(stale.is_empty(), "docs/design.md's map names what src/ does not have: {stale:?}");
}

/// Each adaptation table of docs/benchmarks.md sits under its marker with the command that made
/// it, and the sections after the tables are still there (a table filler whose pattern ran past
/// the table once cut the rest of the file).
#[test]
fn benchmark_tables_keep_their_command_and_the_sections_after_them() {
    let text = std::fs::read_to_string(repo().join("docs/benchmarks.md")).unwrap();
    for shift in ["camera", "classwise"] {
        let marker = format!("<!-- table:{shift} -->\n");
        let at = text.find(&marker).unwrap_or_else(|| panic!("docs/benchmarks.md: no {marker:?}"));
        let rest = &text[at + marker.len()..];
        assert!(rest.starts_with("```sh\nsegda report "), "the {shift} table is not under its command");
        let rows = rest.lines().skip(4).take_while(|l| l.starts_with('|')).count();
        assert!(rows >= 5, "the {shift} table has {rows} lines");
    }
    let camera = text.find("<!-- table:camera -->").unwrap();
    for later in ["<!-- table:classwise -->", "### What the tables say", "(2026-12-02)"] {
        assert!(text[camera..].contains(later), "docs/benchmarks.md lost {later:?} after the camera table");
    }
}
