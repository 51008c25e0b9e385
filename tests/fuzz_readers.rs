//! Fuzzing the image and label readers in-process: valid PNG/JPEG files of every layout segda
//! reads (GTA5 palette labels, SYNTHIA 16-bit labels, Cityscapes labelIds, 8/16-bit gray, RGB,
//! RGBA, gray+alpha and JPEG images), mutated where decoders break — header fields rewritten
//! with valid CRCs, chunk lengths, palettes, truncations, byte flips, JPEG frame sizes — and fed
//! to every decoder. A case passes when each decoder returns (an image or an error); a panic
//! fails the test with the case's seed, and an abort (an unbounded allocation) kills it.
//!
//! `SEGDA_FUZZ_CASES` sets the number of cases (default 20 000, what CI runs; docs/data.md
//! records a longer run). Inputs that crashed a reader once are kept in tests/fixtures/fuzz/.
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use segda::data::{cityscapes, folder, gta5, io, synthia};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

fn png(w: u32, h: u32, color: png::ColorType, depth: png::BitDepth, rng: &mut ChaCha8Rng) -> Vec<u8> {
    let mut buf = Vec::new();
    let mut enc = png::Encoder::new(&mut buf, w, h);
    enc.set_color(color);
    enc.set_depth(depth);
    if color == png::ColorType::Indexed {
        enc.set_palette((0..256 * 3).map(|i| (i * 7) as u8).collect::<Vec<u8>>());
    }
    let n = (w * h) as usize * color.samples() * if depth == png::BitDepth::Sixteen { 2 } else { 1 };
    let data: Vec<u8> = (0..n).map(|_| rng.gen_range(0..34u8)).collect();
    enc.write_header().unwrap().write_image_data(&data).unwrap();
    buf
}

fn jpeg(w: u32, h: u32, rng: &mut ChaCha8Rng) -> Vec<u8> {
    let img = image::RgbImage::from_fn(w, h, |_, _| image::Rgb([rng.gen(), rng.gen(), rng.gen()]));
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Jpeg).unwrap();
    out.into_inner()
}

/// The valid files every case starts from.
fn seeds() -> Vec<(&'static str, Vec<u8>)> {
    use png::{BitDepth::*, ColorType::*};
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    vec![
        ("gta5 palette label", png(16, 9, Indexed, Eight, &mut rng)),
        ("synthia 16-bit label", png(16, 10, Rgb, Sixteen, &mut rng)),
        ("synthia 16-bit rgba label", png(12, 8, Rgba, Sixteen, &mut rng)),
        ("cityscapes labelIds", png(16, 8, Grayscale, Eight, &mut rng)),
        ("gray 16-bit", png(8, 8, Grayscale, Sixteen, &mut rng)),
        ("gray+alpha", png(8, 8, GrayscaleAlpha, Eight, &mut rng)),
        ("rgb image", png(16, 8, Rgb, Eight, &mut rng)),
        ("rgba image", png(16, 8, Rgba, Eight, &mut rng)),
        ("jpeg image", jpeg(16, 8, &mut rng)),
    ]
}

/// PNG chunks: (offset of the length field, data length) after the 8-byte signature.
fn chunks(b: &[u8]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut pos = 8;
    while pos + 12 <= b.len() {
        let len = u32::from_be_bytes(b[pos..pos + 4].try_into().unwrap()) as usize;
        out.push((pos, len));
        pos += 12 + len;
    }
    out
}

/// Recompute the CRC of the chunk at `pos` with data length `len`.
fn fix_crc(b: &mut [u8], pos: usize, len: usize) {
    if pos + 12 + len <= b.len() {
        let crc = crc32fast::hash(&b[pos + 4..pos + 8 + len]);
        b[pos + 8 + len..pos + 12 + len].copy_from_slice(&crc.to_be_bytes());
    }
}

fn interesting_u32(rng: &mut ChaCha8Rng) -> u32 {
    let v = [0, 1, 2, 7, 255, 256, 65535, 65536, 1 << 20, 60000, 1 << 31, u32::MAX, u32::MAX - 1];
    if rng.gen_bool(0.7) {
        v[rng.gen_range(0..v.len())]
    } else {
        rng.gen()
    }
}

