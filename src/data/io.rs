//! PNG/JPEG reading and writing in the exact encodings the datasets use.
//!
//! Label files are read as raw sample values (`png` with identity transformations): a GTA5
//! palette index *is* the labelId, and SYNTHIA keeps its class id in the R channel of a 16-bit
//! RGB image — a decoder that expands palettes or converts bit depths would lose both.
use crate::error::{Error, IoContext, Result};
use image::{GrayImage, RgbImage};
use std::fs::File;
use std::io::{BufReader, BufWriter, Cursor};
use std::path::Path;

/// The most pixels a decoded image or label may have unless `SEGDA_MAX_IMAGE_PIXELS` says
/// otherwise: 64 Mpx, 30 times a Cityscapes frame. A header that claims more is refused before
/// anything is allocated, so a corrupt or hostile file (a decompression bomb) is an error that
/// names the file, never an aborted process.
pub const DEFAULT_MAX_PIXELS: u64 = 64 << 20;

/// `SEGDA_MAX_IMAGE_PIXELS` (for genuinely huge images), else [`DEFAULT_MAX_PIXELS`].
pub fn max_pixels() -> u64 {
    std::env::var("SEGDA_MAX_IMAGE_PIXELS").ok().and_then(|v| v.trim().parse().ok()).unwrap_or(DEFAULT_MAX_PIXELS)
}

/// Refuse dimensions from a header before decoding: empty, or above [`max_pixels`].
fn check_dimensions(w: u32, h: u32) -> Result<(), String> {
    let (n, max) = (u64::from(w) * u64::from(h), max_pixels());
    if n == 0 {
        return Err(format!("the header claims an empty {w}×{h} image"));
    }
    if n > max {
        return Err(format!(
            "the header claims {w}×{h} pixels ({:.1} Mpx), above the limit of {:.1} Mpx \
             (set SEGDA_MAX_IMAGE_PIXELS to raise it for genuinely large images)",
            n as f64 / 1e6,
            max as f64 / 1e6
        ));
    }
    Ok(())
}

/// Decode any supported image file (PNG of any depth/colour type, JPEG) to 8-bit RGB.
pub fn read_rgb(path: &Path) -> Result<RgbImage> {
    let bytes = std::fs::read(path).at(path)?;
    decode_rgb(&bytes).map_err(|m| Error::format(path, m))
}

pub fn decode_rgb(bytes: &[u8]) -> Result<RgbImage, String> {
    use image::ImageDecoder;
    let reader = image::ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| format!("cannot read image: {e}"))?;
    let mut decoder = reader.into_decoder().map_err(|e| format!("not a readable image ({e})"))?;
    let (w, h) = decoder.dimensions();
    check_dimensions(w, h)?;
    // the decoded buffer is at most max_pixels × 4 channels × 2 bytes
    let mut limits = image::Limits::default();
    limits.max_alloc = Some(max_pixels().saturating_mul(8).saturating_add(1 << 20));
    decoder.set_limits(limits).map_err(|e| format!("not a readable image ({e})"))?;
    let img = image::DynamicImage::from_decoder(decoder).map_err(|e| format!("not a readable image ({e})"))?;
    Ok(img.to_rgb8())
}

/// Raw samples of a PNG, exactly as stored.
pub struct RawPng {
    pub width: u32,
    pub height: u32,
    pub color: png::ColorType,
    pub depth: png::BitDepth,
    /// Samples per pixel (1 gray/indexed, 2 gray+alpha, 3 RGB, 4 RGBA).
    pub channels: usize,
    /// Row-major samples; 16-bit values converted from big-endian.
    pub samples: Vec<u16>,
}

