//! A newcomer's first hour, literally: README.md's "Install" section run line by line in
//! bash, in a scratch home, with `$HOME/.cargo/bin` first on the PATH; then what those
//! lines promise (completions that load, man pages that render, `kubectl baton` through
//! kubectl's own plugin mechanism with baton's exit codes), every printing command that
//! needs no cluster ended by a closed pipe (`| head -1`), and the krew manifest.
//!
//! The install is a copy, not `cargo install`: copying `CARGO_BIN_EXE_baton` and
//! `CARGO_BIN_EXE_kubectl-baton` into `$HOME/.cargo/bin` is what `cargo install --path
//! crates/cli --locked` does after building (it installs the package's `[[bin]]`s and
//! nothing else). Running cargo install itself was measured on 2 cores: into the test
//! build's own target dir it rebuilds the dependency graph without the dev-dependencies'
//! features (baton-aws's `testbed`, …): 3 min 3 s the first time (aws-sdk-ec2 again), then
//! 0.9 s warm and 7 s after a change to baton-core — and it needs the crates.io index
//! (`Updating crates.io index`) unless `--offline`. A first test run paying three
//! minutes, or failing without a network, is not worth the little it would add.

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use common::text;

/// The scratch machine: `home` is `$HOME`, baton installed in `home/.cargo/bin`.
struct Newcomer {
    _tmp: tempfile::TempDir,
    home: PathBuf,
    bin: PathBuf,
    path: std::ffi::OsString,
}

impl Newcomer {
    fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let home = tmp.path().join("home");
        let bin = home.join(".cargo/bin");
        std::fs::create_dir_all(&bin).unwrap();
        // What `cargo install --path crates/cli --locked` puts there (see the top).
        for (name, built) in [
            ("baton", env!("CARGO_BIN_EXE_baton")),
            ("kubectl-baton", env!("CARGO_BIN_EXE_kubectl-baton")),
        ] {
            std::fs::copy(built, bin.join(name)).unwrap();
        }
        let mut dirs = vec![bin.clone()];
        dirs.extend(std::env::split_paths(
            &std::env::var_os("PATH").unwrap_or_default(),
        ));
        let path = std::env::join_paths(dirs).unwrap();
        Newcomer {
            _tmp: tmp,
            home,
            bin,
            path,
        }
    }

    /// A command with the newcomer's environment: their home, the install first on the
    /// PATH, no kubeconfig of the machine's, pages printed rather than paged.
    fn command(&self, program: &str) -> Command {
        let mut c = Command::new(program);
        c.current_dir(&self.home)
            .env("HOME", &self.home)
            .env("PATH", &self.path)
            .env("KUBECONFIG", self.home.join(".kube/config"))
            .env("MANPAGER", "cat")
            .env("PAGER", "cat")
            .env_remove("BASH_ENV")
            .env_remove("MANPATH");
        c
    }

    /// `bash -c LINE` as a terminal would run it (`set -e -o pipefail`).
    fn bash(&self, line: &str) -> Output {
        self.command("bash")
            .args(["--noprofile", "--norc", "-e", "-o", "pipefail", "-c", line])
            .output()
            .unwrap()
    }

    /// `baton ARGS…`, found on the PATH.
    fn baton(&self, args: &[&str]) -> Output {
        self.command("baton").args(args).output().unwrap()
    }

    fn has(&self, program: &str) -> bool {
        std::env::split_paths(&self.path).any(|d| d.join(program).is_file())
    }
}

#[track_caller]
fn ok(what: &str, o: &Output) -> String {
    assert!(
        o.status.success(),
        "{what}: {:?}\nstdout: {}\nstderr: {}",
        o.status,
        text(&o.stdout),
        text(&o.stderr)
    );
    text(&o.stdout)
}

