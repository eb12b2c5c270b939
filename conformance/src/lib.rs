//! The conformance suite: black-box checks of the demo contract (DESIGN.md), run against
//! each adapter's demo server over real sockets.
