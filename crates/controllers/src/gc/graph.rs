//! The ownership graph and the garbage collector's decisions, free of I/O.
//!
//! Every object the collector watches is a [`Node`], keyed by uid; `dependents` indexes the
//! reverse of the owner references, including references to owners the graph has never seen
//! (they may not exist at all, or their watch may lag — the collector asks the API before it
//! acts on an absence). [`Graph::upsert`] and [`Graph::remove`] return the uids whose state
//! may now call for work; [`decide`] is what happens to a dependent once its owners are
//! classified, as upstream's `attemptToDeleteItem`.

use std::collections::{BTreeSet, HashMap};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

/// The finalizer of `propagationPolicy: Foreground`: dependents go first.
pub const FOREGROUND: &str = "foregroundDeletion";
/// The finalizer of `propagationPolicy: Orphan`: dependents lose their reference first.
pub const ORPHAN: &str = "orphan";

/// One object as the collector sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// Index of the object's resource in the collector's table.
    pub resource: usize,
    pub namespace: Option<String>,
    pub name: String,
    pub uid: String,
    pub owners: Vec<OwnerReference>,
    pub deleting: bool,
    pub finalizers: Vec<String>,
}

impl Node {
    pub fn from_meta(resource: usize, meta: &ObjectMeta) -> Option<Node> {
        Some(Node {
            resource,
            namespace: meta.namespace.clone(),
            name: meta.name.clone()?,
            uid: meta.uid.clone()?,
            owners: meta.owner_references.clone().unwrap_or_default(),
            deleting: meta.deletion_timestamp.is_some(),
            finalizers: meta.finalizers.clone().unwrap_or_default(),
        })
    }

    pub fn has_finalizer(&self, name: &str) -> bool {
        self.finalizers.iter().any(|f| f == name)
    }

    /// Deleted in the foreground: waits for its dependents.
    pub fn deleting_dependents(&self) -> bool {
        self.deleting && self.has_finalizer(FOREGROUND)
    }

    /// Deleted with `Orphan`: its dependents lose their references first.
    pub fn orphaning(&self) -> bool {
        self.deleting && self.has_finalizer(ORPHAN)
    }

    fn owner_uids(&self) -> impl Iterator<Item = &str> {
        self.owners.iter().map(|o| o.uid.as_str())
    }
}

/// The objects and who owns whom.
#[derive(Debug, Default)]
pub struct Graph {
    nodes: HashMap<String, Node>,
    dependents: HashMap<String, BTreeSet<String>>,
}

