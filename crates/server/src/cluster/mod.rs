//! Warren's cluster (issue 21).

// Until the rest of the cluster is wired to it, nothing outside the
// link's own tests calls it.
#![allow(dead_code)]

pub(crate) mod link;
