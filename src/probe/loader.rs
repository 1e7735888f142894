//! Dynamic loader search. (Being built.)
