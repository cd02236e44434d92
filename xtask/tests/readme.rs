//! README.md cannot drift from the CLI: every `cargo xtask …` command line it shows (in fenced
//! code blocks, and inline code that starts with `cargo xtask`) parses with the current command
//! line (through the hidden `xtask __parse`, which parses and runs nothing), every command has a
//! `--help` and is documented, and the Quick start is the two commands the project promises.

mod support;

use std::path::PathBuf;

fn readme() -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../README.md");
    std::fs::read_to_string(path).expect("read README.md")
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

/// (where, arguments) of every command line in the README.
fn readme_commands() -> Vec<(String, Vec<String>)> {
    let text = readme();
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
                found.push((format!("README.md:{}", n + 1), args));
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
                found.push((format!("inline `{span}`"), args));
            }
        }
    }
    found
}

fn parses(args: &[String]) -> support::Run {
    support::run(support::xtask().arg("__parse").args(args))
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
fn every_command_line_in_the_readme_parses() {
    let commands = readme_commands();
    assert!(commands.len() > 40, "only {} command lines found", commands.len());
    let failures: Vec<String> = commands
        .iter()
        .filter_map(|(at, args)| {
            let run = parses(args);
            (!run.success()).then(|| {
                let why = run.stderr().lines().next().unwrap_or("").to_owned();
                format!("{at}: cargo xtask {}: {why}", args.join(" "))
            })
        })
        .collect();
    assert!(failures.is_empty(), "README command lines the CLI rejects:\n{}", failures.join("\n"));
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