/// README.md's "Install" section: its indented command lines, in order.
fn readme_install_lines() -> Vec<String> {
    let readme = include_str!("../../../README.md");
    let start = readme
        .find("\n## Install\n")
        .expect("README has an Install section");
    let section = &readme[start + 1..];
    let end = section[3..].find("\n## ").map_or(section.len(), |i| i + 3);
    section[..end]
        .lines()
        .filter_map(|l| l.strip_prefix("    "))
        .map(|l| l.trim().to_string())
        .filter(|l| !l.is_empty())
        .collect()
}

#[test]
fn readme_install_section_works_as_written_in_a_scratch_home() {
    let n = Newcomer::new();
    let lines = readme_install_lines();
    assert_eq!(
        lines.first().map(String::as_str),
        Some("cargo install --path crates/cli --locked"),
        "README's install line changed; this test's copy stands in for it: {lines:?}"
    );
    let mut ran = Vec::new();
    for line in &lines[1..] {
        // A segment whose program this machine lacks (man) is left out, saying so.
        let segments: Vec<&str> = line
            .split("&&")
            .map(str::trim)
            .filter(|seg| {
                let program = seg.split_whitespace().next().unwrap_or_default();
                let present = n.has(program);
                if !present {
                    eprintln!("SKIPPED: `{seg}`: {program} is not installed");
                }
                present
            })
            .collect();
        let line = segments.join(" && ");
        let out = n.bash(&line);
        ok(&line, &out);
        ran.push((line, out));
    }
    let stdout_of = |prefix: &str| {
        ran.iter()
            .find(|(l, _)| l.starts_with(prefix))
            .map(|(_, o)| text(&o.stdout))
            .unwrap_or_else(|| panic!("README's Install section lacks `{prefix}…`"))
    };

    assert_eq!(
        stdout_of("baton --version").trim(),
        format!("baton {}", env!("CARGO_PKG_VERSION"))
    );
    // The plugin's help is baton's, named as typed.
    let help = stdout_of("kubectl baton --help");
    assert!(help.contains("Usage: kubectl baton"), "{help}");
    assert!(
        help.contains("migrate") && help.contains("completion"),
        "{help}"
    );

    // The bash completion loads and completes baton's subcommands.
    let script = n
        .home
        .join(".local/share/bash-completion/completions/baton");
    let bash_script = std::fs::read_to_string(&script).unwrap();
    for sub in ["migrate", "rollback", "permissions", "completion"] {
        assert!(bash_script.contains(sub), "bash completion lacks {sub}");
    }
    ok("bash -n", &n.bash(&format!("bash -n {}", script.display())));
    let loaded = ok(
        "source and complete -p",
        &n.bash(&format!("source {} && complete -p baton", script.display())),
    );
    assert!(loaded.trim_end().ends_with(" baton"), "{loaded}");

    // The man pages: baton.1 and one per subcommand, roff that man renders.
    let man1 = n.home.join(".cargo/share/man/man1");
    for page in [
        "baton.1",
        "baton-migrate.1",
        "baton-sim-up.1",
        "baton-man.1",
    ] {
        let roff = std::fs::read_to_string(man1.join(page)).unwrap();
        assert!(
            roff.lines().any(|l| l.starts_with(".TH ")),
            "{page}: {roff}"
        );
    }
    if n.has("man") {
        let page = stdout_of("baton man --dir");
        assert!(
            page.contains("baton-migrate") && page.contains("SYNOPSIS"),
            "{page}"
        );
        // The prose's `baton man | man -l -`.
        let page = ok("baton man | man -l -", &n.bash("baton man | man -l -"));
        assert!(
            page.contains("SYNOPSIS") && page.contains("baton-migrate(1)"),
            "{page}"
        );
    }
}

