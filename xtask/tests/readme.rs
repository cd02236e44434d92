//! The docs cannot drift from the CLI or from each other. In every Markdown file of the
//! repository (README.md, ARCHITECTURE.md, docs/*.md, the crates' READMEs; see [`doc_files`]):
//!
//! - every `cargo xtask …` command line (in `sh`/`bash`/`console` fenced code blocks, and inline
//!   code that starts with `cargo xtask`) parses with the current command line, through the
//!   hidden `xtask __parse`, which parses and runs nothing;
//! - every relative link points at a file that exists, and every `#anchor` at a heading of its
//!   target (GitHub's heading ids).
//!
//! Also: every command has a `--help` and is shown in README.md, the README's Quick start is the
//! two commands the project promises, and docs/README.md indexes every file of docs/. Each
//! checker is also run on a planted bad case it must report.

mod support;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

fn readme() -> String {
    read(&root().join("README.md"))
}

/// Every Markdown file of the repository, skipping build output (`target/`), `.git/` and other
/// hidden directories except `.github/`.
fn doc_files() -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
            .map(|e| e.expect("dir entry").path())
            .collect();
        entries.sort();
        for path in entries {
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if path.is_dir() {
                let skip = matches!(name, "target" | "node_modules")
                    || (name.starts_with('.') && name != ".github");
                if !skip {
                    walk(&path, out);
                }
            } else if name.ends_with(".md") {
                out.push(path);
            }
        }
    }
    let mut out = Vec::new();
    walk(&root(), &mut out);
    out
}

/// `path` relative to the workspace root, for messages.
fn display_path(path: &Path) -> String {
    let root = root().canonicalize().expect("root");
    let path = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
    path.strip_prefix(&root).unwrap_or(&path).display().to_string()
}

/// Shell words of `text` (single/double quotes group; a word with `$` is a shell value and
/// becomes a placeholder that any string flag accepts).
fn words(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut word = String::new();
    let mut quote: Option<char> = None;
    let mut in_word = false;
    let mut depth = 0; // inside `$( … )`
    for c in text.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => word.push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                in_word = true;
            }
            (None, '(') if word.ends_with('$') => {
                depth += 1;
                word.push(c);
            }
            (None, ')') if depth > 0 => {
                depth -= 1;
                word.push(c);
            }
            (None, c) if c.is_whitespace() && depth == 0 => {
                if in_word {
                    out.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            (None, c) => {
                word.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        out.push(word);
    }
    out.into_iter()
        .map(|w| if w.contains('$') { "0123456789abcdef".to_owned() } else { w })
        .collect()
}

/// The `cargo xtask` invocations of one shell line: comments dropped, split at `&&`, `||`, `;`,
/// `|`, each piece from `cargo xtask` on (environment assignments before it are allowed).
fn invocations(line: &str) -> Vec<Vec<String>> {
    let line = match line.find(" #") {
        Some(i) => &line[..i],
        None => line,
    };
    let mut out = Vec::new();
    for piece in line.split("&&").flat_map(|p| p.split("||")).flat_map(|p| p.split(';')) {
        for piece in piece.split('|') {
            let mut w = words(piece);
            // A redirection ends the command's arguments.
            if let Some(at) = w
                .iter()
                .position(|x| x.starts_with('>') || x.starts_with('<') || x.starts_with("2>"))
            {
                w.truncate(at);
            }
            let Some(at) = w.windows(2).position(|p| p[0] == "cargo" && p[1] == "xtask") else {
                continue;
            };
            // Only assignments (NAME=value) may come before it: it is the command.
            // `cargo xtask` alone or `cargo xtask …` is prose naming the tool, not a command.
            let args = w[at + 2..].to_vec();
            if args.is_empty() || args[0].starts_with('…') {
                continue;
            }
            if w[..at].iter().all(|v| v.contains('=') && !v.starts_with('-')) {
                out.push(args);
            }
        }
    }
    out
}

/// (where, arguments) of every command line in `text` (the file `name`).
fn commands_in(name: &str, text: &str) -> Vec<(String, Vec<String>)> {
    let mut found = Vec::new();
    // Inside a fenced block: None outside, else its language (diagrams have none).
    let mut fence: Option<String> = None;
    let mut prose = String::new();
    let (mut previous_blank, mut in_indented) = (true, false);
    for (n, line) in text.lines().enumerate() {
        if let Some(lang) = line.trim_start().strip_prefix("```") {
            fence = match fence {
                None => Some(lang.trim().to_owned()),
                Some(_) => None,
            };
            continue;
        }
        if let Some(lang) = &fence {
            if !matches!(lang.as_str(), "sh" | "bash" | "console") {
                continue;
            }
            for args in invocations(line) {
                found.push((format!("{name}:{}", n + 1), args));
            }
        } else {
            // Indented code (quoted error messages): four spaces after a blank line.
            let indented = line.starts_with("    ") && (previous_blank || in_indented);
            in_indented = indented;
            previous_blank = line.trim().is_empty();
            if !indented {
                prose.push_str(line);
                prose.push('\n');
            }
        }
    }
    // Inline code spans: the odd pieces between backticks (spans may wrap lines).
    for span in prose.split('`').skip(1).step_by(2) {
        let span = span.replace('\n', " ");
        if span.trim_start().starts_with("cargo xtask") {
            for args in invocations(&span) {
                found.push((format!("{name}: inline `{span}`"), args));
            }
        }
    }
    found
}

fn readme_commands() -> Vec<(String, Vec<String>)> {
    commands_in("README.md", &readme())
}

fn parses(args: &[String]) -> support::Run {
    support::run(support::xtask().arg("__parse").args(args))
}

/// The command lines the CLI rejects, one line each: where, the command, clap's first line.
fn rejected(commands: &[(String, Vec<String>)]) -> Vec<String> {
    commands
        .iter()
        .filter_map(|(at, args)| {
            let run = parses(args);
            (!run.success()).then(|| {
                let why = run.stderr().lines().next().unwrap_or("").to_owned();
                format!("{at}: cargo xtask {}: {why}", args.join(" "))
            })
        })
        .collect()
}

/// GitHub's id of a heading: inline links reduced to their text, lower case, every character
/// but letters, digits, `-`, `_` and spaces dropped, spaces turned into `-`.
fn slug(heading: &str) -> String {
    let mut text = String::new();
    let mut rest = heading;
    while let Some(open) = rest.find('[') {
        let close = rest[open..].find("](").map(|c| open + c);
        let end = close.and_then(|c| rest[c..].find(')').map(|e| c + e));
        match (close, end) {
            (Some(close), Some(end)) => {
                text.push_str(&rest[..open]);
                text.push_str(&rest[open + 1..close]);
                rest = &rest[end + 1..];
            }
            _ => break,
        }
    }
    text.push_str(rest);
    text.trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | ' '))
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

