//! Integration tests of the `infergate-crds` public API, in one test binary.

mod manifests;
mod seeds;
mod strict;
mod support;