impl Graph {
    pub fn get(&self, uid: &str) -> Option<&Node> {
        self.nodes.get(uid)
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// The objects that name `uid` as an owner.
    pub fn dependents(&self, uid: &str) -> Vec<&Node> {
        self.dependents
            .get(uid)
            .into_iter()
            .flatten()
            .filter_map(|d| self.nodes.get(d))
            .collect()
    }

    /// Uids of every object of one resource.
    pub fn uids_of(&self, resource: usize) -> Vec<String> {
        self.nodes
            .values()
            .filter(|n| n.resource == resource)
            .map(|n| n.uid.clone())
            .collect()
    }

    /// Add or replace an object; returns the uids to look at.
    pub fn upsert(&mut self, node: Node) -> Vec<String> {
        let mut work = Vec::new();
        let old = self.nodes.remove(&node.uid);
        if let Some(old) = &old {
            for owner in old.owner_uids() {
                if !node.owner_uids().any(|o| o == owner) {
                    self.unlink(owner, &node.uid);
                    // A dependent let go of a foreground-deleting owner: it may be done.
                    if self.get(owner).is_some_and(Node::deleting_dependents) {
                        work.push(owner.to_string());
                    }
                }
            }
        }
        for owner in &node.owners {
            self.dependents
                .entry(owner.uid.clone())
                .or_default()
                .insert(node.uid.clone());
        }
        let owners_changed = old.as_ref().is_none_or(|o| o.owners != node.owners);
        let unresolved = node.owner_uids().any(|o| !self.nodes.contains_key(o));
        let owner_waits = node
            .owner_uids()
            .any(|o| self.get(o).is_some_and(Node::deleting_dependents));
        let finalizing = node.deleting_dependents() || node.orphaning();
        let became_finalizing = finalizing
            && old
                .as_ref()
                .is_none_or(|o| o.finalizers != node.finalizers || !o.deleting);
        if (owners_changed && (unresolved || owner_waits)) || became_finalizing {
            work.push(node.uid.clone());
        }
        if owners_changed && old.is_some() {
            // Blocking flags may have changed: owners in the foreground look again.
            for owner in node.owner_uids() {
                if self.get(owner).is_some_and(Node::deleting_dependents) {
                    work.push(owner.to_string());
                }
            }
        }
        self.nodes.insert(node.uid.clone(), node);
        work.sort();
        work.dedup();
        work
    }

    /// An object is gone; returns the uids to look at: its dependents, and owners of it that
    /// were waiting for it.
    pub fn remove(&mut self, uid: &str) -> Vec<String> {
        let Some(node) = self.nodes.remove(uid) else {
            return Vec::new();
        };
        let mut work: Vec<String> = self
            .dependents
            .get(uid)
            .into_iter()
            .flatten()
            .filter(|d| self.nodes.contains_key(*d))
            .cloned()
            .collect();
        for owner in node.owner_uids() {
            self.unlink(owner, uid);
            if self.get(owner).is_some_and(Node::deleting_dependents) {
                work.push(owner.to_string());
            }
        }
        if self.dependents.get(uid).is_some_and(BTreeSet::is_empty) {
            self.dependents.remove(uid);
        }
        work.sort();
        work.dedup();
        work
    }

    fn unlink(&mut self, owner: &str, dependent: &str) {
        if let Some(set) = self.dependents.get_mut(owner) {
            set.remove(dependent);
            if set.is_empty() && !self.nodes.contains_key(owner) {
                self.dependents.remove(owner);
            }
        }
    }

    /// Everything that needs a look once the first full picture is in: objects with owners
    /// the graph does not know, and objects being deleted with a collector finalizer.
    pub fn initial_work(&self) -> Vec<String> {
        let mut work: Vec<String> = self
            .nodes
            .values()
            .filter(|n| {
                n.deleting_dependents()
                    || n.orphaning()
                    || n.owner_uids().any(|o| !self.nodes.contains_key(o))
                    || n.owner_uids()
                        .any(|o| self.get(o).is_some_and(Node::deleting_dependents))
            })
            .map(|n| n.uid.clone())
            .collect();
        work.sort();
        work
    }
}

/// What an owner reference points at, as far as its dependent is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OwnerState {
    /// The owner exists and is not waiting for its dependents.
    Solid,
    /// No such owner (absent, or the name now has another uid).
    Dangling,
    /// The owner is being deleted in the foreground.
    Waiting,
}

/// The propagation policy of a delete the collector sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Propagation {
    Background,
    Foreground,
    Orphan,
}

impl Propagation {
    pub fn as_str(self) -> &'static str {
        match self {
            Propagation::Background => "Background",
            Propagation::Foreground => "Foreground",
            Propagation::Orphan => "Orphan",
        }
    }
}

/// What to do with a dependent whose owners are classified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Nothing,
    /// Some owner still holds it: drop the references to the owners that are gone or waiting.
    RemoveOwnerReferences(Vec<String>),
    /// Every owner left is waiting and it has dependents of its own: delete it in the
    /// foreground so its dependents go first — after making its references to these waiting
    /// owners non-blocking (only when one of its dependents is itself deleting dependents: a
    /// possible cycle).
    DeleteForeground {
        unblock: Vec<String>,
    },
    Delete(Propagation),
}

