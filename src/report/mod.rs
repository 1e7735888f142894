//! Reports. (Being built.)