/// The ids of the headings of a Markdown text (ATX headings outside fenced code; a repeated
/// id gets `-1`, `-2`… as on GitHub).
fn anchors(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut in_fence = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            in_fence = !in_fence;
            continue;
        }
        let hashes = line.chars().take_while(|c| *c == '#').count();
        if in_fence || !(1..=6).contains(&hashes) || !line[hashes..].starts_with(' ') {
            continue;
        }
        let base = slug(&line[hashes..]);
        let mut id = base.clone();
        let mut n = 0;
        while out.contains(&id) {
            n += 1;
            id = format!("{base}-{n}");
        }
        out.insert(id);
    }
    out
}

/// The link targets of a Markdown text, with their line numbers: `[text](target)` outside
/// fenced code and outside inline code (link text may be code: [`x`](x)).
fn links(text: &str) -> Vec<(usize, String)> {
    let mut prose = String::new();
    let mut in_fence = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            in_fence = !in_fence;
            prose.push('\n');
            continue;
        }
        if !in_fence {
            prose.push_str(line);
        }
        prose.push('\n');
    }
    // Inline code blanked out (newlines kept, so line numbers stay right).
    let mut plain = String::new();
    for (i, piece) in prose.split('`').enumerate() {
        if i % 2 == 0 {
            plain.push_str(piece);
        } else {
            plain.extend(piece.chars().map(|c| if c == '\n' { '\n' } else { ' ' }));
        }
    }
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(at) = plain[from..].find("](") {
        let start = from + at + 2;
        let Some(len) = plain[start..].find(')') else { break };
        let target = plain[start..start + len].trim().to_owned();
        let line = plain[..start].matches('\n').count() + 1;
        out.push((line, target));
        from = start + len;
    }
    out
}