pub fn decode_png_raw(bytes: &[u8]) -> Result<RawPng, String> {
    let mut dec = png::Decoder::new_with_limits(Cursor::new(bytes), png::Limits { bytes: 1 << 29 });
    dec.set_transformations(png::Transformations::IDENTITY);
    let mut reader = dec.read_info().map_err(|e| format!("not a readable PNG ({e})"))?;
    check_dimensions(reader.info().width, reader.info().height)?;
    let size = reader.output_buffer_size().ok_or("PNG dimensions too large")?;
    let mut buf = vec![0u8; size];
    let info = reader.next_frame(&mut buf).map_err(|e| format!("corrupt or truncated PNG ({e})"))?;
    let channels = info.color_type.samples();
    let (w, h) = (info.width as usize, info.height as usize);
    let n = w * h * channels;
    let samples: Vec<u16> = match info.bit_depth {
        png::BitDepth::Eight => {
            let stride = info.line_size;
            let mut out = Vec::with_capacity(n);
            for row in buf.chunks(stride).take(h) {
                out.extend(row[..w * channels].iter().map(|&b| b as u16));
            }
            out
        }
        png::BitDepth::Sixteen => {
            let stride = info.line_size;
            let mut out = Vec::with_capacity(n);
            for row in buf.chunks(stride).take(h) {
                out.extend(row[..w * channels * 2].chunks_exact(2).map(|b| u16::from_be_bytes([b[0], b[1]])));
            }
            out
        }
        d => return Err(format!("unsupported PNG bit depth {d:?} (labels must be 8 or 16 bit)")),
    };
    Ok(RawPng {
        width: info.width,
        height: info.height,
        color: info.color_type,
        depth: info.bit_depth,
        channels,
        samples,
    })
}

fn describe(raw: &RawPng) -> String {
    let bits = match raw.depth {
        png::BitDepth::Sixteen => 16,
        _ => 8,
    };
    format!("{bits}-bit {:?}", raw.color)
}

/// An 8-bit single-channel label (grayscale or palette indices), values untouched.
pub fn decode_index_label(bytes: &[u8]) -> Result<GrayImage, String> {
    let raw = decode_png_raw(bytes)?;
    let ok =
        raw.depth == png::BitDepth::Eight && matches!(raw.color, png::ColorType::Grayscale | png::ColorType::Indexed);
    if !ok {
        return Err(format!("expected an 8-bit grayscale or palette label PNG, found {}", describe(&raw)));
    }
    let data = raw.samples.into_iter().map(|v| v as u8).collect();
    Ok(GrayImage::from_raw(raw.width, raw.height, data).expect("sizes match"))
}

/// SYNTHIA's 16-bit RGB(A) label: the class id is the R sample.
pub fn decode_synthia_label(bytes: &[u8]) -> Result<(u32, u32, Vec<u16>), String> {
    let raw = decode_png_raw(bytes)?;
    let ok = raw.depth == png::BitDepth::Sixteen && matches!(raw.color, png::ColorType::Rgb | png::ColorType::Rgba);
    if !ok {
        return Err(format!("expected a 16-bit RGB SYNTHIA label PNG (class id in R), found {}", describe(&raw)));
    }
    let r = raw.samples.chunks_exact(raw.channels).map(|px| px[0]).collect();
    Ok((raw.width, raw.height, r))
}

fn encoder<'a>(path: &Path, w: u32, h: u32) -> Result<png::Encoder<'a, BufWriter<File>>> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).at(dir)?;
    }
    let f = File::create(path).at(path)?;
    Ok(png::Encoder::new(BufWriter::new(f), w, h))
}

fn finish(path: &Path, enc: png::Encoder<BufWriter<File>>, data: &[u8]) -> Result<()> {
    let err = |e: png::EncodingError| Error::format(path, format!("cannot write PNG: {e}"));
    let mut w = enc.write_header().map_err(err)?;
    w.write_image_data(data).map_err(err)?;
    w.finish().map_err(err)
}

pub fn write_rgb(path: &Path, img: &RgbImage) -> Result<()> {
    let mut enc = encoder(path, img.width(), img.height())?;
    enc.set_color(png::ColorType::Rgb);
    enc.set_depth(png::BitDepth::Eight);
    finish(path, enc, img.as_raw())
}

