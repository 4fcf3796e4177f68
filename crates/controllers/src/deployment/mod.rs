//! The Deployment controller. So far only its pure helpers ([`util`]): the pod-template-hash
//! and the rolling-update arithmetic; the reconcile loop (sync, rolling, recreate, rollback)
//! lands on top of them.

pub mod util;
