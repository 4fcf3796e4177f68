//! The scheduler: a queue and a framework of filter/score/bind plugins over an in-memory node
//! snapshot, binding through `pods/binding`. Lands with its own issue; this crate holds the
//! layering place.
