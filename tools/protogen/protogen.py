#!/usr/bin/env python3
"""Generate crates/api/src/protobuf/schema.rs, the table the protobuf decoder walks.

For every protobuf message of the API groups we serve (and every message they reach) the
table lists its fields: tag number, JSON name, wire kind, message type and two facts about the
Go field behind it. Three inputs, joined per message by package and name:

* the k8s-pb crate (prost structs generated from the upstream .proto files): tag numbers,
  wire kinds (string, bytes, bool, int32, int64, double, message, map), repeated, message types;
* the k8s-openapi crate (serde structs): the JSON name of each field, matched to the k8s-pb
  field by its Rust name (case and underscores ignored: `pod_i_ps` ~ `pod_ips`), and the
  (apiVersion, kind) of each top-level type;
* the Go sources of k8s.io/api and k8s.io/apimachinery (struct tags): which fields are pointers
  and which carry `omitempty`, and which are `json:",inline"`. Go always writes a value-typed
  scalar to the wire, even when it is zero, so the decoder needs to know which zero values the
  Go API server would have dropped (`omitempty` on a non-pointer field) and which it would have
  kept (a pointer, such as `replicas: 0` or `gracePeriodSeconds: 0`).

Usage (from the repository root; the crates are found in $CARGO_HOME/registry/src after
`cargo fetch`, the Go sources are checkouts of the tags matching k8s-pb's Kubernetes version):

    git clone -q --depth 1 -b v0.35.7 https://github.com/kubernetes/api /tmp/k8s-api
    git clone -q --depth 1 -b v0.35.7 https://github.com/kubernetes/apimachinery /tmp/k8s-apimachinery
    python3 tools/protogen/protogen.py --go-api /tmp/k8s-api \
        --go-apimachinery /tmp/k8s-apimachinery > crates/api/src/protobuf/schema.rs

It prints what it could not join to stderr and fails if a field has no JSON name.
"""

import argparse
import glob
import os
import re
import sys

K8S_PB = "k8s-pb-0.9.0"
K8S_OPENAPI = "k8s-openapi-0.29.0"
# k8s-pb 0.9 is generated from Kubernetes 1.35; take JSON names from the same version.
OPENAPI_VERSION = "v1_35"

# Proto packages whose every message is included (the groups the API server serves plus the
# subresource and option types kubectl sends); messages they reach are added.
ROOT_PACKAGES = [
    "k8s.io.api.core.v1",
    "k8s.io.api.apps.v1",
    "k8s.io.api.batch.v1",
    "k8s.io.api.autoscaling.v1",
    "k8s.io.api.autoscaling.v2",
    "k8s.io.api.coordination.v1",
    "k8s.io.api.discovery.v1",
    "k8s.io.api.events.v1",
    "k8s.io.api.networking.v1",
    "k8s.io.api.policy.v1",
    "k8s.io.api.rbac.v1",
    "k8s.io.api.scheduling.v1",
    "k8s.io.api.storage.v1",
    "k8s.io.api.authentication.v1",
    "k8s.io.api.authorization.v1",
    "k8s.io.apimachinery.pkg.apis.meta.v1",
]

META = "k8s.io.apimachinery.pkg.apis.meta.v1"
SPECIAL = {
    META + ".Time": "Time",
    META + ".MicroTime": "MicroTime",
    META + ".Duration": "Duration",
    META + ".FieldsV1": "RawJson",
    "k8s.io.apimachinery.pkg.runtime.RawExtension": "RawExtension",
    "k8s.io.apimachinery.pkg.util.intstr.IntOrString": "IntOrString",
    "k8s.io.apimachinery.pkg.api.resource.Quantity": "Quantity",
}

INTORSTRING = ("k8s.io.apimachinery.pkg.util.intstr.IntOrString",)

SCALARS = {"string": "Str", "bool": "Bool", "int32": "I32", "int64": "I64", "double": "F64"}


def norm(rust_name):
    """Rust field name to a join key: `r#type` ~ `type_`, `pod_i_ps` ~ `pod_ips`."""
    return rust_name.removeprefix("r#").replace("_", "").lower()


def die(msg):
    sys.stderr.write(f"protogen: {msg}\n")
    sys.exit(1)


def find_crate(name):
    home = os.environ.get("CARGO_HOME", os.path.expanduser("~/.cargo"))
    hits = sorted(glob.glob(os.path.join(home, "registry", "src", "*", name)))
    if not hits:
        die(f"{name} not found under {home}/registry/src (run `cargo fetch` in the workspace)")
    return hits[0]


