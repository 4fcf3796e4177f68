//! The shape of the generated schema ([`super::schema`]) and the look-ups over it.

use super::schema::{KINDS, MESSAGES};

/// The field is `repeated` (a JSON array), possibly packed on the wire.
pub(super) const REPEATED: u8 = 1;
/// A zero value on the wire means "unset": the Go field is a non-pointer with `omitempty`, so
/// the Go API server would not show it. Set only on scalars and `IntOrString`.
pub(super) const OMIT_ZERO: u8 = 2;
/// The field is `json:",inline"`: its message's fields belong to the enclosing JSON object.
pub(super) const INLINE: u8 = 4;

/// What a field holds on the wire and in JSON. `Msg`/`MapMsg` carry an index into `MESSAGES`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Kind {
    Str,
    /// `[]byte`: base64 in JSON.
    Bytes,
    Bool,
    I32,
    I64,
    F64,
    Msg(u16),
    MapStr,
    MapBytes,
    MapMsg(u16),
}

/// Messages whose JSON is not an object of their fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Special {
    None,
    /// `meta/v1.Time` {1 seconds, 2 nanos}: RFC 3339 with whole seconds.
    Time,
    /// `meta/v1.MicroTime` {1 seconds, 2 nanos}: RFC 3339 with microseconds.
    MicroTime,
    /// `meta/v1.Duration` {1 duration in nanoseconds}: Go's duration string.
    Duration,
    /// `meta/v1.FieldsV1` {1 raw}: the raw bytes are JSON.
    RawJson,
    /// `runtime.RawExtension` {1 raw}: JSON, or an embedded `k8s\0` protobuf object.
    RawExtension,
    /// `intstr.IntOrString` {1 type, 2 intVal, 3 strVal}: a number or a string.
    IntOrString,
    /// `resource.Quantity` {1 string}: the string.
    Quantity,
    /// A Go named slice (`type ExtraValue []string`) wrapped as `repeated string items = 1`.
    Items,
}

#[derive(Debug)]
pub(super) struct Field {
    pub tag: u32,
    pub json: &'static str,
    pub kind: Kind,
    pub flags: u8,
}

impl Field {
    pub fn has(&self, flag: u8) -> bool {
        self.flags & flag != 0
    }
}

#[derive(Debug)]
pub(super) struct Message {
    /// Full protobuf name, e.g. `k8s.io.api.apps.v1.Deployment`.
    pub name: &'static str,
    pub special: Special,
    /// Sorted by tag.
    pub fields: &'static [Field],
}

impl Message {
    pub fn field(&self, tag: u32) -> Option<&'static Field> {
        let fields: &'static [Field] = self.fields;
        fields
            .binary_search_by_key(&tag, |f| f.tag)
            .ok()
            .map(|i| &fields[i])
    }
}

pub(super) fn message(index: u16) -> &'static Message {
    &MESSAGES[usize::from(index)]
}

pub(super) fn message_by_name(name: &str) -> Option<&'static Message> {
    MESSAGES
        .binary_search_by(|m| m.name.cmp(name))
        .ok()
        .map(|i| &MESSAGES[i])
}

const META_V1: &str = "k8s.io.apimachinery.pkg.apis.meta.v1";

/// The message of a top-level type. The `meta/v1` option types (`DeleteOptions`, …) are
/// registered in every group version, so they are accepted under any `apiVersion`.
pub(super) fn message_for_kind(api_version: &str, kind: &str) -> Option<&'static Message> {
    if let Ok(i) = KINDS.binary_search_by(|(v, k, _)| (*v, *k).cmp(&(api_version, kind))) {
        return Some(message(KINDS[i].2));
    }
    message_by_name(&format!("{META_V1}.{kind}")).filter(|m| m.special == Special::None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_sorted_and_fields_sorted_by_tag() {
        assert!(MESSAGES.windows(2).all(|w| w[0].name < w[1].name));
        for m in &MESSAGES {
            assert!(
                m.fields.windows(2).all(|w| w[0].tag < w[1].tag),
                "{}",
                m.name
            );
        }
        assert!(KINDS
            .windows(2)
            .all(|w| (w[0].0, w[0].1) < (w[1].0, w[1].1)));
    }

    #[test]
    fn every_message_reference_is_in_range() {
        for m in &MESSAGES {
            for f in m.fields {
                if let Kind::Msg(i) | Kind::MapMsg(i) = f.kind {
                    assert!(usize::from(i) < MESSAGES.len(), "{}.{}", m.name, f.json);
                }
            }
        }
    }

    #[test]
    fn kinds_resolve_to_their_messages() {
        let deploy = message_for_kind("apps/v1", "Deployment").unwrap();
        assert_eq!(deploy.name, "k8s.io.api.apps.v1.Deployment");
        let scale = message_for_kind("autoscaling/v1", "Scale").unwrap();
        assert_eq!(scale.name, "k8s.io.api.autoscaling.v1.Scale");
        let opts = message_for_kind("apps/v1", "DeleteOptions").unwrap();
        assert_eq!(opts.name, format!("{META_V1}.DeleteOptions"));
        assert!(message_for_kind("v1", "Time").is_none());
        assert!(message_for_kind("apps/v1", "NoSuchKind").is_none());
    }

    #[test]
    fn json_names_follow_the_api_not_rust() {
        let pod_status = message_by_name("k8s.io.api.core.v1.PodStatus").unwrap();
        let names: Vec<_> = pod_status.fields.iter().map(|f| f.json).collect();
        assert!(names.contains(&"podIP") && names.contains(&"podIPs"));
        let ebs = message_by_name("k8s.io.api.core.v1.AwsElasticBlockStoreVolumeSource").unwrap();
        assert_eq!(ebs.field(1).unwrap().json, "volumeID");
    }
}