#[test]
fn completions_for_zsh_and_fish_name_the_commands() {
    let n = Newcomer::new();
    for (shell, marker) in [("zsh", "#compdef baton"), ("fish", "complete -c baton")] {
        let script = ok(shell, &n.baton(&["completion", shell]));
        assert!(script.contains(marker), "{shell}: {script}");
        for sub in ["migrate", "traffic", "man"] {
            assert!(script.contains(sub), "{shell} completion lacks {sub}");
        }
    }
    // A shell baton does not know is a usage error naming the ones it does.
    let o = n.baton(&["completion", "tcsh"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o.stderr).contains("possible values: bash"));
}

#[test]
fn kubectl_finds_the_plugin_and_passes_baton_s_exit_codes_on() {
    let n = Newcomer::new();
    let kubectl = |args: &[&str]| n.command("kubectl").args(args).output().unwrap();
    // kubectl's own listing finds it first on the PATH, with no warning about it (a
    // warning would name it, e.g. "overshadowed" or "not executable").
    let list = kubectl(&["plugin", "list"]);
    let listed = text(&list.stdout) + &text(&list.stderr);
    let ours = n.bin.join("kubectl-baton").display().to_string();
    assert!(listed.contains(&ours), "{listed}");
    for line in listed.lines().filter(|l| l.contains(&ours)) {
        assert!(!line.contains("warning"), "{line}");
    }
    // A usage error through kubectl: baton's code (2) and its usage line, as typed.
    let o = kubectl(&["baton", "plan", "--to", "green"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o.stderr));
    assert!(
        text(&o.stderr).contains("Usage: kubectl baton plan --from <CONTEXT>"),
        "{}",
        text(&o.stderr)
    );
    // Run directly, baton keeps its own name.
    assert!(text(&n.baton(&["plan", "--to", "green"]).stderr).contains("Usage: baton plan"));
}

