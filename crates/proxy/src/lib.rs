//! The Service dataplane (nftables) and cluster DNS. Lands with its own issue; this crate holds
//! the layering place.
