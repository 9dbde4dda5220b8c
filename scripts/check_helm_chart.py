#!/usr/bin/env python3
"""Render-checks deploy/helm/hearth without helm (not installable from this project's
registries): renders the chart's templates with a small interpreter of the Go-template
subset the chart uses, for several sets of values, and checks the Kubernetes objects with
PyYAML. Anything outside that subset is an error, so the chart cannot quietly grow past
what is checked. This is not `helm lint`: it does not know Kubernetes' schemas or helm's
full template language; docs/install.md says what it covers.

Usage: check_helm_chart.py CHART_DIR"""
import base64
import copy
import json
import re
import sys
from pathlib import Path

import yaml


class TemplateError(Exception):
    pass


# ---- the template language subset -------------------------------------------------------

ACTION = re.compile(r"\{\{(-?)\s*(.*?)\s*(-?)\}\}", re.S)
TOKEN = re.compile(r'\s*(?:(\()|(\))|("(?:[^"\\]|\\.)*")|(\|)|(:=)|(,)|([^\s()|,]+))')


def lex(src):
    """Text and actions, with {{- and -}} trimming applied."""
    out, pos, trim_next = [], 0, False
    for m in ACTION.finditer(src):
        text = src[pos:m.start()]
        if trim_next:
            text = text.lstrip()
        if m.group(1):
            text = text.rstrip()
        out.append(("text", text))
        out.append(("action", m.group(2)))
        trim_next, pos = bool(m.group(3)), m.end()
    text = src[pos:]
    out.append(("text", text.lstrip() if trim_next else text))
    return out


def tokens(expr):
    toks, pos = [], 0
    expr = expr.strip()
    while pos < len(expr):
        m = TOKEN.match(expr, pos)
        if not m or m.end() == pos:
            raise TemplateError(f"cannot read {expr!r}")
        toks.append(next(g for g in m.groups() if g is not None))
        pos = m.end()
    return toks


def parse_pipeline(toks):
    cmds = [parse_command(toks)]
    while toks and toks[0] == "|":
        toks.pop(0)
        cmds.append(parse_command(toks))
    return ("pipe", cmds)


def parse_command(toks):
    args = []
    while toks and toks[0] not in ("|", ")"):
        args.append(parse_term(toks))
    if not args:
        raise TemplateError("empty command")
    return args


def parse_term(toks):
    t = toks.pop(0)
    if t == "(":
        p = parse_pipeline(toks)
        if not toks or toks.pop(0) != ")":
            raise TemplateError("unbalanced parenthesis")
        return p
    if t.startswith('"'):
        return ("str", json.loads(t))
    if re.fullmatch(r"-?\d+", t):
        return ("num", int(t))
    if t.startswith(".") or t.startswith("$"):
        return ("path", t)
    if t in FUNCS:
        return ("func", t)
    raise TemplateError(f"unknown function or term {t!r}")


def parse(items, i=0, stop=("end",), nested=False):
    """Nodes until one of `stop`; returns (nodes, index of the stopper, stopper)."""
    nodes = []
    while i < len(items):
        kind, body = items[i]
        if kind == "text":
            nodes.append(("text", body))
            i += 1
            continue
        word = body.split(None, 1)[0] if body else ""
        rest = body[len(word):].strip()
        if nested and word in stop:
            return nodes, i, word
        if word == "if":
            then, i, how = parse(items, i + 1, ("else", "end"), True)
            other = []
            if how == "else":
                other, i, _ = parse(items, i + 1, ("end",), True)
            nodes.append(("if", parse_pipeline(tokens(rest)), then, other))
            i += 1
        elif word == "range":
            m = re.fullmatch(r"(\$\w+)\s*,\s*(\$\w+)\s*:=\s*(.+)", rest)
            if not m:
                raise TemplateError(f"only `range $k, $v := ...` is supported: {body!r}")
            inner, i, _ = parse(items, i + 1, ("end",), True)
            nodes.append(("range", m.group(1), m.group(2), parse_pipeline(tokens(m.group(3))), inner))
            i += 1
        elif word == "define":
            inner, i, _ = parse(items, i + 1, ("end",), True)
            DEFINES[json.loads(rest)] = inner
            i += 1
        elif word in ("else", "end", "with", "template", "block", "/*"):
            raise TemplateError(f"unsupported or stray {word!r}")
        else:
            nodes.append(("out", parse_pipeline(tokens(body))))
            i += 1
    if nested:
        raise TemplateError(f"missing {{{{ end }}}} (expected one of {stop})")
    return nodes, i, None


def truthy(v):
    return v not in (None, False, 0, "", [], {})


def quote(v):
    return json.dumps("" if v is None else (v if isinstance(v, str) else str(v)))


def to_yaml(v):
    return yaml.safe_dump(v, default_flow_style=False, sort_keys=True).rstrip("\n")


def required(msg, v):
    if not truthy(v):
        raise TemplateError(f"required: {msg}")
    return v


def include(name, ctx):
    if name not in DEFINES:
        raise TemplateError(f"no template {name!r}")
    return run(DEFINES[name], ctx, {})


def printf(fmt, *args):
    return fmt % args


