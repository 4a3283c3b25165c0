//! Builds the plugins workspace (`../plugins`) for wasm32-wasip2 so the built-in plugins
//! can be embedded with `include_bytes!` and the test suite can load the hostile ones.
//!
//! The nested cargo gets its own target directory (a nested build on the outer target
//! directory would wait forever on the outer build's lock) and a clean environment:
//! the outer build's RUSTFLAGS, target and profile settings are for the host, not for
//! wasm. The wasm32-wasip2 target is installed with rustup when it is missing.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

const BUILT_IN: &[&str] = &["core_events", "video_events"];

fn main() {
    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap());
    let root = manifest_dir.parent().unwrap().to_path_buf();
    let plugins = root.join("plugins");
    let out_dir = PathBuf::from(env::var("OUT_DIR").unwrap());

    watch(&root.join("wit"));
    watch(&root.join("sdk").join("src"));
    println!(
        "cargo:rerun-if-changed={}",
        root.join("sdk/Cargo.toml").display()
    );
    for f in ["Cargo.toml", "Cargo.lock", ".cargo/config.toml"] {
        println!("cargo:rerun-if-changed={}", plugins.join(f).display());
    }
    for member in members(&plugins) {
        println!(
            "cargo:rerun-if-changed={}",
            member.join("Cargo.toml").display()
        );
        watch(&member.join("src"));
    }
    println!("cargo:rerun-if-env-changed=MAGPIE_PLUGINS_TARGET_DIR");

    let target_dir = env::var_os("MAGPIE_PLUGINS_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| wasm_target_dir(&out_dir));
    ensure_wasm_target();

    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(&plugins)
        .args([
            "build",
            "--release",
            "--workspace",
            "--target",
            "wasm32-wasip2",
        ])
        .arg("--target-dir")
        .arg(&target_dir);
    for (key, _) in env::vars_os() {
        let key = key.to_string_lossy().into_owned();
        let outer = key == "RUSTFLAGS"
            || key == "RUSTDOCFLAGS"
            || key == "CARGO_ENCODED_RUSTFLAGS"
            || key == "CARGO_ENCODED_RUSTDOCFLAGS"
            || key == "CARGO_TARGET_DIR"
            || key == "CARGO_BUILD_TARGET"
            || key == "CARGO_BUILD_TARGET_DIR"
            || key == "CARGO_BUILD_RUSTFLAGS"
            || key == "CARGO_INCREMENTAL"
            || key == "CARGO_LLVM_COV"
            || key == "RUSTC_WORKSPACE_WRAPPER"
            || key.starts_with("CARGO_PROFILE_")
            || key.starts_with("CARGO_CFG_")
            || key.starts_with("CARGO_FEATURE_")
            || key.starts_with("CARGO_PKG_")
            || key.starts_with("__CARGO");
        if outer {
            cmd.env_remove(&key);
        }
    }
    let output = cmd.output().expect("run cargo for the plugins workspace");
    if !output.status.success() {
        panic!(
            "building the plugins (cd plugins && cargo build --release --target wasm32-wasip2) failed:\n{}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let wasm_dir = target_dir.join("wasm32-wasip2").join("release");
    for name in BUILT_IN {
        let from = wasm_dir.join(format!("{name}.wasm"));
        let to = out_dir.join(format!("{name}.wasm"));
        std::fs::copy(&from, &to).unwrap_or_else(|e| panic!("copy {}: {e}", from.display()));
    }
    // The hostile test plugins stay where they are: only the tests load them.
    println!(
        "cargo:rustc-env=MAGPIE_TEST_PLUGINS_DIR={}",
        wasm_dir.display()
    );
}

/// `<outer target dir>/wasm-plugins`: stable across builds of the host (so the plugins
/// are not rebuilt from scratch for every profile), never the outer directory itself.
fn wasm_target_dir(out_dir: &Path) -> PathBuf {
    // OUT_DIR is <target>/<profile>/build/magpie-<hash>/out (or with a target triple).
    let mut dir = out_dir;
    while let Some(parent) = dir.parent() {
        if dir.file_name().is_some_and(|n| n == "build")
            && let Some(target) = parent.parent()
        {
            return target.join("wasm-plugins");
        }
        dir = parent;
    }
    out_dir.join("wasm-plugins")
}

fn ensure_wasm_target() {
    let rustc = env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let sysroot = Command::new(&rustc)
        .args(["--print", "sysroot"])
        .output()
        .ok()
        .filter(|o| o.status.success());
    if let Some(out) = sysroot {
        let sysroot = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if sysroot.join("lib/rustlib/wasm32-wasip2").is_dir() {
            return;
        }
    }
    let status = Command::new("rustup")
        .args(["target", "add", "wasm32-wasip2"])
        .status();
    match status {
        Ok(s) if s.success() => {}
        other => panic!(
            "the wasm32-wasip2 target is missing and `rustup target add wasm32-wasip2` failed: {other:?}"
        ),
    }
}

/// The plugin crates: every directory under plugins/ (two levels deep) with a Cargo.toml.
fn members(plugins: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![(plugins.to_path_buf(), 0)];
    while let Some((dir, depth)) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            let name = e.file_name();
            if !p.is_dir() || name == "target" || name.to_string_lossy().starts_with('.') {
                continue;
            }
            if p.join("Cargo.toml").is_file() {
                out.push(p.clone());
            }
            if depth < 2 {
                stack.push((p, depth + 1));
            }
        }
    }
    out.sort();
    out
}

fn watch(dir: &Path) {
    println!("cargo:rerun-if-changed={}", dir.display());
}