pub fn write_gray8(path: &Path, img: &GrayImage) -> Result<()> {
    let mut enc = encoder(path, img.width(), img.height())?;
    enc.set_color(png::ColorType::Grayscale);
    enc.set_depth(png::BitDepth::Eight);
    finish(path, enc, img.as_raw())
}

/// A palette ("P" mode) PNG: the stored indices are `img`, shown with `palette` colours.
pub fn write_palette(path: &Path, img: &GrayImage, palette: &[[u8; 3]]) -> Result<()> {
    let mut enc = encoder(path, img.width(), img.height())?;
    enc.set_color(png::ColorType::Indexed);
    enc.set_depth(png::BitDepth::Eight);
    let mut pal: Vec<u8> = palette.iter().flatten().copied().collect();
    pal.resize(256 * 3, 0);
    enc.set_palette(pal);
    finish(path, enc, img.as_raw())
}

/// 16-bit PNG with `channels` samples per pixel (1 = gray, 3 = RGB).
pub fn write_u16(path: &Path, w: u32, h: u32, channels: usize, samples: &[u16]) -> Result<()> {
    assert_eq!(samples.len(), (w * h) as usize * channels);
    let mut enc = encoder(path, w, h)?;
    enc.set_color(if channels == 3 { png::ColorType::Rgb } else { png::ColorType::Grayscale });
    enc.set_depth(png::BitDepth::Sixteen);
    let bytes: Vec<u8> = samples.iter().flat_map(|v| v.to_be_bytes()).collect();
    finish(path, enc, &bytes)
}

pub fn read_bytes(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).at(path)
}

