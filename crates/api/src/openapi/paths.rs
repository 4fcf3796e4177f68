//! The operations of each resource, in the shape kube-apiserver publishes them (paths,
//! operation ids, `x-kubernetes-action`, `x-kubernetes-group-version-kind`, parameters), rendered
//! as OpenAPI 3 or Swagger 2.0 path items.
//!
//! kubectl reads three things from here: the GVK of a path's operations (to find the kind's
//! schema for `explain`), whether the PATCH operation of a GVK takes `fieldValidation` (then it
//! lets the server validate with `?fieldValidation=Strict`), and whether that PATCH accepts
//! `application/strategic-merge-patch+json` (then client-side `apply` computes a strategic merge
//! patch from the schema's patch extensions).

use serde_json::{json, Map, Value};

use super::definitions::{
    API_RESOURCE_LIST, DELETE_OPTIONS, PATCH, STATUS, V2_REF_PREFIX, V3_REF_PREFIX,
};
use super::schemas::Gvk;
use crate::registry::{GroupVersion, ResourceDef};

/// The patch content types the server accepts; kubectl checks for the strategic one.
pub(crate) const PATCH_CONTENT_TYPES: &[&str] = &[
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/strategic-merge-patch+json",
    "application/apply-patch+yaml",
];

const RESPONSE_CONTENT_TYPES: &[&str] = &[
    "application/json",
    "application/yaml",
    "application/vnd.kubernetes.protobuf",
];

const WATCH_CONTENT_TYPES: &[&str] = &[
    "application/json;stream=watch",
    "application/vnd.kubernetes.protobuf;stream=watch",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    List,
    Create,
    DeleteCollection,
    Read,
    Replace,
    Patch,
    Delete,
}

impl Kind {
    fn method(self) -> &'static str {
        match self {
            Kind::List | Kind::Read => "get",
            Kind::Create => "post",
            Kind::Replace => "put",
            Kind::Patch => "patch",
            Kind::Delete | Kind::DeleteCollection => "delete",
        }
    }

    /// `x-kubernetes-action`.
    fn action(self) -> &'static str {
        match self {
            Kind::List => "list",
            Kind::Create => "post",
            Kind::DeleteCollection => "deletecollection",
            Kind::Read => "get",
            Kind::Replace => "put",
            Kind::Patch => "patch",
            Kind::Delete => "delete",
        }
    }

    /// The verb that starts the operation id.
    fn op_verb(self) -> &'static str {
        match self {
            Kind::List => "list",
            Kind::Create => "create",
            Kind::DeleteCollection | Kind::Delete => "delete",
            Kind::Read => "read",
            Kind::Replace => "replace",
            Kind::Patch => "patch",
        }
    }
}

/// A schema an operation refers to: a definition, or an inline schema when the kind has none.
#[derive(Debug, Clone)]
enum Body {
    Def(String),
    Object,
}

/// One operation, independent of the OpenAPI dialect.
#[derive(Debug, Clone)]
struct Operation {
    path: String,
    kind: Kind,
    id: String,
    description: String,
    gvk: Gvk,
    params: Vec<Param>,
    request: Option<Body>,
    response: Body,
}

#[derive(Debug, Clone, Copy)]
struct Param {
    name: &'static str,
    location: &'static str,
    ty: &'static str,
    description: &'static str,
}

const fn query(name: &'static str, ty: &'static str, description: &'static str) -> Param {
    Param {
        name,
        location: "query",
        ty,
        description,
    }
}

