//! Shell quoting for fix commands. (Being built.)
