//! The AWS test bed (the `testbed` feature): a raw-TCP proxy in front of moto that lets a
//! [`proxy::Handler`] fault or forward each call. The emulator (baton-sim) builds its AWS
//! fault knobs on it, and this crate's own tests fault calls through it, so both run the
//! same proxy. Not part of baton's AWS access: nothing outside this module uses it.

pub mod proxy;