const NAME: Param = Param {
    name: "name",
    location: "path",
    ty: "string",
    description: "name of the object",
};
const NAMESPACE: Param = Param {
    name: "namespace",
    location: "path",
    ty: "string",
    description: "object name and auth scope, such as for teams and projects",
};
const PRETTY: Param = query("pretty", "string", "If 'true', the output is indented.");
const DRY_RUN: Param = query(
    "dryRun",
    "string",
    "When present (the only valid value is All), the request is validated and admitted but not persisted.",
);
const FIELD_MANAGER: Param = query(
    "fieldManager",
    "string",
    "Name of the actor making the change, recorded in managedFields.",
);
const FIELD_VALIDATION: Param = query(
    "fieldValidation",
    "string",
    "What to do with unknown or duplicate fields in the request body: Ignore, Warn or Strict (reject with 400).",
);
const FORCE: Param = query(
    "force",
    "boolean",
    "Apply requests only: take over fields owned by other managers instead of failing with a conflict.",
);
const LIST_PARAMS: &[Param] = &[
    query(
        "allowWatchBookmarks",
        "boolean",
        "Ask for BOOKMARK events in a watch; the server may send them at any time.",
    ),
    query(
        "continue",
        "string",
        "The continue token of the previous page of a paginated list.",
    ),
    query(
        "fieldSelector",
        "string",
        "Restrict the returned objects by their fields, e.g. metadata.name=web.",
    ),
    query(
        "labelSelector",
        "string",
        "Restrict the returned objects by their labels.",
    ),
    query(
        "limit",
        "integer",
        "The maximum number of objects in one page; a continue token follows when more remain.",
    ),
    query(
        "resourceVersion",
        "string",
        "Which version of the collection to read or to start watching from.",
    ),
    query(
        "resourceVersionMatch",
        "string",
        "How resourceVersion applies to a list: Exact or NotOlderThan.",
    ),
    query(
        "sendInitialEvents",
        "boolean",
        "With watch, start with ADDED events for the current objects, ended by a bookmark annotated k8s.io/initial-events-end.",
    ),
    query(
        "timeoutSeconds",
        "integer",
        "End the request (a watch in particular) after this many seconds.",
    ),
    query(
        "watch",
        "boolean",
        "Stream changes (ADDED, MODIFIED, DELETED) instead of returning a list.",
    ),
];
const DELETE_PARAMS: &[Param] = &[
    DRY_RUN,
    query(
        "gracePeriodSeconds",
        "integer",
        "Seconds before the object is deleted; 0 deletes at once.",
    ),
    query(
        "orphanDependents",
        "boolean",
        "Deprecated: use propagationPolicy. Whether dependents are orphaned.",
    ),
    query(
        "propagationPolicy",
        "string",
        "How dependents are deleted: Orphan, Background or Foreground.",
    ),
];

/// `Apps`, `Core`, `RbacAuthorization`: the group as it appears in operation ids.
fn group_word(group: &str) -> String {
    if group.is_empty() {
        return "Core".to_string();
    }
    let group = group.strip_suffix(".k8s.io").unwrap_or(group);
    group
        .split(['.', '-'])
        .map(capitalize)
        .collect::<Vec<_>>()
        .join("")
}

fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(first) => first.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

fn operation_id(kind: Kind, def: &ResourceDef, sub: Option<&str>, all_namespaces: bool) -> String {
    let collection = if kind == Kind::DeleteCollection {
        "Collection"
    } else {
        ""
    };
    let namespaced = if def.namespaced() && !all_namespaces {
        "Namespaced"
    } else {
        ""
    };
    let sub = sub.map(capitalize).unwrap_or_default();
    let all = if all_namespaces {
        "ForAllNamespaces"
    } else {
        ""
    };
    format!(
        "{}{}{}{collection}{namespaced}{}{sub}{all}",
        kind.op_verb(),
        group_word(&def.gv.group),
        capitalize(&def.gv.version),
        def.kind,
    )
}

fn describe(kind: Kind, k: &str, sub: Option<&str>) -> String {
    match (kind, sub) {
        (Kind::List, _) => format!("list or watch objects of kind {k}"),
        (Kind::Create, None) => format!("create a {k}"),
        (Kind::Create, Some(s)) => format!("create {s} of a {k}"),
        (Kind::DeleteCollection, _) => format!("delete a collection of {k}"),
        (Kind::Read, None) => format!("read the specified {k}"),
        (Kind::Read, Some(s)) => format!("read {s} of the specified {k}"),
        (Kind::Replace, None) => format!("replace the specified {k}"),
        (Kind::Replace, Some(s)) => format!("replace {s} of the specified {k}"),
        (Kind::Patch, None) => format!("partially update the specified {k}"),
        (Kind::Patch, Some(s)) => format!("partially update {s} of the specified {k}"),
        (Kind::Delete, _) => format!("delete a {k}"),
    }
}