/// One mutation of a valid file.
fn mutate(seed: &[u8], rng: &mut ChaCha8Rng) -> Vec<u8> {
    let mut b = seed.to_vec();
    if b.len() < 2 {
        return b;
    }
    let is_png = b.starts_with(b"\x89PNG") && b.len() >= 33;
    match rng.gen_range(0..7) {
        // IHDR fields, CRC kept valid so that the decoder believes them
        0 if is_png => {
            match rng.gen_range(0..4) {
                0 => b[16..20].copy_from_slice(&interesting_u32(rng).to_be_bytes()),
                1 => b[20..24].copy_from_slice(&interesting_u32(rng).to_be_bytes()),
                2 => b[24] = [0u8, 1, 2, 3, 4, 8, 16, 32, 255][rng.gen_range(0..9)],
                _ => {
                    let k = rng.gen_range(25..29);
                    b[k] = [0u8, 1, 2, 3, 4, 5, 6, 7, 255][rng.gen_range(0..9)];
                }
            }
            fix_crc(&mut b, 8, 13);
        }
        // a chunk's length field
        1 if is_png && !chunks(&b).is_empty() => {
            let c = chunks(&b);
            let (pos, _) = c[rng.gen_range(0..c.len())];
            b[pos..pos + 4].copy_from_slice(&interesting_u32(rng).to_be_bytes());
        }
        // the palette: shortened, emptied or lengthened, with a valid CRC
        2 if is_png => {
            let plte = chunks(&b).into_iter().find(|(p, len)| &b[p + 4..p + 8] == b"PLTE" && p + 12 + len <= b.len());
            if let Some((pos, len)) = plte.filter(|(_, len)| *len >= 3) {
                let new = [0usize, 3, 6, 30, len - 3, len + 3][rng.gen_range(0..6)];
                let mut data = b[pos + 8..pos + 8 + len].to_vec();
                data.resize(new, 9);
                let mut chunk = (new as u32).to_be_bytes().to_vec();
                chunk.extend_from_slice(b"PLTE");
                chunk.extend_from_slice(&data);
                chunk.extend_from_slice(&crc32fast::hash(&chunk[4..]).to_be_bytes());
                b.splice(pos..pos + 12 + len, chunk);
            } else {
                let i = rng.gen_range(0..b.len());
                b[i] ^= rng.gen_range(1..=255u8);
            }
        }
        // a JPEG frame's height and width (SOF0 / SOF2)
        0..=2 => {
            if let Some(i) = b.windows(2).position(|w| w == [0xFF, 0xC0] || w == [0xFF, 0xC2]) {
                if i + 9 <= b.len() {
                    let v = interesting_u32(rng) as u16;
                    let k = if rng.gen_bool(0.5) { i + 5 } else { i + 7 };
                    b[k..k + 2].copy_from_slice(&v.to_be_bytes());
                }
            }
        }
        3 => b.truncate(rng.gen_range(0..b.len())),
        4 => {
            for _ in 0..rng.gen_range(1..8) {
                let i = rng.gen_range(0..b.len());
                b[i] ^= rng.gen_range(1..=255u8);
            }
        }
        // bytes inserted or removed in the middle (every later chunk shifts)
        5 => {
            let i = rng.gen_range(0..b.len());
            if rng.gen_bool(0.5) {
                b.insert(i, rng.gen());
            } else {
                b.remove(i);
            }
        }
        // a run of random bytes over the data
        _ => {
            let i = rng.gen_range(0..b.len());
            let n = rng.gen_range(1..32).min(b.len() - i);
            for x in &mut b[i..i + n] {
                *x = rng.gen();
            }
        }
    }
    b
}

/// A decoder under test: whether it accepted the bytes.
type Decoder<'a> = &'a dyn Fn(&[u8]) -> bool;

/// Every decoder segda has for images and labels; None when one panicked (its name).
fn decode_all(bytes: &[u8]) -> Option<&'static str> {
    let decoders: [(&str, Decoder); 8] = [
        ("io::decode_rgb", &|b| io::decode_rgb(b).is_ok()),
        ("io::decode_index_label", &|b| io::decode_index_label(b).is_ok()),
        ("io::decode_synthia_label", &|b| io::decode_synthia_label(b).is_ok()),
        ("io::decode_png_raw", &|b| io::decode_png_raw(b).is_ok()),
        ("gta5::decode_label", &|b| gta5::decode_label(b).is_ok()),
        ("synthia::decode_label", &|b| synthia::decode_label(b).is_ok()),
        ("cityscapes::decode_label", &|b| cityscapes::decode_label(b).is_ok()),
        ("folder::decode_label", &|b| folder::decode_label(b).is_ok()),
    ];
    // quiet while the decoders run: a panic is reported below with its case
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let panicked = decoders.iter().find(|(_, d)| catch_unwind(AssertUnwindSafe(|| d(bytes))).is_err()).map(|(n, _)| *n);
    std::panic::set_hook(hook);
    panicked
}

#[test]
fn mutated_images_and_labels_never_crash_a_reader() {
    let cases: u64 = std::env::var("SEGDA_FUZZ_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(20_000);
    let seeds = seeds();
    // every seed file is valid for the decoders of its layout
    assert!(seeds.iter().all(|(_, b)| io::decode_rgb(b).is_ok()));
    assert!(gta5::decode_label(&seeds[0].1).is_ok() && synthia::decode_label(&seeds[1].1).is_ok());
    assert!(cityscapes::decode_label(&seeds[3].1).is_ok());
    let mut refused = 0u64;
    for case in 0..cases {
        let mut rng = ChaCha8Rng::seed_from_u64(case);
        let (layout, seed) = &seeds[rng.gen_range(0..seeds.len())];
        let mut bytes = mutate(seed, &mut rng);
        if rng.gen_bool(0.2) {
            bytes = mutate(&bytes, &mut rng);
        }
        if bytes.is_empty() {
            continue;
        }
        if let Some(decoder) = decode_all(&bytes) {
            let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("fuzz-crash-{case}.bin"));
            std::fs::write(&out, &bytes).unwrap();
            panic!("case {case} ({layout}): {decoder} panicked; input kept in {}", out.display());
        }
        refused += u64::from(io::decode_rgb(&bytes).is_err());
    }
    eprintln!("{cases} cases, {refused} refused by decode_rgb");
    // the mutations do break files (a harness that only fed valid files would prove nothing)
    assert!(refused > cases / 4, "only {refused} of {cases} mutated files were refused");
}

/// Inputs that crashed a reader once (tests/fixtures/fuzz/): each is refused with an error.
#[test]
fn former_crashes_are_refused_cleanly() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/fuzz");
    let files: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
    assert!(files.len() >= 3, "regression inputs missing from {}", dir.display());
    for f in files.iter().filter(|f| f.extension().is_some_and(|e| e == "png")) {
        let bytes = std::fs::read(f).unwrap();
        assert_eq!(decode_all(&bytes), None, "{}", f.display());
        let e = io::decode_index_label(&bytes).err().or(io::decode_synthia_label(&bytes).err()).unwrap();
        assert!(e.contains("limit") || e.contains("dimensions"), "{}: {e}", f.display());
    }
}