#[test]
fn kubectl_baton_alone_finds_baton_on_the_path_or_says_where_it_looked() {
    let tmp = tempfile::tempdir().unwrap();
    let lone = tmp.path().join("kubectl-baton");
    std::fs::copy(env!("CARGO_BIN_EXE_kubectl-baton"), &lone).unwrap();
    let o = Command::new(&lone)
        .arg("--help")
        .env("PATH", tmp.path().join("empty"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    let err = text(&o.stderr);
    assert!(
        err.contains(&tmp.path().join("baton").display().to_string()),
        "{err}"
    );
    assert!(
        err.contains("cargo install --path crates/cli --locked"),
        "{err}"
    );

    // With a baton elsewhere on the PATH, the shim runs that one.
    let elsewhere = tmp.path().join("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    std::fs::copy(env!("CARGO_BIN_EXE_baton"), elsewhere.join("baton")).unwrap();
    let o = Command::new(&lone)
        .arg("--help")
        .env("PATH", &elsewhere)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(text(&o.stdout).contains("Usage: kubectl baton"));
}

/// Every printing command that needs no cluster, as `| head -1` ends it: the first line
/// arrives, then the pipe closes; baton exits 0 without a panic. Checked twice: through a
/// real `| head -1` (which may close only after baton is done), and with stdout a pipe
/// whose reader is already gone, so that every write fails.
#[test]
fn printing_commands_end_quietly_when_the_pipe_closes() {
    let n = Newcomer::new();
    let commands: &[&[&str]] = &[
        &["--help"],
        &["--version"],
        &["migrate", "--help"],
        &["help", "traffic", "shift"],
        &["completion", "bash"],
        &["completion", "zsh"],
        &["completion", "fish"],
        &["man"],
        // These three print through crate::out's macros (a table, JSON, YAML).
        &["permissions"],
        &["permissions", "-o", "json"],
        &["permissions", "-o", "yaml"],
    ];
    for args in commands {
        let what = format!("baton {}", args.join(" "));
        let line = format!("{what} | head -1");
        let first = ok(&line, &n.bash(&line));
        assert_eq!(first.lines().count(), 1, "{line}: {first}");

        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let o = n
            .command("baton")
            .args(*args)
            .stdout(writer)
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        let err = text(&o.stderr);
        assert_eq!(o.status.code(), Some(0), "{what} into a closed pipe: {err}");
        assert!(!err.contains("panicked"), "{what}: {err}");
        assert_eq!(err, "", "{what} into a closed pipe should end quietly");

        // And the first line a reader does get is the command's own.
        let mut child = n
            .command("baton")
            .args(*args)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut head = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut head)
            .unwrap();
        assert!(!head.trim().is_empty(), "{what}: empty first line");
        assert!(child.wait().unwrap().success(), "{what}");
    }
}

/// plugins/baton.yaml: a krew Plugin for baton at the crate's version, every platform's
/// archive named for that version and linked as `bin: baton`, and no digest made up.
#[test]
fn krew_manifest_describes_this_version() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../plugins/baton.yaml");
    let yaml = std::fs::read_to_string(&path).unwrap();
    let m: serde_json::Value = serde_saphyr::from_str(&yaml).unwrap();
    assert_eq!(
        m["apiVersion"],
        "krew.googlecontainertools.github.com/v1alpha2"
    );
    assert_eq!(m["kind"], "Plugin");
    assert_eq!(m["metadata"]["name"], "baton");
    let version = format!("v{}", env!("CARGO_PKG_VERSION"));
    assert_eq!(m["spec"]["version"], version.as_str());
    let short = m["spec"]["shortDescription"].as_str().unwrap();
    assert!(!short.is_empty() && short.len() <= 70, "{short}");
    let platforms = m["spec"]["platforms"].as_array().unwrap();
    let mut seen = Vec::new();
    for p in platforms {
        let labels = &p["selector"]["matchLabels"];
        let (os, arch) = (
            labels["os"].as_str().unwrap(),
            labels["arch"].as_str().unwrap(),
        );
        seen.push(format!("{os}/{arch}"));
        assert_eq!(p["bin"], "baton", "{os}/{arch}");
        let uri = p["uri"].as_str().unwrap();
        assert!(
            uri.contains(&format!("/{version}/baton-{version}-")) && uri.ends_with(".tar.gz"),
            "{uri}"
        );
        // A real digest, or the placeholder the header says is filled at release.
        let sha = p["sha256"].as_str().unwrap();
        assert!(
            sha == "FILL-AT-RELEASE"
                || (sha.len() == 64 && sha.bytes().all(|b| b.is_ascii_hexdigit())),
            "{os}/{arch}: sha256 {sha}"
        );
    }
    seen.sort();
    assert_eq!(
        seen,
        ["darwin/amd64", "darwin/arm64", "linux/amd64", "linux/arm64"]
    );
}

/// A kubeconfig naming blue and green at ports where nothing listens (1 and 2: below
/// the ephemeral range, so no test's server can take them meanwhile).
fn kubeconfig_of_nothing(dir: &Path) -> PathBuf {
    let path = dir.join("kubeconfig");
    let (b, g) = (1, 2);
    std::fs::write(
        &path,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n\
             - {{name: blue, cluster: {{server: 'https://127.0.0.1:{b}', insecure-skip-tls-verify: true}}}}\n\
             - {{name: green, cluster: {{server: 'https://127.0.0.1:{g}', insecure-skip-tls-verify: true}}}}\n\
             users:\n- {{name: u, user: {{token: t}}}}\ncontexts:\n\
             - {{name: blue, context: {{cluster: blue, user: u}}}}\n\
             - {{name: green, context: {{cluster: green, user: u}}}}\n"
        ),
    )
    .unwrap();
    path
}

/// Asserts a first-hour error: its exit code, every piece it must name, each hint once,
/// and no colour codes or log noise in a stderr that is not a terminal.
#[track_caller]
fn says(o: &Output, code: i32, names: &[&str]) -> String {
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(code), "{err}");
    for name in names {
        assert!(err.contains(name), "stderr lacks {name:?}:\n{err}");
    }
    assert!(
        !err.contains('\x1b'),
        "colour in a non-terminal stderr:\n{err}"
    );
    assert!(
        !err.contains("ERROR") && !err.contains("WARN"),
        "log noise:\n{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
    let hints: Vec<&str> = err.lines().filter(|l| l.starts_with("hint: ")).collect();
    assert_eq!(hints.len(), 1, "one hint, last:\n{err}");
    assert!(
        err.trim_end().ends_with(hints[0]),
        "the hint comes last:\n{err}"
    );
    err
}