fn params_for(kind: Kind) -> Vec<Param> {
    let mut p = vec![PRETTY];
    match kind {
        Kind::List => p.extend_from_slice(LIST_PARAMS),
        Kind::Create | Kind::Replace => p.extend([DRY_RUN, FIELD_MANAGER, FIELD_VALIDATION]),
        Kind::Patch => p.extend([DRY_RUN, FIELD_MANAGER, FIELD_VALIDATION, FORCE]),
        Kind::Delete => p.extend_from_slice(DELETE_PARAMS),
        Kind::DeleteCollection => {
            p.extend(LIST_PARAMS.iter().filter(|q| {
                !matches!(
                    q.name,
                    "watch" | "allowWatchBookmarks" | "sendInitialEvents"
                )
            }));
            p.extend_from_slice(DELETE_PARAMS);
        }
        Kind::Read => {}
    }
    p
}

/// Everything needed to describe the resources of one group-version.
pub(crate) struct Lookup<'a> {
    pub kind_def: &'a dyn Fn(&Gvk) -> Option<String>,
    pub list_def: &'a dyn Fn(&Gvk) -> Option<String>,
}

fn operations(def: &ResourceDef, lookup: &Lookup<'_>) -> Vec<Operation> {
    let gv = &def.gv;
    let g: Gvk = (gv.group.clone(), gv.version.clone(), def.kind.clone());
    let kind_body = (lookup.kind_def)(&g).map_or(Body::Object, Body::Def);
    let list_body = (lookup.list_def)(&g).map_or(Body::Object, Body::Def);
    let prefix = gv.url_prefix();
    let (collection, scope_params) = if def.namespaced() {
        (
            format!("{prefix}/namespaces/{{namespace}}/{}", def.plural),
            vec![NAMESPACE],
        )
    } else {
        (format!("{prefix}/{}", def.plural), vec![])
    };
    let item = format!("{collection}/{{name}}");
    let has = |verb: &str| def.verbs.iter().any(|v| v == verb);
    let mut ops = Vec::new();
    let mut push = |path: &str,
                    kind: Kind,
                    sub: Option<&str>,
                    all: bool,
                    gvk: &Gvk,
                    request: Option<Body>,
                    response: Body| {
        let mut params = if all { vec![] } else { scope_params.clone() };
        if path.contains("{name}") {
            params.insert(0, NAME);
        }
        params.extend(params_for(kind));
        ops.push(Operation {
            path: path.to_string(),
            kind,
            id: operation_id(kind, def, sub, all),
            description: describe(kind, &def.kind, sub),
            gvk: gvk.clone(),
            params,
            request,
            response,
        });
    };
    let status = Body::Def(STATUS.to_string());
    let delete_options = Some(Body::Def(DELETE_OPTIONS.to_string()));
    let patch_body = Some(Body::Def(PATCH.to_string()));
    if has("list") {
        push(
            &collection,
            Kind::List,
            None,
            false,
            &g,
            None,
            list_body.clone(),
        );
    }
    if has("create") {
        push(
            &collection,
            Kind::Create,
            None,
            false,
            &g,
            Some(kind_body.clone()),
            kind_body.clone(),
        );
    }
    if has("deletecollection") {
        let req = delete_options.clone();
        push(
            &collection,
            Kind::DeleteCollection,
            None,
            false,
            &g,
            req,
            status.clone(),
        );
    }
    if has("get") {
        push(&item, Kind::Read, None, false, &g, None, kind_body.clone());
    }
    if has("update") {
        let req = Some(kind_body.clone());
        push(
            &item,
            Kind::Replace,
            None,
            false,
            &g,
            req,
            kind_body.clone(),
        );
    }
    if has("patch") {
        let req = patch_body.clone();
        push(&item, Kind::Patch, None, false, &g, req, kind_body.clone());
    }
    if has("delete") {
        push(&item, Kind::Delete, None, false, &g, delete_options, status);
    }
    if def.namespaced() && has("list") {
        let all = format!("{prefix}/{}", def.plural);
        push(&all, Kind::List, None, true, &g, None, list_body);
    }
    for s in &def.subresources {
        let sg: Gvk = (s.group.clone(), s.version.clone(), s.kind.clone());
        let body = (lookup.kind_def)(&sg).map_or(Body::Object, Body::Def);
        let path = format!("{item}/{}", s.name);
        let sub = Some(s.name.as_str());
        for verb in &s.verbs {
            let (kind, request) = match verb.as_str() {
                "get" => (Kind::Read, None),
                "update" => (Kind::Replace, Some(body.clone())),
                "patch" => (Kind::Patch, patch_body.clone()),
                "create" => (Kind::Create, Some(body.clone())),
                _ => continue,
            };
            push(&path, kind, sub, false, &sg, request, body.clone());
        }
    }
    ops
}