/// Links of `text` (the file `file`) that lead nowhere: a missing file, or an anchor that is
/// not a heading of its Markdown target. Web links are not followed.
fn broken_links(file: &Path, text: &str) -> Vec<String> {
    let dir = file.parent().expect("a file in a directory");
    let mut out = Vec::new();
    for (line, target) in links(text) {
        if target.contains("://") || target.starts_with("mailto:") {
            continue;
        }
        let (path, anchor) = match target.split_once('#') {
            Some((path, anchor)) => (path, Some(anchor)),
            None => (target.as_str(), None),
        };
        let at = format!("{}:{line}: ({target})", display_path(file));
        let resolved = match path {
            "" => file.to_path_buf(),
            p if p.starts_with('/') => root().join(p.trim_start_matches('/')),
            p => dir.join(p),
        };
        if !resolved.exists() {
            out.push(format!("{at}: no such file {}", resolved.display()));
            continue;
        }
        let Some(anchor) = anchor else { continue };
        let is_markdown = resolved.extension().is_some_and(|e| e == "md");
        if !is_markdown {
            out.push(format!("{at}: an anchor into a file that is not Markdown"));
            continue;
        }
        let target_text = if path.is_empty() { text.to_owned() } else { read(&resolved) };
        if !anchors(&target_text).contains(anchor) {
            out.push(format!("{at}: no heading #{anchor} in {}", display_path(&resolved)));
        }
    }
    out
}

