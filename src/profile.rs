//! Load profiles from TOML files and the command-line shorthand (being written).
