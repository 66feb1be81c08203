//! The traffic phase: moving an externally managed ALB listener's (or rule's) weighted
//! forward action from blue's target group to green's in steps, each gated on green's
//! health and error rate, reversible, and refusing to overwrite weights someone else set.
//!
//! - [`split`]: the forward action as data and the shift plan: which weights each step
//!   writes, with every other target group and field kept, and AWS's limits checked.
//! - [`gate`]: one step's readings (healthy targets, requests, 5xx) → pass, hold or fail.
//! - [`machine`]: the journal's events, the state they fold into, and [`machine::next`],
//!   which decides the one next thing to do from that state and the weights read now.
//! - [`duration`]: intervals printed as the command line writes them (`5m`, `500ms`).

pub mod bindings;
pub mod duration;
pub mod gate;
pub mod machine;
pub mod split;
