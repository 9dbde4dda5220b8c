#!/usr/bin/env python3
"""Structural checks of the container install path, for a machine without a container engine
(where `docker build` and `docker compose config` cannot run): the Dockerfile's stages and
runtime settings (parsed with dockerfile-parse), what .dockerignore leaves in the build
context, compose.yaml's services, and that every HEARTH_* name the install files set is one
Hearth reads. Run from the repository root."""
import fnmatch
import json
import re
import sys
from pathlib import Path

import yaml
from dockerfile_parse import DockerfileParser

failures = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what)
    if not cond:
        failures.append(what)


def dockerfile():
    df = DockerfileParser(path="Dockerfile")
    instructions = df.structure
    froms = [i for i in instructions if i["instruction"] == "FROM"]
    check(len(froms) == 2, "Dockerfile: two stages (build, runtime)")
    stages, current = {}, None
    for i in instructions:
        if i["instruction"] == "FROM":
            current = len(stages)
            stages[current] = []
        if current is not None:
            stages[current].append(i)
    build, final = stages[0], stages[len(stages) - 1]

    def values(stage, name):
        return [i["value"] for i in stage if i["instruction"] == name]

    check(froms[0]["value"].startswith("rust:") and " AS build" in froms[0]["value"], "build stage FROM rust:… AS build")
    check(any("cargo build --release --locked" in v for v in values(build, "RUN")), "build uses --locked")
    cargo = Path("Cargo.toml").read_text()
    rust_version = re.search(r'^rust-version = "([^"]+)"', cargo, re.M).group(1)
    check(f"RUST_VERSION={rust_version}" in df.content, f"RUST_VERSION is the workspace's rust-version {rust_version}")
    check(froms[-1]["value"].split()[0] in ("debian:bookworm-slim", "gcr.io/distroless/cc-debian12"), "small runtime base image")
    user = values(final, "USER")
    check(len(user) == 1 and user[0].split(":")[0] not in ("0", "root"), "runtime runs as a non-root user")
    env = {}
    for v in values(final, "ENV"):
        for k, val in re.findall(r'(\w+)=("[^"]*"|\S+)', v):
            env[k] = val.strip('"')
    check(env.get("HEARTH_LISTEN") == "0.0.0.0:5052", "ENV HEARTH_LISTEN=0.0.0.0:5052")
    check(env.get("HEARTH_DATA_DIR") == "/data", "ENV HEARTH_DATA_DIR=/data")
    check(any("/data" in v for v in values(final, "VOLUME")), "VOLUME /data")
    check(values(final, "EXPOSE") == ["5052"], "EXPOSE 5052")
    health = values(final, "HEALTHCHECK")
    check(len(health) == 1 and '"hearth", "health"' in health[0], "HEALTHCHECK runs `hearth health` (no curl needed)")
    entry = values(final, "ENTRYPOINT")
    check(entry and json.loads(entry[0]) == ["hearth"], "ENTRYPOINT hearth")
    copied = [v for v in values(final, "COPY") if v.startswith("--from=build")]
    check(len(copied) == 1, "runtime copies only the binary from the build stage")
    return env


def dockerignore():
    patterns = [p.strip() for p in Path(".dockerignore").read_text().splitlines() if p.strip() and not p.startswith("#")]

    def ignored(path):
        return any(fnmatch.fnmatch(path, p.rstrip("/")) or fnmatch.fnmatch(path, p.rstrip("/") + "/*") or
                   path.startswith(p.rstrip("/") + "/") for p in patterns)

    check(ignored("target/debug/hearth") and ignored(".git/HEAD"), ".dockerignore leaves out target/ and .git/")
    needed = ["Cargo.toml", "Cargo.lock", "crates/hearth/build.rs", "crates/hearth/src/main.rs",
              "crates/registry/migrations", "crates/catalog/Cargo.toml"]
    check(not any(ignored(p) for p in needed), ".dockerignore keeps what the build needs")
    members = re.findall(r'"(crates/[^"]+)"', Path("Cargo.toml").read_text())
    check(all(not ignored(m) and Path(m).is_dir() for m in members), "every workspace member is in the build context")


def compose():
    doc = yaml.safe_load(Path("compose.yaml").read_text())
    services = doc.get("services", {})
    check({"hearth", "llama"} <= services.keys(), "compose: hearth and llama services")
    h = services.get("hearth", {})
    check(h.get("build") == ".", "compose: hearth built from this Dockerfile")
    check("5052:5052" in h.get("ports", []), "compose: port 5052 published")
    check(any(str(v).endswith(":/data") for v in h.get("volumes", [])), "compose: a volume on /data")
    check("HEARTH_ADMIN_TOKEN" in h.get("environment", {}), "compose: admin token from the environment")
    llama = services.get("llama", {})
    check(str(llama.get("image", "")).startswith("ghcr.io/ggml-org/llama.cpp:"), "compose: llama.cpp server image")
    cmd = llama.get("command", [])
    check("--host" in cmd and "0.0.0.0" in cmd and "8080" in cmd, "compose: llama listens on 0.0.0.0:8080")
    check("http://llama:8080/v1" in Path("compose.yaml").read_text(), "compose: the endpoint to register is named")
    return doc


def setting_names():
    known = set()
    for p in Path("crates").rglob("*.rs"):
        known |= set(re.findall(r'"(HEARTH_[A-Z_]+)"', p.read_text()))
    files = ["Dockerfile", "compose.yaml", "deploy/systemd/hearth.service", "deploy/systemd/hearth.env",
             *map(str, Path("deploy/helm/hearth").rglob("*.yaml")), "docs/install.md"]
    used = set()
    for f in files:
        if Path(f).exists():
            used |= set(re.findall(r"\b(HEARTH_[A-Z_]*[A-Z])\b", Path(f).read_text()))
    unknown = sorted(used - known)
    check(not unknown, f"every HEARTH_* name in the install files is read by Hearth {unknown or ''}")


def main():
    dockerfile()
    dockerignore()
    compose()
    setting_names()
    if failures:
        print(f"{len(failures)} container check(s) failed", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
