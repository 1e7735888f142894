//! The application. (Being built.)
