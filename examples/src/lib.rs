//! Examples of embedding backupapps; see `src/bin/`. Each is built and run by
//! this crate's tests.