fn gvk_ext(g: &Gvk) -> Value {
    json!({"group": g.0, "version": g.1, "kind": g.2})
}

fn v3_schema(b: &Body) -> Value {
    match b {
        Body::Def(name) => json!({"$ref": format!("{V3_REF_PREFIX}{name}")}),
        Body::Object => json!({"type": "object"}),
    }
}

fn v2_schema(b: &Body) -> Value {
    match b {
        Body::Def(name) => json!({"$ref": format!("{V2_REF_PREFIX}{name}")}),
        Body::Object => json!({"type": "object"}),
    }
}

fn success_codes(kind: Kind) -> &'static [&'static str] {
    match kind {
        Kind::List | Kind::Read | Kind::DeleteCollection => &["200"],
        Kind::Create => &["200", "201", "202"],
        Kind::Replace | Kind::Patch => &["200", "201"],
        Kind::Delete => &["200", "202"],
    }
}

fn status_text(code: &str) -> &'static str {
    match code {
        "201" => "Created",
        "202" => "Accepted",
        _ => "OK",
    }
}

fn render_v3(op: &Operation) -> Value {
    let params: Vec<Value> = op
        .params
        .iter()
        .map(|p| {
            let mut v = json!({
                "name": p.name,
                "in": p.location,
                "description": p.description,
                "schema": {"type": p.ty, "uniqueItems": true},
            });
            if p.location == "path" {
                v["required"] = true.into();
            }
            v
        })
        .collect();
    let mut content_types: Vec<&str> = RESPONSE_CONTENT_TYPES.to_vec();
    if op.kind == Kind::List {
        content_types.extend(WATCH_CONTENT_TYPES);
    }
    let schema = v3_schema(&op.response);
    let content: Map<String, Value> = content_types
        .iter()
        .map(|t| (t.to_string(), json!({"schema": schema})))
        .collect();
    let mut responses = Map::new();
    for code in success_codes(op.kind) {
        responses.insert(
            code.to_string(),
            json!({"description": status_text(code), "content": content}),
        );
    }
    responses.insert("401".into(), json!({"description": "Unauthorized"}));
    let mut v = json!({
        "description": op.description,
        "operationId": op.id,
        "parameters": params,
        "responses": responses,
        "x-kubernetes-action": op.kind.action(),
        "x-kubernetes-group-version-kind": gvk_ext(&op.gvk),
    });
    if let Some(body) = &op.request {
        let schema = v3_schema(body);
        let types: &[&str] = if op.kind == Kind::Patch {
            PATCH_CONTENT_TYPES
        } else {
            &["*/*"]
        };
        let content: Map<String, Value> = types
            .iter()
            .map(|t| (t.to_string(), json!({"schema": schema})))
            .collect();
        v["requestBody"] = json!({"content": content, "required": op.kind != Kind::Delete});
    }
    v
}