/// What a newcomer meets first when something is not there: a cluster that is down, a
/// kubeconfig that is missing, a context mistyped, AWS unreachable or without
/// credentials or region. Each says what failed, on what (URL, context, file), and what
/// to do next, once, in seconds.
#[test]
fn first_errors_say_what_failed_where_and_what_to_do_next() {
    let n = Newcomer::new();
    let dir = n.home.clone();
    let down = kubeconfig_of_nothing(&dir);
    let run = |args: &[&str], env: &[(&str, &str)]| {
        n.command("baton")
            .args(args)
            .current_dir(&dir)
            .env_remove("KUBECONFIG")
            .env("AWS_REGION", "us-east-1")
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("AWS_ENDPOINT_URL", "http://127.0.0.1:1")
            .envs(env.iter().copied())
            .output()
            .unwrap()
    };

    // A cluster that is down: the URL, the context, the kubeconfig, the attempts, and
    // where to look next, in a few seconds (it was 12.8 s of retries).
    let kc = down.to_str().unwrap();
    for cmd in [
        &["plan", "--from", "blue", "--to", "green"][..],
        &["backup", "--from", "blue"],
    ] {
        let o = run(&[cmd, &["--kubeconfig", kc]].concat(), &[]);
        says(
            &o,
            1,
            &[
                "failed to reach blue at https://127.0.0.1:",
                "context \"blue\"",
                kc,
                " attempts in ",
                &format!("kubectl --kubeconfig {kc} --context blue cluster-info"),
                "is `baton sim up` running",
            ],
        );
    }
    // Preflight names it too, under its own code for "could not check".
    let o = run(
        &["preflight", "--from", "blue", "--to", "green"],
        &[("KUBECONFIG", kc)],
    );
    says(
        &o,
        3,
        &[
            "could not check",
            "failed to reach blue",
            &format!("{kc} ($KUBECONFIG)"),
        ],
    );

    // A kubeconfig that is not there: said once, with where its name came from.
    let missing = dir.join("nope").display().to_string();
    let o = run(
        &[
            "plan",
            "--from",
            "blue",
            "--to",
            "green",
            "--kubeconfig",
            &missing,
        ],
        &[],
    );
    let err = says(
        &o,
        3,
        &[
            &format!("{missing} (--kubeconfig)"),
            "No such file",
            "nothing was changed",
            "hint: pass --kubeconfig",
            "source .baton/sim/env",
        ],
    );
    assert_eq!(
        err.matches("kubeconfig").count(),
        3,
        "the file named once, then the hint:\n{err}"
    );
    let o = run(&["plan", "--from", "blue", "--to", "green"], &[]);
    says(
        &o,
        3,
        &["~/.kube/config (the default: no --kubeconfig, $KUBECONFIG unset)"],
    );

    // A mistyped context: the contexts there are, and the command that lists them.
    let o = run(
        &[
            "plan",
            "--from",
            "bleu",
            "--to",
            "green",
            "--kubeconfig",
            kc,
        ],
        &[],
    );
    says(
        &o,
        3,
        &[
            "\"bleu\"",
            "blue, green",
            "--from",
            "kubectl config get-contexts",
        ],
    );

    // A usage error is 2, as README says, with the flag named.
    let o = run(&["plan", "--to", "green"], &[]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o.stderr));
    assert!(text(&o.stderr).contains("--from <CONTEXT>"));
}

