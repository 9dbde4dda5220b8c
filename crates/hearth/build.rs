//! Stamps the binary with the git revision it was built from, for `hearth --version` and the
//! start-up log line: an operator reporting a bug can then say exactly what runs. A build from
//! a tarball (no git, or no repository) says "unknown"; HEARTH_GIT_REV overrides both, for
//! builds whose context leaves `.git` out (the container image).

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=HEARTH_GIT_REV");
    println!("cargo:rerun-if-changed=build.rs");
    let rev = std::env::var("HEARTH_GIT_REV")
        .ok()
        .map(|r| r.trim().to_string())
        .filter(|r| !r.is_empty())
        .or_else(|| {
            let rev = git(&["rev-parse", "--short=12", "HEAD"])?;
            watch_head();
            Some(rev)
        })
        .unwrap_or_else(|| "unknown".to_string());
    println!("cargo:rustc-env=HEARTH_GIT_REV={rev}");
}

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (!text.is_empty()).then_some(text)
}

/// Rebuild when HEAD moves (a commit, a checkout), not on every build: in a worktree HEAD lives
/// in the worktree's git dir and the branch refs in the common one.
fn watch_head() {
    let (Some(git_dir), Some(common)) = (
        git(&["rev-parse", "--git-dir"]).map(PathBuf::from),
        git(&["rev-parse", "--git-common-dir"]).map(PathBuf::from),
    ) else {
        return;
    };
    let head = git_dir.join("HEAD");
    println!("cargo:rerun-if-changed={}", head.display());
    println!(
        "cargo:rerun-if-changed={}",
        common.join("packed-refs").display()
    );
    if let Ok(text) = std::fs::read_to_string(&head)
        && let Some(reference) = text.trim().strip_prefix("ref: ")
    {
        for dir in [&git_dir, &common] {
            let path = Path::new(dir).join(reference);
            if path.exists() {
                println!("cargo:rerun-if-changed={}", path.display());
            }
        }
    }
}
