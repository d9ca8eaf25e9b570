//! Sets `cfg(r_4_5)` when the R being built against is 4.5 or later, so that
//! `ffi.rs` uses the API that R 4.5 added there and the accessors it replaced
//! before. The version is the one extendr-ffi found (it reads `Rversion.h`
//! from `R_INCLUDE_DIR`, or asks `R`) and passes on as `links = "R"`
//! metadata: the binding and extendr are then always built for the same R.

fn main() {
    println!("cargo:rustc-check-cfg=cfg(r_4_5)");
    let part = |name: &str| {
        std::env::var(format!("DEP_R_R_VERSION_{name}"))
            .ok()
            .and_then(|v| v.trim().parse::<u32>().ok())
    };
    // Without metadata, extendr-ffi found no R and assumed the newest.
    let at_least_4_5 = match (part("MAJOR"), part("MINOR")) {
        (Some(major), Some(minor)) => (major, minor) >= (4, 5),
        _ => true,
    };
    if at_least_4_5 {
        println!("cargo:rustc-cfg=r_4_5");
    }
}
