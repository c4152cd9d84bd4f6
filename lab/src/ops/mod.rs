//! What the commands do, as plans of a [`crate::Lab`]: each command parses
//! its arguments and calls one of these (as cargo's commands call `ops`).

mod deploy;
mod down;
mod images;
mod up;