/// Upstream's rules for a dependent (`attemptToDeleteItem`). `dependents` are the node's
/// own dependents.
pub fn decide(node: &Node, owners: &[(String, OwnerState)], dependents: &[&Node]) -> Decision {
    let of = |state: OwnerState| -> Vec<String> {
        owners
            .iter()
            .filter(|(_, s)| *s == state)
            .map(|(uid, _)| uid.clone())
            .collect()
    };
    let (solid, dangling, waiting) = (
        of(OwnerState::Solid),
        of(OwnerState::Dangling),
        of(OwnerState::Waiting),
    );
    if owners.is_empty() {
        return Decision::Nothing;
    }
    if !solid.is_empty() {
        if dangling.is_empty() && waiting.is_empty() {
            return Decision::Nothing;
        }
        let mut gone = dangling;
        gone.extend(waiting);
        return Decision::RemoveOwnerReferences(gone);
    }
    if !waiting.is_empty() && !dependents.is_empty() {
        let cycle = dependents.iter().any(|d| d.deleting_dependents());
        return Decision::DeleteForeground {
            unblock: if cycle { waiting } else { Vec::new() },
        };
    }
    Decision::Delete(if node.has_finalizer(ORPHAN) {
        Propagation::Orphan
    } else if node.has_finalizer(FOREGROUND) {
        Propagation::Foreground
    } else {
        Propagation::Background
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owner(uid: &str, block: bool) -> OwnerReference {
        OwnerReference {
            api_version: "apps/v1".into(),
            kind: "ReplicaSet".into(),
            name: format!("rs-{uid}"),
            uid: uid.into(),
            controller: Some(true),
            block_owner_deletion: Some(block),
        }
    }

    fn node(uid: &str, owners: &[&str]) -> Node {
        Node {
            resource: 0,
            namespace: Some("ns".into()),
            name: format!("n-{uid}"),
            uid: uid.into(),
            owners: owners.iter().map(|o| owner(o, true)).collect(),
            deleting: false,
            finalizers: Vec::new(),
        }
    }

    fn deleting(mut n: Node, finalizer: &str) -> Node {
        n.deleting = true;
        n.finalizers = vec![finalizer.to_string()];
        n
    }

    #[test]
    fn dependents_are_indexed_and_unlinked() {
        let mut g = Graph::default();
        assert_eq!(g.upsert(node("rs", &[])), Vec::<String>::new());
        assert_eq!(g.upsert(node("p1", &["rs"])), Vec::<String>::new());
        // An owner the graph has not seen: look at the dependent.
        assert_eq!(g.upsert(node("p2", &["ghost"])), vec!["p2"]);
        assert_eq!(g.dependents("rs").len(), 1);
        // Releasing the owner unlinks it.
        g.upsert(node("p1", &[]));
        assert!(g.dependents("rs").is_empty());
        // Deleting the owner puts its dependents to work.
        g.upsert(node("p1", &["rs"]));
        assert_eq!(g.remove("rs"), vec!["p1"]);
        assert_eq!(g.remove("missing"), Vec::<String>::new());
    }

    #[test]
    fn foreground_owners_look_again_when_dependents_leave() {
        let mut g = Graph::default();
        g.upsert(node("d", &[]));
        g.upsert(node("rs", &["d"]));
        g.upsert(node("p", &["rs"]));
        assert_eq!(
            g.upsert(deleting(node("rs", &["d"]), FOREGROUND)),
            vec!["rs"]
        );
        // The same state again asks for nothing.
        assert_eq!(
            g.upsert(deleting(node("rs", &["d"]), FOREGROUND)),
            Vec::<String>::new()
        );
        assert_eq!(g.remove("p"), vec!["rs"]);
        assert_eq!(g.upsert(deleting(node("x", &[]), ORPHAN)), vec!["x"]);
    }

    #[test]
    fn initial_work_finds_dangling_and_finalizing_objects() {
        let mut g = Graph::default();
        g.upsert(node("rs", &[]));
        g.upsert(node("ok", &["rs"]));
        g.upsert(node("dangling", &["gone"]));
        g.upsert(deleting(node("fg", &[]), FOREGROUND));
        g.upsert(node("child-of-fg", &["fg"]));
        assert_eq!(g.initial_work(), vec!["child-of-fg", "dangling", "fg"]);
    }

    #[test]
    fn decisions_follow_upstream() {
        let n = node("p", &["a", "b"]);
        let solid = ("a".to_string(), OwnerState::Solid);
        let dangling = ("b".to_string(), OwnerState::Dangling);
        let waiting = ("b".to_string(), OwnerState::Waiting);
        let child = node("c", &["p"]);
        let deleting_child = deleting(node("c", &["p"]), FOREGROUND);
        type Case<'a> = (Vec<(String, OwnerState)>, Vec<&'a Node>, Decision);
        let cases: Vec<Case> = vec![
            (vec![], vec![], Decision::Nothing),
            (vec![solid.clone()], vec![], Decision::Nothing),
            (
                vec![solid.clone(), dangling.clone()],
                vec![],
                Decision::RemoveOwnerReferences(vec!["b".into()]),
            ),
            (
                vec![solid.clone(), waiting.clone()],
                vec![&child],
                Decision::RemoveOwnerReferences(vec!["b".into()]),
            ),
            (
                vec![dangling.clone()],
                vec![&child],
                Decision::Delete(Propagation::Background),
            ),
            (
                vec![waiting.clone()],
                vec![],
                Decision::Delete(Propagation::Background),
            ),
            (
                vec![waiting.clone(), dangling.clone()],
                vec![&child],
                Decision::DeleteForeground { unblock: vec![] },
            ),
            (
                vec![waiting.clone()],
                vec![&deleting_child],
                Decision::DeleteForeground {
                    unblock: vec!["b".into()],
                },
            ),
        ];
        for (owners, dependents, want) in cases {
            assert_eq!(
                decide(&n, &owners, &dependents),
                want,
                "{owners:?} {dependents:?}"
            );
        }
        let orphaning = Node {
            finalizers: vec![ORPHAN.into()],
            ..n.clone()
        };
        assert_eq!(
            decide(&orphaning, &[dangling], &[]),
            Decision::Delete(Propagation::Orphan)
        );
    }
}