FUNCS = {
    "quote": quote,
    "toYaml": to_yaml,
    "nindent": lambda n, s: "\n" + indent(n, s),
    "indent": lambda n, s: indent(n, s),
    "default": lambda d, v: v if truthy(v) else d,
    "b64enc": lambda s: base64.b64encode(str(s).encode()).decode(),
    "trunc": lambda n, s: s[:n],
    "trimSuffix": lambda suf, s: s[: -len(suf)] if suf and s.endswith(suf) else s,
    "required": required,
    "include": None,  # needs the context; handled in call()
    "printf": printf,
    "not": lambda v: not truthy(v),
    "and": lambda *vs: next((v for v in vs if not truthy(v)), vs[-1]),
    "or": lambda *vs: next((v for v in vs if truthy(v)), vs[-1]),
}


def indent(n, s):
    return "\n".join((" " * n + line) if line else line for line in str(s).split("\n"))


DEFINES = {}


def lookup(path, ctx, local):
    if path == ".":
        return ctx
    if path.startswith("$"):
        name, _, rest = path.partition(".")
        if name not in local:
            raise TemplateError(f"unknown variable {name}")
        v, parts = local[name], [p for p in rest.split(".") if p]
    else:
        v, parts = ctx, path[1:].split(".")
    for p in parts:
        if not isinstance(v, dict):
            raise TemplateError(f"{path}: {p} of a non-map")
        v = v.get(p)
    return v


def evaluate(node, ctx, local):
    kind = node[0]
    if kind == "pipe":
        value, first = None, True
        for cmd in node[1]:
            value = call(cmd, ctx, local, None if first else (value,))
            first = False
        return value
    if kind in ("str", "num"):
        return node[1]
    if kind == "path":
        return lookup(node[1], ctx, local)
    raise TemplateError(f"a function name needs arguments: {node!r}")


def call(cmd, ctx, local, piped):
    head = cmd[0]
    if head[0] != "func":
        if len(cmd) > 1 or piped:
            raise TemplateError(f"not a function: {head!r}")
        return evaluate(head, ctx, local)
    args = [evaluate(a, ctx, local) for a in cmd[1:]] + list(piped or ())
    if head[1] == "include":
        return include(*args)
    try:
        return FUNCS[head[1]](*args)
    except TypeError as e:
        raise TemplateError(f"{head[1]}: {e}")


def run(nodes, ctx, local):
    out = []
    for node in nodes:
        kind = node[0]
        if kind == "text":
            out.append(node[1])
        elif kind == "out":
            v = evaluate(node[1], ctx, local)
            out.append("" if v is None else (str(v).lower() if isinstance(v, bool) else str(v)))
        elif kind == "if":
            out.append(run(node[2] if truthy(evaluate(node[1], ctx, local)) else node[3], ctx, local))
        elif kind == "range":
            items = evaluate(node[3], ctx, local) or {}
            pairs = sorted(items.items()) if isinstance(items, dict) else list(enumerate(items))
            for k, v in pairs:
                out.append(run(node[4], ctx, {**local, node[1]: k, node[2]: v}))
    return "".join(out)


def render(chart, values):
    DEFINES.clear()
    meta = yaml.safe_load((chart / "Chart.yaml").read_text())
    ctx = {
        "Values": values,
        "Release": {"Name": "rel", "Namespace": "default", "Service": "Helm"},
        "Chart": {"Name": meta["name"], "Version": meta["version"], "AppVersion": meta["appVersion"]},
    }
    templates = sorted((chart / "templates").iterdir())
    for t in templates:
        if t.name.startswith("_"):
            parse(lex(t.read_text()))
    out = {}
    for t in templates:
        if not t.name.startswith("_"):
            nodes, _, stray = parse(lex(t.read_text()))
            if stray:
                raise TemplateError(f"{t.name}: stray {stray}")
            out[t.name] = run(nodes, ctx, {})
    return out


# ---- the checks -------------------------------------------------------------------------

def merge(base, over):
    out = copy.deepcopy(base)
    for k, v in over.items():
        out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def objects(rendered):
    objs = []
    for name, text in rendered.items():
        if name.endswith(".txt"):
            continue
        for doc in yaml.safe_load_all(text):
            if doc is not None:
                objs.append(doc)
    return objs


def check(cond, what):
    if not cond:
        raise AssertionError(what)


