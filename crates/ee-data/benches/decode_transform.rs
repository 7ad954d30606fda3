//! Per-core throughput of the image pipeline's host work, timed the way
//! `xtask/baselines/image_pipeline.py` times PIL + torchvision on the same files, so that
//! `cargo xtask bench loader` can put the two side by side: one thread, (a) decode a JPEG to
//! RGB, (b) decode + the reference's train transform to S x S + normalise to floats.
//!
//! ```text
//! cargo bench -p ee-data --bench decode_transform -- --write DIR [--count 64]   # the JPEGs
//! cargo bench -p ee-data --bench decode_transform -- --dir DIR [--size 227] [--rounds 3]
//! ```
//! Prints one JSON line with images/s of both.

use std::path::{Path, PathBuf};
use std::time::Instant;

use ee_data::load_rgb;
use ee_data::synth::render_class_image;
use ee_data::transform::{normalize_into, train_transform};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

fn write_jpegs(dir: &Path, count: usize) {
    std::fs::create_dir_all(dir).expect("create the folder");
    for i in 0..count {
        let mut rng = ChaCha8Rng::seed_from_u64(i as u64);
        let (img, _) = render_class_image(i % 8, 0, 500, 375, &mut rng);
        let path = dir.join(format!("{i:04}.jpg"));
        let mut file = std::io::BufWriter::new(std::fs::File::create(&path).expect("create"));
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut file, 90)
            .encode_image(&img)
            .expect("encode");
    }
}

fn main() {
    let mut args = std::env::args().skip(1).filter(|a| a != "--bench");
    let (mut dir, mut write, mut count, mut size, mut rounds) =
        (None, None, 64usize, 227u32, 3usize);
    while let Some(flag) = args.next() {
        let value = args
            .next()
            .unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--dir" => dir = Some(PathBuf::from(value)),
            "--write" => write = Some(PathBuf::from(value)),
            "--count" => count = value.parse().expect("a count"),
            "--size" => size = value.parse().expect("a size"),
            "--rounds" => rounds = value.parse().expect("a count"),
            other => panic!("unknown argument {other}"),
        }
    }
    if let Some(dir) = write {
        write_jpegs(&dir, count);
        return;
    }
    let dir = dir.expect("--dir DIR (write the JPEGs first with --write DIR)");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("read the folder")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "jpg"))
        .collect();
    files.sort();
    // Warm the page cache, then time each stage over `rounds` passes.
    for f in &files {
        let _ = std::fs::read(f);
    }
    let decode_start = Instant::now();
    for _ in 0..rounds {
        for f in &files {
            std::hint::black_box(load_rgb(f, None).expect("decodes"));
        }
    }
    let decode = decode_start.elapsed().as_secs_f64();
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let mut out = vec![0f32; 3 * (size * size) as usize];
    let full_start = Instant::now();
    for _ in 0..rounds {
        for f in &files {
            let rgb = load_rgb(f, None).expect("decodes");
            let image = train_transform(&rgb, size, &mut rng);
            normalize_into(&image, &mut out);
            std::hint::black_box(&out);
        }
    }
    let full = full_start.elapsed().as_secs_f64();
    let n = (files.len() * rounds) as f64;
    println!(
        "{{\"framework\": \"ee-data (image + fast_image_resize)\", \"images\": {}, \"size\": {size}, \"decode_images_per_second\": {:.1}, \"pipeline_images_per_second\": {:.1}}}",
        files.len(),
        n / decode,
        n / full
    );
}
