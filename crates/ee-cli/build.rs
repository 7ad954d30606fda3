//! With the `tch` feature, link an rpath to the libtorch folder torch-sys built against, so
//! that `ee` (and the tests) find `libtorch_cpu.so` without `LD_LIBRARY_PATH`.

fn main() {
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    // torch-sys (`links = "tch"`) exports its `libtorch_lib` to direct dependents.
    if let Ok(dir) = std::env::var("DEP_TCH_LIBTORCH_LIB") {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{dir}");
        println!("cargo:rustc-env=EE_LIBTORCH_LIB={dir}");
    }
}