/// AWS that does not answer, refuses the credentials or has no region, behind clusters
/// that do answer: said at once, with the endpoint and the command that checks it.
#[test]
fn aws_errors_come_before_any_work_and_say_what_to_check() {
    let sim = common::sim_up();
    // No shared AWS files to find credentials or a region in (empty ones: a file that is
    // not there is rightly warned about).
    let empty = sim.dir.path().join("empty-aws-file");
    std::fs::write(&empty, "").unwrap();
    let run = |env: &[(&str, &str)], remove: &[&str]| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_baton"));
        cmd.args(["plan", "--from", "blue", "--to", "green"])
            .envs(&sim.env)
            .env("HOME", sim.dir.path())
            .env("AWS_CONFIG_FILE", &empty)
            .env("AWS_SHARED_CREDENTIALS_FILE", &empty)
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .current_dir(sim.dir.path());
        for k in remove {
            cmd.env_remove(k);
        }
        cmd.envs(env.iter().copied()).output().unwrap()
    };
    let o = run(&[("AWS_ENDPOINT_URL", "http://127.0.0.1:1")], &[]);
    says(
        &o,
        1,
        &[
            "failed to reach AWS at http://127.0.0.1:1",
            "Connection refused",
            " attempts in ",
            "hint: `aws sts get-caller-identity`",
            "AWS_ENDPOINT_URL",
        ],
    );
    assert!(
        !text(&o.stderr).contains("DispatchFailure {"),
        "no Debug dumps"
    );

    let o = run(&[], &["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"]);
    says(
        &o,
        1,
        &[
            "failed to reach AWS",
            "credentials",
            "1 attempt in",
            "hint: baton found no usable AWS credentials",
            "aws sso login",
        ],
    );

    let o = run(&[], &["AWS_REGION", "AWS_DEFAULT_REGION"]);
    says(
        &o,
        1,
        &[
            "no AWS region",
            "--region",
            "hint: for the emulator, `source .baton/sim/env`",
        ],
    );
}

/// The commands that read clusters end quietly too when their reader leaves: `| head -1`
/// and a pipe closed before they write exit 0 with nothing on stderr, a dry run included
/// (the issue's `baton migrate --dry-run | head -2` panicked with exit 101).
#[test]
fn cluster_commands_end_quietly_when_the_pipe_closes() {
    let sim = common::sim_up();
    sim.grant_keys();
    sim.trust_green();
    let commands: &[&[&str]] = &[
        &["plan", "--from", "blue", "--to", "green"],
        &["plan", "--from", "blue", "--to", "green", "-o", "json"],
        &["plan", "--from", "blue", "--to", "green", "-o", "yaml"],
        &["migrate", "--from", "blue", "--to", "green", "--dry-run"],
        &["permissions", "--command", "plan"],
    ];
    for args in commands {
        let what = format!("baton {}", args.join(" "));
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let o = Command::new(env!("CARGO_BIN_EXE_baton"))
            .args(*args)
            .envs(&sim.env)
            .current_dir(sim.dir.path())
            .stdout(writer)
            .output()
            .unwrap();
        let err = text(&o.stderr);
        assert_eq!(o.status.code(), Some(0), "{what} into a closed pipe: {err}");
        assert!(!err.contains("panicked"), "{what}: {err}");
        // A dry run says on stderr that nothing was changed; nothing else is said.
        let said: Vec<&str> = err.lines().filter(|l| !l.starts_with("dry run:")).collect();
        assert!(said.is_empty(), "{what} into a closed pipe: {err}");

        let line = format!("{what} | head -1");
        let o = Command::new("bash")
            .args([
                "-o",
                "pipefail",
                "-c",
                &format!("\"$BATON\" {} | head -1", args.join(" ")),
            ])
            .env("BATON", env!("CARGO_BIN_EXE_baton"))
            .envs(&sim.env)
            .current_dir(sim.dir.path())
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(0), "{line}: {}", text(&o.stderr));
        assert_eq!(text(&o.stdout).lines().count(), 1, "{line}");
    }
}

