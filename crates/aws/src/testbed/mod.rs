//! The AWS test bed (the `testbed` feature): moto, started and stopped ([`moto`]), and a
//! raw-TCP proxy in front of it that lets a [`proxy::Handler`] fault or forward each call.
//! The emulator (baton-sim) runs both, with its AWS fault knobs as the handler, and this
//! crate's own tests run the same two, so there is one launcher and one proxy. The calls
//! only the emulator's controllers make live here too: the authorization data the bed
//! evaluates ([`authz`]) and the AWS Load Balancer Controller's target registrations
//! ([`lbc`]). Not part of baton's AWS access: nothing outside this module uses it.

pub mod authz;
pub mod lbc;
pub mod moto;
pub mod proxy;
