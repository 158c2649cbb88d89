//! `sqlx::migrate!()` embeds the migration files at compile time but cannot
//! tell cargo about files added later, so a new migration would be missed
//! until something else triggers a rebuild.

fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