/// Width and height from the file header only (cheap, for validation).
pub fn image_dimensions(path: &Path) -> Result<(u32, u32)> {
    let f = File::open(path).at(path)?;
    image::ImageReader::new(BufReader::new(f))
        .with_guessed_format()
        .at(path)?
        .into_dimensions()
        .map_err(|e| Error::format(path, format!("not a readable image ({e})")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn palette_indices_survive_a_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("l.png");
        let img = GrayImage::from_fn(5, 3, |x, y| image::Luma([(x * 7 + y) as u8]));
        write_palette(&p, &img, &crate::data::classes::PALETTE).unwrap();
        let back = decode_index_label(&std::fs::read(&p).unwrap()).unwrap();
        assert_eq!(back, img);
        // a colour decoder sees colours, not ids: the reason for reading raw indices
        let rgb = read_rgb(&p).unwrap();
        assert_eq!(rgb.get_pixel(0, 0).0, crate::data::classes::PALETTE[0]);
    }

    #[test]
    fn synthia_label_reads_the_red_channel() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s.png");
        let samples: Vec<u16> = (0..6).flat_map(|i| [i as u16 + 300, 7, 9000]).collect();
        write_u16(&p, 3, 2, 3, &samples).unwrap();
        let (w, h, r) = decode_synthia_label(&std::fs::read(&p).unwrap()).unwrap();
        assert_eq!((w, h), (3, 2));
        assert_eq!(r, vec![300, 301, 302, 303, 304, 305]);
    }

    #[test]
    fn wrong_bit_depths_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let p16 = dir.path().join("g16.png");
        write_u16(&p16, 2, 2, 1, &[1, 2, 3, 4]).unwrap();
        let e = decode_index_label(&std::fs::read(&p16).unwrap()).unwrap_err();
        assert!(e.contains("16-bit"), "{e}");
        let p8 = dir.path().join("g8.png");
        write_gray8(&p8, &GrayImage::new(2, 2)).unwrap();
        let e = decode_synthia_label(&std::fs::read(&p8).unwrap()).unwrap_err();
        assert!(e.contains("expected a 16-bit"), "{e}");
    }

    #[test]
    fn truncated_png_is_an_error_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.png");
        write_gray8(&p, &GrayImage::from_fn(64, 64, |x, y| image::Luma([(x ^ y) as u8]))).unwrap();
        let bytes = std::fs::read(&p).unwrap();
        for cut in [8, 20, 40, bytes.len() / 2, bytes.len() - 5] {
            assert!(decode_index_label(&bytes[..cut]).is_err(), "cut at {cut}");
        }
    }

    /// A tiny PNG with IHDR's width and height replaced (and its CRC recomputed, so that the
    /// decoder believes it).
    pub(crate) fn with_claimed_size(png: &[u8], w: u32, h: u32) -> Vec<u8> {
        let mut b = png.to_vec();
        // signature (8), IHDR length (4), "IHDR" (4), then width and height
        b[16..20].copy_from_slice(&w.to_be_bytes());
        b[20..24].copy_from_slice(&h.to_be_bytes());
        let crc = crc32fast::hash(&b[12..29]);
        b[29..33].copy_from_slice(&crc.to_be_bytes());
        b
    }

    fn png_bytes(w: u32, h: u32, color: png::ColorType, depth: png::BitDepth) -> Vec<u8> {
        let mut buf = Vec::new();
        let mut enc = png::Encoder::new(&mut buf, w, h);
        enc.set_color(color);
        enc.set_depth(depth);
        if color == png::ColorType::Indexed {
            enc.set_palette(vec![0u8; 256 * 3]);
        }
        let bytes = (w * h) as usize * color.samples() * if depth == png::BitDepth::Sixteen { 2 } else { 1 };
        enc.write_header().unwrap().write_image_data(&vec![1u8; bytes]).unwrap();
        buf
    }

    /// A header that claims 60000×60000 pixels is refused before anything is allocated, by
    /// every decoder (it aborted the process with a 76 GB allocation before), and the limit can
    /// be raised.
    #[test]
    fn huge_claimed_dimensions_are_refused_before_allocation() {
        use png::{BitDepth, ColorType};
        let huge = |c, d| with_claimed_size(&png_bytes(4, 4, c, d), 60000, 60000);
        for e in [
            decode_index_label(&huge(ColorType::Indexed, BitDepth::Eight)).unwrap_err(),
            decode_index_label(&huge(ColorType::Grayscale, BitDepth::Eight)).unwrap_err(),
            decode_synthia_label(&huge(ColorType::Rgb, BitDepth::Sixteen)).unwrap_err(),
            decode_rgb(&huge(ColorType::Rgb, BitDepth::Eight)).unwrap_err(),
        ] {
            assert!(e.contains("60000×60000") && e.contains("SEGDA_MAX_IMAGE_PIXELS"), "{e}");
        }
        assert!(decode_index_label(&with_claimed_size(&png_bytes(4, 4, ColorType::Grayscale, BitDepth::Eight), 0, 7))
            .is_err());
        // a real image just under the limit decodes
        assert!(decode_index_label(&png_bytes(64, 32, ColorType::Grayscale, BitDepth::Eight)).is_ok());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(400))]
        #[test]
        fn label_decoders_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            let _ = decode_index_label(&bytes);
            let _ = decode_synthia_label(&bytes);
            let _ = decode_rgb(&bytes);
        }

        #[test]
        fn decoders_never_panic_on_corrupted_pngs(flips in proptest::collection::vec((0usize..4000, any::<u8>()), 1..8)) {
            let mut buf = Vec::new();
            {
                let mut enc = png::Encoder::new(&mut buf, 16, 8);
                enc.set_color(png::ColorType::Rgb);
                enc.set_depth(png::BitDepth::Sixteen);
                let mut w = enc.write_header().unwrap();
                w.write_image_data(&vec![3u8; 16 * 8 * 6]).unwrap();
            }
            for (i, b) in flips { let n = buf.len(); buf[i % n] ^= b; }
            let _ = decode_index_label(&buf);
            let _ = decode_synthia_label(&buf);
            let _ = decode_rgb(&buf);
        }
    }
}
