//! Indexes of the placed pods for InterPodAffinity, so a cycle looks only at the pods a term
//! can select instead of at every pod in the cluster: pods by label, and pods' required
//! anti-affinity terms by a label their selector demands. Both only narrow the candidates;
//! the plugin still matches each candidate in full (namespaces, every requirement).

use std::collections::BTreeMap;

use foldhash::{HashMap, HashSet};

use crate::snapshot::PodInfo;

/// key → value → entries.
type ByLabel<T> = HashMap<String, HashMap<String, HashSet<T>>>;

/// A pod's required anti-affinity term: the pod's key and the term's position.
pub type TermRef = (String, usize);

#[derive(Debug, Default, Clone)]
pub struct PodIndex {
    /// Keys of placed pods by each of their labels.
    by_label: ByLabel<String>,
    /// Required anti-affinity terms by the first `key=value` / `key in (…)` requirement of
    /// their selector (under each value of an `in`).
    anti_by_label: ByLabel<TermRef>,
    /// Required anti-affinity terms without such a requirement: candidates for every pod.
    anti_unindexed: HashSet<TermRef>,
    /// Placed pods with terms that score nodes for others: required affinity (the hard pod
    /// affinity weight) or preferred affinity or anti-affinity.
    pub with_scoring_terms: usize,
}

fn insert<T: std::hash::Hash + Eq>(map: &mut ByLabel<T>, key: &str, value: &str, entry: T) {
    map.entry(key.to_string())
        .or_default()
        .entry(value.to_string())
        .or_default()
        .insert(entry);
}

fn remove<T: std::hash::Hash + Eq>(map: &mut ByLabel<T>, key: &str, value: &str, entry: &T) {
    let Some(values) = map.get_mut(key) else {
        return;
    };
    if let Some(set) = values.get_mut(value) {
        set.remove(entry);
        if set.is_empty() {
            values.remove(value);
        }
    }
    if values.is_empty() {
        map.remove(key);
    }
}

impl PodIndex {
    /// Records a pod placed under `key`.
    pub fn add(&mut self, key: &str, info: &PodInfo) {
        for (k, v) in info.pod.metadata.labels.iter().flatten() {
            insert(&mut self.by_label, k, v, key.to_string());
        }
        let Some(terms) = &info.terms else {
            return;
        };
        self.with_scoring_terms += usize::from(terms.scores_others());
        for (i, t) in terms.required_anti_affinity.iter().enumerate() {
            if t.selects_nothing() {
                continue;
            }
            match t.required_label() {
                Some((k, values)) => {
                    for v in values {
                        insert(&mut self.anti_by_label, k, v, (key.to_string(), i));
                    }
                }
                None => {
                    self.anti_unindexed.insert((key.to_string(), i));
                }
            }
        }
    }

    /// Forgets a pod recorded by [`PodIndex::add`] with the same `info`.
    pub fn remove(&mut self, key: &str, info: &PodInfo) {
        let owned = key.to_string();
        for (k, v) in info.pod.metadata.labels.iter().flatten() {
            remove(&mut self.by_label, k, v, &owned);
        }
        let Some(terms) = &info.terms else {
            return;
        };
        self.with_scoring_terms -= usize::from(terms.scores_others());
        for (i, t) in terms.required_anti_affinity.iter().enumerate() {
            let entry = (owned.clone(), i);
            match t.required_label() {
                Some((k, values)) => {
                    for v in values {
                        remove(&mut self.anti_by_label, k, v, &entry);
                    }
                }
                None => {
                    self.anti_unindexed.remove(&entry);
                }
            }
        }
    }

    /// Keys of the placed pods labelled `key` with one of `values`.
    pub fn labelled<'a>(
        &'a self,
        key: &str,
        values: &'a [String],
    ) -> impl Iterator<Item = &'a str> {
        let by_value = self.by_label.get(key);
        values
            .iter()
            .filter_map(move |v| by_value?.get(v))
            .flatten()
            .map(String::as_str)
    }

    /// The required anti-affinity terms that may select a pod with `labels`: those indexed
    /// under one of its labels, and the unindexed ones.
    pub fn anti_terms_for<'a>(
        &'a self,
        labels: Option<&'a BTreeMap<String, String>>,
    ) -> impl Iterator<Item = &'a TermRef> {
        labels
            .into_iter()
            .flatten()
            .filter_map(|(k, v)| self.anti_by_label.get(k)?.get(v))
            .flatten()
            .chain(&self.anti_unindexed)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use serde_json::json;

    use super::*;
    use crate::snapshot::testing::pod;

    fn labelled(name: &str, labels: serde_json::Value, anti: serde_json::Value) -> PodInfo {
        let mut p = pod(
            name,
            json!({"affinity": {"podAntiAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": anti}}}),
        );
        p.metadata.labels = serde_json::from_value(labels).unwrap();
        PodInfo::new(Arc::new(p))
    }

    fn term(selector: serde_json::Value) -> serde_json::Value {
        json!({"labelSelector": selector, "topologyKey": "kubernetes.io/hostname"})
    }

    fn sorted<'a>(it: impl Iterator<Item = &'a str>) -> Vec<&'a str> {
        let mut v: Vec<&str> = it.collect();
        v.sort();
        v
    }

    #[test]
    fn pods_and_anti_affinity_terms_are_found_by_the_labels_they_carry_and_demand() {
        let mut idx = PodIndex::default();
        let a = labelled(
            "a",
            json!({"app": "web"}),
            json!([term(json!({"matchLabels": {"app": "web"}}))]),
        );
        let b = labelled(
            "b",
            json!({"app": "db"}),
            json!([
                term(json!({"matchExpressions": [
                    {"key": "tier", "operator": "In", "values": ["x", "y"]}]})),
                term(json!({"matchExpressions": [{"key": "app", "operator": "Exists"}]})),
            ]),
        );
        let c = labelled("c", json!({"app": "web"}), json!([]));
        idx.add("default/a", &a);
        idx.add("default/b", &b);
        idx.add("default/c", &c);

        let web = ["web".to_string()];
        let both = ["web".to_string(), "db".to_string()];
        assert_eq!(
            sorted(idx.labelled("app", &web)),
            ["default/a", "default/c"]
        );
        assert_eq!(sorted(idx.labelled("app", &both)).len(), 3);
        assert_eq!(idx.labelled("tier", &web).count(), 0);

        let terms = |idx: &PodIndex, labels: serde_json::Value| {
            let labels: BTreeMap<String, String> = serde_json::from_value(labels).unwrap();
            let mut v: Vec<TermRef> = idx.anti_terms_for(Some(&labels)).cloned().collect();
            v.sort();
            v
        };
        let key = |k: &str, i| (k.to_string(), i);
        // The `Exists` term has no label to be indexed by: it is a candidate for every pod.
        assert_eq!(
            terms(&idx, json!({"app": "web"})),
            [key("default/a", 0), key("default/b", 1)]
        );
        assert_eq!(
            terms(&idx, json!({"tier": "y"})),
            [key("default/b", 0), key("default/b", 1)]
        );
        assert_eq!(terms(&idx, json!({})), [key("default/b", 1)]);

        idx.remove("default/a", &a);
        idx.remove("default/b", &b);
        idx.remove("default/c", &c);
        assert_eq!(idx.labelled("app", &both).count(), 0);
        assert!(terms(&idx, json!({"app": "web", "tier": "x"})).is_empty());
        assert!(idx.by_label.is_empty() && idx.anti_by_label.is_empty());
    }
}