def check_objects(objs, values):
    by_kind = {}
    for o in objs:
        for key in ("apiVersion", "kind", "metadata"):
            check(key in o, f"object without {key}: {o}")
        check(re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", o["metadata"]["name"]) and len(o["metadata"]["name"]) <= 63,
              f"bad name {o['metadata']['name']!r}")
        by_kind.setdefault(o["kind"], []).append(o)
    (dep,) = by_kind["Deployment"]
    (svc,) = by_kind["Service"]
    pod = dep["spec"]["template"]
    spec = pod["spec"]
    (c,) = spec["containers"]
    check(spec["securityContext"]["runAsNonRoot"] is True, "pod runs as non-root")
    check(c["securityContext"]["allowPrivilegeEscalation"] is False, "no privilege escalation")
    check(c["securityContext"]["readOnlyRootFilesystem"] is True, "read-only root")
    check(c["resources"]["requests"] and c["resources"]["limits"], "resources set")
    check(dep["spec"]["selector"]["matchLabels"].items() <= pod["metadata"]["labels"].items(), "selector matches pod")
    check(svc["spec"]["selector"].items() <= pod["metadata"]["labels"].items(), "service selects the pod")
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    check(ports.get("http") == 5052, "container port http 5052")
    check(svc["spec"]["ports"][0]["targetPort"] in ports, "service targets a named container port")
    tls = bool(values["tls"]["secretName"])
    for probe, path in (("livenessProbe", "/monitoring/healthz"), ("readinessProbe", "/monitoring/ready")):
        get = c[probe]["httpGet"]
        check(get["path"] == path and get["port"] in ports, f"{probe} on {path}")
        check(get.get("scheme", "HTTP") == ("HTTPS" if tls else "HTTP"), f"{probe} scheme")
    env = {e["name"]: e for e in c["env"]}
    check(len(env) == len(c["env"]), "environment names are unique")
    check(env["HEARTH_LISTEN"]["value"] == "0.0.0.0:5052", "listens on all interfaces")
    secrets = {s["metadata"]["name"]: s for s in by_kind.get("Secret", [])}
    for e in c["env"]:
        ref = e.get("valueFrom", {}).get("secretKeyRef")
        if ref:
            if values["existingSecret"]:
                check(ref["name"] == values["existingSecret"], f"{e['name']} from the existing secret")
            else:
                check(ref["key"] in secrets[ref["name"]]["data"], f"{e['name']}: key {ref['key']} in the secret")
    for s in secrets.values():
        for k, v in s["data"].items():
            base64.b64decode(v, validate=True)
    claims = {p["metadata"]["name"] for p in by_kind.get("PersistentVolumeClaim", [])}
    mounts = {m["name"] for m in c["volumeMounts"]}
    volumes = {v["name"]: v for v in spec["volumes"]}
    check(mounts <= volumes.keys(), "every mount has a volume")
    for v in volumes.values():
        if "persistentVolumeClaim" in v:
            check(v["persistentVolumeClaim"]["claimName"] in claims, "claim exists")
    sqlite = not values["databaseUrl"]
    check(bool(claims) == (sqlite and values["persistence"]["enabled"]), "a PVC exactly for SQLite")
    check(("HEARTH_DATABASE_URL" in env) == (not sqlite), "HEARTH_DATABASE_URL exactly with databaseUrl")
    if sqlite:
        check(dep["spec"]["strategy"]["type"] == "Recreate", "SQLite: Recreate, never two pods")
    check(("HEARTH_TLS_CERT" in env) == tls and ("tls" in volumes) == tls, "TLS files exactly with tls.secretName")
    for name, value in values["env"].items():
        check(env[name]["value"] == str(value), f"extra env {name}")
    return by_kind


def main():
    chart = Path(sys.argv[1])
    meta = yaml.safe_load((chart / "Chart.yaml").read_text())
    check(meta["apiVersion"] == "v2" and meta["name"] == chart.name, "Chart.yaml: apiVersion v2, name is the directory")
    check(re.fullmatch(r"\d+\.\d+\.\d+", meta["version"]), "Chart.yaml: semver version")
    cargo = (chart.parents[2] / "Cargo.toml").read_text()
    app = re.search(r'^version = "([^"]+)"', cargo, re.M).group(1)
    check(meta["appVersion"] == app, f"Chart.yaml appVersion {meta['appVersion']} is the workspace version {app}")
    defaults = yaml.safe_load((chart / "values.yaml").read_text())
    secrets = {"adminToken": "a" * 24, "secretKey": "0" * 64}
    scenarios = {
        "sqlite": secrets,
        "postgres": {**secrets, "databaseUrl": "postgres://hearth:pw@db/hearth"},
        "existing-secret, TLS, GitLab, extra env": {
            "existingSecret": "hearth-secrets", "tls": {"secretName": "hearth-tls"},
            "gitlabUrl": "https://gitlab.example.com", "env": {"HEARTH_MAX_CONNECTIONS": "8192"},
            "nodeSelector": {"pool": "cpu"},
        },
        "no persistence": {**secrets, "persistence": {"enabled": False}},
    }
    for name, over in scenarios.items():
        values = merge(defaults, over)
        by_kind = check_objects(objects(render(chart, values)), values)
        kinds = ", ".join(f"{k} x{len(v)}" for k, v in sorted(by_kind.items()))
        print(f"helm chart [{name}]: {kinds}: ok")
    try:
        render(chart, defaults)
    except TemplateError as e:
        check("adminToken" in str(e), f"missing token names the value: {e}")
        print("helm chart [no adminToken]: refused: ok")
    else:
        raise AssertionError("the chart rendered without an admin token")


if __name__ == "__main__":
    try:
        main()
    except (TemplateError, AssertionError, KeyError) as e:
        print(f"helm chart check failed: {type(e).__name__}: {e}", file=sys.stderr)
        sys.exit(1)
