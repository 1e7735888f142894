//! Command line. (Being built.)