# ---------------------------------------------------------------------------------------------
# k8s-pb


def pb_package(modpath):
    return "k8s.io." + ".".join(modpath)


def resolve_pb_type(modpath, path):
    parts = path.split("::")
    base = list(modpath)
    while parts and parts[0] == "super":
        base.pop()
        parts.pop(0)
    if len(parts) == 1:
        return pb_package(modpath) + "." + parts[0]
    return pb_package(base + parts[:-1]) + "." + parts[-1]


WRAPPERS = [
    "::core::option::Option<",
    "::prost::alloc::vec::Vec<",
    "::prost::alloc::boxed::Box<",
    "::prost::alloc::collections::BTreeMap<::prost::alloc::string::String,",
]


def message_path(ty):
    ty = ty.replace(" ", "").rstrip(",")
    changed = True
    while changed:
        changed = False
        for w in WRAPPERS:
            if ty.startswith(w):
                ty = ty[len(w):].removesuffix(">")
                changed = True
    return ty.rstrip(",")


def parse_pb(root):
    """{full name: [(tag, rust name, kind, repeated, message full name or None)]}"""
    messages = {}
    for path in glob.glob(os.path.join(root, "src", "**", "mod.rs"), recursive=True):
        rel = os.path.relpath(os.path.dirname(path), os.path.join(root, "src"))
        modpath = rel.split(os.sep)
        lines = open(path, encoding="utf-8").read().split("\n")
        current = None
        i = 0
        while i < len(lines):
            line = lines[i].strip()
            m = re.match(r"pub struct (\w+) \{$", line)
            if m:
                current = pb_package(modpath) + "." + m.group(1)
                messages[current] = []
            elif line == "}":
                current = None
            elif current and line.startswith("#[prost("):
                attr = line[len("#[prost("):-2]
                i += 1
                decl = lines[i].strip()
                while not decl.endswith(",") or decl.count("<") != decl.count(">"):
                    i += 1
                    decl = decl + lines[i].strip()
                m = re.match(r"pub ((?:r#)?\w+):\s*(.*)$", decl)
                if not m:
                    die(f"cannot parse field in {current}: {decl}")
                rust, ty = m.group(1), m.group(2)
                tag = int(re.search(r'tag = "(\d+)"', attr).group(1))
                repeated = ", repeated" in attr
                mm = re.match(r'btree_map = "string, (\w+)"', attr)
                if mm:
                    value = mm.group(1)
                    if value == "message":
                        kind, msg = "MapMsg", resolve_pb_type(modpath, message_path(ty))
                    elif value == "string":
                        kind, msg = "MapStr", None
                    elif value == "bytes":
                        kind, msg = "MapBytes", None
                    else:
                        die(f"map value {value} in {current}")
                else:
                    first = attr.split(",")[0].split("=")[0].strip()
                    if first == "message":
                        kind, msg = "Msg", resolve_pb_type(modpath, message_path(ty))
                    elif first == "bytes":
                        kind, msg = "Bytes", None
                    elif first in SCALARS:
                        kind, msg = SCALARS[first], None
                    else:
                        die(f"unsupported prost kind {attr} in {current}")
                messages[current].append((tag, rust, kind, repeated, msg))
            i += 1
    return messages


# ---------------------------------------------------------------------------------------------
# k8s-openapi


def openapi_package(definition):
    pkg, _, name = definition.rpartition(".")
    if not pkg.startswith("io.k8s."):
        return None, None
    return "k8s.io." + pkg[len("io.k8s."):], name


def parse_openapi(root):
    """({(package, lowercased name): {norm rust name: json name}}, [(apiVersion, kind, (package, lowercased name))])"""
    types = {}
    kinds = []
    for path in glob.glob(os.path.join(root, "src", OPENAPI_VERSION, "**", "*.rs"), recursive=True):
        text = open(path, encoding="utf-8").read()
        m = re.match(r"// Generated from definition (\S+)", text)
        if not m:
            continue
        pkg, name = openapi_package(m.group(1))
        if pkg is None:
            continue
        key = (pkg, name.lower())
        fields = {}
        for json, rust in re.findall(r'"([^"]+)" => Field::Key_(\w+),', text):
            fields[norm(rust)] = json
        types[key] = fields
        rm = re.search(
            r'impl crate::Resource for \w+ \{\s*const API_VERSION: &\'static str = "([^"]+)";'
            r'.*?const KIND: &\'static str = "([^"]+)";',
            text,
            re.S,
        )
        if rm:
            kinds.append((rm.group(1), rm.group(2), key))
    return types, kinds


