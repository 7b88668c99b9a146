//! Test support for peercollab: drivers that run core objects against each
//! other over virtual time. Used by the tests in `tests/tests/` and, later, by
//! the simulator and the fuzz targets.
