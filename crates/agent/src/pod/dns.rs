//! A pod's `/etc/resolv.conf` from its `dnsPolicy` and `dnsConfig`, as the kubelet builds it:
//! `Default` takes the node's resolv.conf, `None` only the pod's `dnsConfig`; `dnsConfig`
//! then adds name servers and search domains (duplicates dropped) and options (the pod's
//! win by name); at most three name servers are kept.
//!
//! There is no cluster DNS yet, so `ClusterFirst` (the default) and `ClusterFirstWithHostNet`
//! fall back to `Default`, as the kubelet does when it is given no `--cluster-dns`.

use k8s_openapi::api::core::v1::PodSpec;

use crate::runtime::DnsConfig;

/// resolv.conf allows three name servers.
const MAX_NAMESERVERS: usize = 3;
/// The kubelet's limits on search domains.
const MAX_SEARCHES: usize = 32;
const MAX_SEARCH_CHARS: usize = 2048;

/// The name servers, search domains and options of a resolv.conf file.
pub fn parse_resolv_conf(text: &str) -> DnsConfig {
    let mut config = DnsConfig::default();
    for line in text.lines() {
        let line = line.split(['#', ';']).next().unwrap_or_default();
        let mut fields = line.split_whitespace();
        match fields.next() {
            Some("nameserver") => config.servers.extend(fields.next().map(str::to_string)),
            // The last `search` line wins, as in the resolver.
            Some("search") => config.searches = fields.map(str::to_string).collect(),
            Some("options") => config.options.extend(fields.map(str::to_string)),
            _ => {}
        }
    }
    config
}

/// The pod's DNS configuration given the node's (`host`, from its resolv.conf).
pub fn pod_dns(spec: &PodSpec, host: &DnsConfig) -> DnsConfig {
    let policy = spec.dns_policy.as_deref().unwrap_or("ClusterFirst");
    let mut config = match policy {
        "None" => DnsConfig::default(),
        // Default, and the cluster policies without a cluster DNS server.
        _ => host.clone(),
    };
    if let Some(pod) = &spec.dns_config {
        for server in pod.nameservers.iter().flatten() {
            if !config.servers.contains(server) {
                config.servers.push(server.clone());
            }
        }
        for search in pod.searches.iter().flatten() {
            if !config.searches.contains(search) {
                config.searches.push(search.clone());
            }
        }
        for option in pod.options.iter().flatten() {
            let Some(option_name) = option.name.clone() else {
                continue;
            };
            let formatted = match &option.value {
                Some(value) => format!("{option_name}:{value}"),
                None => option_name.clone(),
            };
            let name = |o: &String| o.split(':').next().unwrap_or_default().to_string();
            match config.options.iter().position(|o| name(o) == option_name) {
                Some(i) => config.options[i] = formatted,
                None => config.options.push(formatted),
            }
        }
    }
    config.servers.truncate(MAX_NAMESERVERS);
    config.searches.truncate(MAX_SEARCHES);
    while config.searches.join(" ").len() > MAX_SEARCH_CHARS {
        config.searches.pop();
    }
    config
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn spec(value: serde_json::Value) -> PodSpec {
        serde_json::from_value(value).unwrap()
    }

    fn host() -> DnsConfig {
        parse_resolv_conf(
            "# generated\nnameserver 192.0.2.1\nnameserver 192.0.2.2 ; second\n\
             search old.example\nsearch corp.example example.com\noptions ndots:1 edns0\n",
        )
    }

    #[test]
    fn resolv_conf_is_parsed_like_the_resolver() {
        let host = host();
        assert_eq!(host.servers, ["192.0.2.1", "192.0.2.2"]);
        assert_eq!(host.searches, ["corp.example", "example.com"]);
        assert_eq!(host.options, ["ndots:1", "edns0"]);
    }

    #[test]
    fn default_and_cluster_first_use_the_node_config_none_only_the_pods() {
        let containers = json!([{"name": "c"}]);
        for policy in [
            json!("Default"),
            json!("ClusterFirst"),
            json!("ClusterFirstWithHostNet"),
            json!(null),
        ] {
            let spec = spec(json!({"dnsPolicy": policy, "containers": containers}));
            assert_eq!(pod_dns(&spec, &host()), host(), "{policy}");
        }
        let none = spec(json!({
            "dnsPolicy": "None",
            "dnsConfig": {
                "nameservers": ["10.9.9.9"],
                "searches": ["a.example"],
                "options": [{"name": "ndots", "value": "3"}, {"name": "rotate"}],
            },
            "containers": containers,
        }));
        let dns = pod_dns(&none, &host());
        assert_eq!(dns.servers, ["10.9.9.9"]);
        assert_eq!(dns.searches, ["a.example"]);
        assert_eq!(dns.options, ["ndots:3", "rotate"]);
    }

    #[test]
    fn dns_config_merges_into_the_node_config_within_the_limits() {
        let merged = spec(json!({
            "dnsPolicy": "Default",
            "dnsConfig": {
                "nameservers": ["192.0.2.2", "10.0.0.3", "10.0.0.4"],
                "searches": ["example.com", "pod.example"],
                "options": [{"name": "ndots", "value": "5"}],
            },
            "containers": [{"name": "c"}],
        }));
        let dns = pod_dns(&merged, &host());
        assert_eq!(dns.servers, ["192.0.2.1", "192.0.2.2", "10.0.0.3"]);
        assert_eq!(dns.searches, ["corp.example", "example.com", "pod.example"]);
        assert_eq!(dns.options, ["ndots:5", "edns0"]);
    }
}