# ---------------------------------------------------------------------------------------------
# Go sources


GO_FIELD = re.compile(r"^\s*(?:(\w+)\s+)?(\S+)\s+`([^`]*)`")


def parse_go(dirs):
    """({package: {struct: {tag: (json name, pointer, omitempty, inline)}}}, {package: {slice types}})

    Type names are lowercased: prost renames `HTTPGetAction` to `HttpGetAction`.
    """
    structs = {}
    slices = {}
    for base, prefix in dirs:
        for path in glob.glob(os.path.join(base, "**", "*.go"), recursive=True):
            fname = os.path.basename(path)
            if fname.endswith("_test.go") or fname.startswith(("zz_generated", "generated.")):
                continue
            rel = os.path.relpath(os.path.dirname(path), base)
            pkg = prefix + "." + rel.replace(os.sep, ".")
            lines = open(path, encoding="utf-8").read().split("\n")
            current = None
            for line in lines:
                m = re.match(r"^type (\w+) struct \{", line)
                if m:
                    current = structs.setdefault(pkg, {}).setdefault(m.group(1).lower(), {})
                    continue
                m = re.match(r"^type (\w+) \[\](\w+)$", line)
                if m:
                    slices.setdefault(pkg, set()).add(m.group(1).lower())
                    continue
                if line.startswith("}"):
                    current = None
                    continue
                if current is None:
                    continue
                m = GO_FIELD.match(line)
                if not m:
                    continue
                tags = m.group(3)
                pm = re.search(r'protobuf:"[a-z0-9]+,(\d+),', tags)
                if not pm:
                    continue
                jm = re.search(r'json:"([^"]*)"', tags)
                opts = jm.group(1).split(",") if jm else [""]
                current[int(pm.group(1))] = (
                    opts[0],
                    m.group(2).startswith("*"),
                    "omitempty" in opts[1:] or "omitzero" in opts[1:],
                    "inline" in opts[1:],
                )
    return structs, slices