#[test]
fn the_word_splitter_understands_the_shell_the_readme_uses() {
    assert_eq!(
        invocations(r#"cargo xtask image && cargo xtask push --env dev   # tags"#),
        [vec!["image".to_owned()], vec!["push".into(), "--env".into(), "dev".into()]]
    );
    assert_eq!(
        invocations(r#"X=1 cargo xtask deploy --tag "$(git rev-parse HEAD)" --dry-run"#),
        [vec!["deploy".to_owned(), "--tag".into(), "0123456789abcdef".into(), "--dry-run".into()]]
    );
    assert_eq!(
        invocations(". target/xtask/local/env && cargo xtask local status"),
        [vec!["local".to_owned(), "status".into()]]
    );
    assert!(invocations("echo cargo xtask image").is_empty());
    // The hidden parser does reject what the CLI rejects.
    let bad = parses(&["deploy".into(), "--env".into(), "qa".into()]);
    assert!(!bad.success() && bad.stderr().contains("invalid value 'qa'"), "{}", bad.stderr());
}

#[test]
fn the_command_check_reports_a_planted_bad_line() {
    let planted = "Prose with `cargo xtask deploy --env qa` inline.\n\n\
                   ```sh\ncargo xtask --nope\ncargo xtask image   # fine\n```\n";
    let commands = commands_in("planted.md", planted);
    assert_eq!(commands.len(), 3, "{commands:?}");
    let failures = rejected(&commands);
    assert_eq!(failures.len(), 2, "{failures:?}");
    assert!(
        failures.iter().any(|f| f.starts_with("planted.md:4: cargo xtask --nope")),
        "{failures:?}"
    );
    assert!(failures.iter().any(|f| f.contains("deploy --env qa")), "{failures:?}");
}

#[test]
fn every_command_line_in_the_docs_parses() {
    let files = doc_files();
    let names: Vec<String> = files.iter().map(|f| display_path(f)).collect();
    for needed in ["README.md", "ARCHITECTURE.md", "docs/README.md", "splitter/README.md"] {
        assert!(names.iter().any(|n| n == needed), "{needed} not among {names:?}");
    }
    let mut commands = Vec::new();
    for (file, name) in files.iter().zip(&names) {
        commands.extend(commands_in(name, &read(file)));
    }
    assert!(commands.len() > 40, "only {} command lines found", commands.len());
    assert!(
        commands.iter().filter(|(at, _)| at.starts_with("docs/")).count() > 30,
        "the command lines of docs/ are not found"
    );
    let failures = rejected(&commands);
    assert!(failures.is_empty(), "command lines the CLI rejects:\n{}", failures.join("\n"));
}

/// The top-level commands, from `cargo xtask --help`.
fn subcommands() -> Vec<String> {
    let help = support::run(support::xtask().arg("--help"));
    help.assert_success();
    let text = help.stdout();
    let list = text.split("Commands:").nth(1).expect("a Commands: section");
    list.lines()
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .filter_map(|l| l.split_whitespace().next())
        .filter(|c| *c != "help")
        .map(str::to_owned)
        .collect()
}

#[test]
fn every_command_has_help_and_is_in_the_readme() {
    let commands = readme_commands();
    let subs = subcommands();
    assert!(subs.len() >= 10, "{subs:?}");
    for sub in &subs {
        let help = support::run(support::xtask().args([sub.as_str(), "--help"]));
        help.assert_success();
        assert!(help.stdout().contains("Usage: cargo xtask"), "{sub} --help:\n{}", help.stdout());
        assert!(
            commands.iter().any(|(_, args)| args.first() == Some(sub)),
            "README.md never shows `cargo xtask {sub} …`"
        );
    }
}

#[test]
fn the_quick_start_is_the_main_job_and_the_tests() {
    let text = readme();
    let quick = text.split("## Quick start").nth(1).expect("a Quick start section");
    let block =
        quick.split("```sh").nth(1).and_then(|b| b.split("```").next()).expect("a sh block");
    let lines: Vec<Vec<Vec<String>>> =
        block.lines().filter(|l| !l.trim().is_empty()).map(invocations).collect();
    assert_eq!(
        lines,
        [vec![vec!["pipeline".to_owned(), "--local".into()]], vec![vec!["test".to_owned()]]],
        "{block}"
    );
    assert!(text.contains("cargo bench -p splitter --bench split"), "the splitter's benchmark");
}

#[test]
fn headings_get_github_ids() {
    assert_eq!(
        slug(" The local stack: `cargo xtask local up | status | down | env`"),
        "the-local-stack-cargo-xtask-local-up--status--down--env"
    );
    assert_eq!(slug(" CI/CD: the GitHub Actions workflow"), "cicd-the-github-actions-workflow");
    assert_eq!(slug(" Manifest (`schema_version` 2)"), "manifest-schema_version-2");
    assert_eq!(
        slug(" Secrets (Settings → Secrets and variables → Actions)"),
        "secrets-settings--secrets-and-variables--actions"
    );
    assert_eq!(slug(" See [the guide](docs/README.md) first"), "see-the-guide-first");
    let ids = anchors("# A\n```sh\n# not a heading\n```\n## A\n#nope\n");
    assert_eq!(ids, BTreeSet::from(["a".to_owned(), "a-1".to_owned()]));
}

#[test]
fn the_link_check_reports_planted_broken_links() {
    let planted = "# Planted\n\n\
        [fine](docs/README.md#names), [fine too](#planted), [web](https://example.com/#x),\n\
        `[in code](nowhere.md)`, [`code text`](ARCHITECTURE.md).\n\
        [missing file](docs/nope.md) and [missing heading](docs/README.md#no-such-heading)\n\
        and [missing here](#nowhere) and [not markdown](Cargo.toml#x).\n\
        ```sh\necho [in a fence](nowhere.md)\n```\n";
    let broken = broken_links(&root().join("README.md"), planted);
    assert_eq!(broken.len(), 4, "{broken:#?}");
    for (expected, line) in
        [("docs/nope.md", 5), ("no-such-heading", 5), ("#nowhere", 6), ("Cargo.toml#x", 6)]
    {
        assert!(
            broken
                .iter()
                .any(|b| b.contains(expected) && b.contains(&format!("README.md:{line}:"))),
            "{expected} (line {line}) not reported: {broken:#?}"
        );
    }
}

#[test]
fn every_relative_link_and_anchor_resolves() {
    let mut broken = Vec::new();
    let mut count = 0;
    for file in doc_files() {
        let text = read(&file);
        count += links(&text).len();
        broken.extend(broken_links(&file, &text));
    }
    assert!(count > 100, "only {count} links found");
    assert!(broken.is_empty(), "links that lead nowhere:\n{}", broken.join("\n"));
}

#[test]
fn the_docs_index_lists_every_file_of_docs() {
    let index = read(&root().join("docs/README.md"));
    let linked: BTreeSet<String> = links(&index).into_iter().map(|(_, t)| t).collect();
    let mut missing = Vec::new();
    for file in doc_files() {
        let name = display_path(&file);
        let Some(in_docs) = name.strip_prefix("docs/") else { continue };
        if in_docs != "README.md" && !linked.iter().any(|t| t.split('#').next() == Some(in_docs)) {
            missing.push(name);
        }
    }
    assert!(missing.is_empty(), "docs/README.md does not link {missing:?}");
    assert!(
        links(&readme()).iter().any(|(_, t)| t == "docs/README.md"),
        "README.md does not link docs/README.md"
    );
}