/// README.md's "Tour" section: its indented code blocks, each a list of command lines.
fn readme_tour_blocks() -> Vec<Vec<String>> {
    let readme = include_str!("../../../README.md");
    let start = readme
        .find("\n## Tour\n")
        .expect("README has a Tour section");
    let section = &readme[start + 1..];
    let end = section[3..].find("\n## ").map_or(section.len(), |i| i + 3);
    let mut blocks: Vec<Vec<String>> = Vec::new();
    let mut open = false;
    for line in section[..end].lines() {
        match line.strip_prefix("    ") {
            Some(code) => {
                if !open {
                    blocks.push(Vec::new());
                    open = true;
                }
                blocks.last_mut().unwrap().push(code.trim().to_string());
            }
            None => open = false,
        }
    }
    blocks
}

/// The README's tour, literally, in the newcomer's scratch home: `baton sim up` as the
/// first block says, then every line of the second block in order, each in a shell that
/// has sourced the env file as its first line says. Each must exit 0, but `preflight`
/// and `plan`, which the README says exit 2 and 3 on this estate; a line needing a program
/// the machine lacks (the aws CLI) is skipped, saying so.
#[test]
fn readme_tour_works_as_written() {
    let n = Newcomer::new();
    let blocks = readme_tour_blocks();
    assert_eq!(
        blocks.len(),
        2,
        "a sim up block and a tour block: {blocks:?}"
    );
    assert_eq!(blocks[0], ["baton sim up --state-dir .baton/sim"]);
    let words: Vec<&str> = blocks[0][0].split(' ').collect();
    let mut sim = n
        .command(words[0])
        .args(&words[1..])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    struct Stop(std::process::Child);
    impl Drop for Stop {
        fn drop(&mut self) {
            let _ = Command::new("kill")
                .args(["-INT", &self.0.id().to_string()])
                .status();
            let _ = self.0.wait();
        }
    }
    let mut ready = String::new();
    BufReader::new(sim.stdout.take().unwrap())
        .read_line(&mut ready)
        .unwrap();
    let _sim = Stop(sim);
    assert!(ready.starts_with("baton sim ready"), "{ready}");

    let tour = &blocks[1];
    assert_eq!(tour[0], "source .baton/sim/env");
    let mut ran = 0;
    for line in &tour[1..] {
        let program = line.split(' ').next().unwrap();
        if !n.has(program) {
            println!("SKIPPED: `{line}`: {program} is not installed");
            continue;
        }
        let o = n.bash(&format!("source .baton/sim/env\n{line}"));
        let code = o.status.code();
        // The README says preflight exits 2 (a security group to mirror, a key green
        // cannot use, roles that do not trust green) and plan 3 (that key and orders-db's
        // role), before `volumes grant` and `identity apply`.
        let allowed: &[i32] = if line.starts_with("baton preflight") {
            &[2]
        } else if line.starts_with("baton plan") {
            &[3]
        } else {
            &[0]
        };
        assert!(
            code.is_some_and(|c| allowed.contains(&c)),
            "`{line}` exited {code:?}\nstdout: {}\nstderr: {}",
            text(&o.stdout),
            text(&o.stderr)
        );
        ran += 1;
    }
    assert!(ran >= tour.len() - 2, "most of the tour ran");
    // What the tour promises: the apps on green, on their volumes, blue's claims retired.
    let o = n.bash("source .baton/sim/env\nkubectl --context green get pvc -A --no-headers");
    let green = ok("green's claims", &o);
    assert!(
        green.lines().count() >= 9 && green.lines().all(|l| l.contains("Bound")),
        "{green}"
    );
    let o = n.bash("source .baton/sim/env\nkubectl --context blue get pvc -A --no-headers 2>&1");
    assert!(
        !text(&o.stdout).contains("Bound"),
        "blue keeps no claim after commit: {}",
        text(&o.stdout)
    );
}