# ---------------------------------------------------------------------------------------------


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--k8s-pb", default=None)
    ap.add_argument("--k8s-openapi", default=None)
    ap.add_argument("--go-api", required=True, help="checkout of k8s.io/api")
    ap.add_argument("--go-apimachinery", required=True, help="checkout of k8s.io/apimachinery")
    args = ap.parse_args()

    pb = parse_pb(args.k8s_pb or find_crate(K8S_PB))
    openapi, kinds = parse_openapi(args.k8s_openapi or find_crate(K8S_OPENAPI))
    go, go_slices = parse_go(
        [
            (args.go_api, "k8s.io.api"),
            (os.path.join(args.go_apimachinery, "pkg"), "k8s.io.apimachinery.pkg"),
        ]
    )

    # The closure of the root packages.
    wanted = set()
    todo = [n for n in pb if n.rpartition(".")[0] in ROOT_PACKAGES]
    while todo:
        name = todo.pop()
        if name in wanted:
            continue
        if name not in pb:
            die(f"message {name} is referenced but not defined")
        wanted.add(name)
        if name in SPECIAL:
            continue
        for (_, _, _, _, msg) in pb[name]:
            if msg:
                todo.append(msg)

    order = sorted(wanted)
    index = {n: i for i, n in enumerate(order)}
    warnings = []
    out_msgs = []
    for name in order:
        pkg, _, short = name.rpartition(".")
        special = SPECIAL.get(name)
        go_fields = go.get(pkg, {}).get(short.lower())
        oa_fields = openapi.get((pkg, short.lower()))
        fields = []
        if special is None and short.lower() in go_slices.get(pkg, set()):
            shape = [(t, r, k, rep) for (t, r, k, rep, _) in pb[name]]
            if shape != [(1, "items", "Str", True)]:
                die(f"{name} is a Go slice type but its message is not `repeated string items = 1`")
            special = "Items"
        # The decoder knows the layout of the special messages (they are few and fixed).
        plain = special in (None, "Items")
        for (tag, rust, kind, repeated, msg) in sorted(pb[name]) if plain else []:
            gf = go_fields.get(tag) if go_fields else None
            json = None
            inline = False
            pointer = True  # unknown: keep zero values, as proto2 presence says
            omitempty = False
            if gf:
                json, pointer, omitempty, inline = gf
            if oa_fields is not None and not inline:
                oa_json = oa_fields.get(norm(rust))
                if json is None:
                    json = oa_json
                elif oa_json is not None and oa_json != json:
                    die(f"{name}.{rust}: Go says {json!r}, k8s-openapi says {oa_json!r}")
                elif oa_json is None and special is None:
                    warnings.append(f"{name}.{rust} ({json}) is not in k8s-openapi {OPENAPI_VERSION}")
            if json is None and special == "Items":
                json = "items"
            if json is None and not inline:
                # No source names it (a Go type defined as another, like `type List metav1.List`):
                # the .proto field name, which is the JSON name, came out of prost snake-cased.
                head, *rest = rust.removeprefix("r#").split("_")
                json = head + "".join(p[:1].upper() + p[1:] for p in rest)
                warnings.append(f"{name}.{rust}: no JSON name in the sources, guessed {json!r}")
            if gf is None and special is None:
                warnings.append(f"{name}.{rust}: no Go field for tag {tag}, zero values kept")
            flags = []
            if repeated:
                flags.append("REPEATED")
            zero_matters = kind in SCALARS.values() or kind == "Bytes" or msg in INTORSTRING
            if omitempty and not pointer and not repeated and zero_matters:
                flags.append("OMIT_ZERO")
            if inline:
                flags.append("INLINE")
                if kind != "Msg":
                    die(f"{name}.{rust}: inline field is not a message")
                json = ""
            kind_expr = f"{kind}({index[msg]})" if msg else kind
            fields.append((tag, json, kind_expr, "|".join(flags) or "0"))
        out_msgs.append((name, special or "None", fields))

    kind_rows = []
    by_key = {}
    for name in order:
        pkg, _, short = name.rpartition(".")
        by_key[(pkg, short.lower())] = name
    for (api_version, kind, key) in kinds:
        name = by_key.get(key)
        if name is None:
            continue
        kind_rows.append((api_version, kind, index[name]))
        list_name = name + "List"
        if list_name in index:
            kind_rows.append((api_version, kind + "List", index[list_name]))
    kind_rows = sorted(set(kind_rows))

    for w in warnings:
        sys.stderr.write(f"protogen: note: {w}\n")

    w = sys.stdout.write
    w("// @generated by tools/protogen/protogen.py; do not edit by hand.\n")
    w("//\n")
    w(f"// Inputs: {K8S_PB} (tags, wire kinds), {K8S_OPENAPI} {OPENAPI_VERSION} (JSON names, kinds), Go\n")
    w("// sources of k8s.io/api and k8s.io/apimachinery v0.35.7 (pointer, omitempty, inline). To\n")
    w("// regenerate, see the docstring of tools/protogen/protogen.py.\n")
    w("\n")
    w("use super::table::Kind::*;\n")
    w("use super::table::Special;\n")
    w("use super::table::{Field, Message, INLINE, OMIT_ZERO, REPEATED};\n")
    w("\n")
    w("/// Every message, sorted by full protobuf name; `Msg(n)`, `MapMsg(n)` index this array.\n")
    w(f"pub(super) static MESSAGES: [Message; {len(out_msgs)}] = [\n")
    for i, (name, special, fields) in enumerate(out_msgs):
        w(f"    // {i}\n")
        w(f'    Message {{ name: "{name}", special: Special::{special}, fields: &[\n')
        for (tag, json, kind_expr, flags) in fields:
            w(f'        Field {{ tag: {tag}, json: "{json}", kind: {kind_expr}, flags: {flags} }},\n')
        w("    ] },\n")
    w("];\n")
    w("\n")
    w("/// (apiVersion, kind) of the top-level types, sorted, with the index of their message.\n")
    w(f"pub(super) static KINDS: [(&str, &str, u16); {len(kind_rows)}] = [\n")
    for (api_version, kind, i) in kind_rows:
        w(f'    ("{api_version}", "{kind}", {i}),\n')
    w("];\n")
    sys.stderr.write(
        f"protogen: {len(out_msgs)} messages, {sum(len(f) for _, _, f in out_msgs)} fields, "
        f"{len(kind_rows)} kinds, {len(warnings)} notes\n"
    )


if __name__ == "__main__":
    main()