fn render_v2(op: &Operation) -> Value {
    let mut params: Vec<Value> = op
        .params
        .iter()
        .map(|p| {
            let mut v = json!({
                "name": p.name,
                "in": p.location,
                "description": p.description,
                "type": p.ty,
                "uniqueItems": true,
            });
            if p.location == "path" {
                v["required"] = true.into();
            }
            v
        })
        .collect();
    if let Some(body) = &op.request {
        params.push(json!({
            "name": "body",
            "in": "body",
            "required": op.kind != Kind::Delete,
            "schema": v2_schema(body),
        }));
    }
    let mut responses = Map::new();
    for code in success_codes(op.kind) {
        responses.insert(
            code.to_string(),
            json!({"description": status_text(code), "schema": v2_schema(&op.response)}),
        );
    }
    responses.insert("401".into(), json!({"description": "Unauthorized"}));
    let mut produces: Vec<&str> = RESPONSE_CONTENT_TYPES.to_vec();
    if op.kind == Kind::List {
        produces.extend(WATCH_CONTENT_TYPES);
    }
    let consumes: &[&str] = if op.kind == Kind::Patch {
        PATCH_CONTENT_TYPES
    } else {
        &["*/*"]
    };
    json!({
        "description": op.description,
        "operationId": op.id,
        "consumes": consumes,
        "produces": produces,
        "schemes": ["https"],
        "parameters": params,
        "responses": responses,
        "x-kubernetes-action": op.kind.action(),
        "x-kubernetes-group-version-kind": gvk_ext(&op.gvk),
    })
}

/// The `getAPIResources` operation at `/api/v1/` or `/apis/<group>/<version>/`.
fn resources_path(gv: &GroupVersion, v3: bool) -> (String, Value) {
    let id = format!(
        "get{}{}APIResources",
        group_word(&gv.group),
        capitalize(&gv.version)
    );
    let op = if v3 {
        let schema = json!({"$ref": format!("{V3_REF_PREFIX}{API_RESOURCE_LIST}")});
        let content: Map<String, Value> = RESPONSE_CONTENT_TYPES
            .iter()
            .map(|t| (t.to_string(), json!({"schema": schema})))
            .collect();
        json!({
            "description": "get available resources",
            "operationId": id,
            "responses": {"200": {"description": "OK", "content": content},
                          "401": {"description": "Unauthorized"}},
        })
    } else {
        json!({
            "description": "get available resources",
            "operationId": id,
            "consumes": RESPONSE_CONTENT_TYPES,
            "produces": RESPONSE_CONTENT_TYPES,
            "schemes": ["https"],
            "responses": {
                "200": {"description": "OK",
                        "schema": {"$ref": format!("{V2_REF_PREFIX}{API_RESOURCE_LIST}")}},
                "401": {"description": "Unauthorized"},
            },
        })
    };
    (format!("{}/", gv.url_prefix()), json!({"get": op}))
}

/// The `paths` object for `defs` (the kinds of one or several group-versions), and the
/// definition names the operations refer to.
pub(crate) fn paths<'d>(
    gvs: &[GroupVersion],
    defs: impl IntoIterator<Item = &'d ResourceDef>,
    lookup: &Lookup<'_>,
    v3: bool,
) -> (Map<String, Value>, Vec<String>) {
    let mut out = Map::new();
    let mut used = vec![
        STATUS.to_string(),
        DELETE_OPTIONS.to_string(),
        PATCH.to_string(),
        API_RESOURCE_LIST.to_string(),
    ];
    for gv in gvs {
        let (path, item) = resources_path(gv, v3);
        out.insert(path, item);
    }
    for def in defs {
        for op in operations(def, lookup) {
            for b in [op.request.as_ref(), Some(&op.response)]
                .into_iter()
                .flatten()
            {
                if let Body::Def(name) = b {
                    used.push(name.clone());
                }
            }
            let rendered = if v3 { render_v3(&op) } else { render_v2(&op) };
            let item = out
                .entry(op.path.clone())
                .or_insert_with(|| json!({}))
                .as_object_mut()
                .expect("path items are objects");
            item.insert(op.kind.method().to_string(), rendered);
        }
    }
    used.sort();
    used.dedup();
    (out, used)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_words_follow_upstream_operation_ids() {
        assert_eq!(group_word(""), "Core");
        assert_eq!(group_word("apps"), "Apps");
        assert_eq!(group_word("rbac.authorization.k8s.io"), "RbacAuthorization");
        assert_eq!(group_word("networking.k8s.io"), "Networking");
        assert_eq!(group_word("stable.example.com"), "StableExampleCom");
    }
}
