//! A parallel, prefetching, deterministic batch loader.
//!
//! Sample `k` of the stream is item `perm_e[k mod N]` of epoch `e = k / N`, where the permutation
//! and the sample's augmentation come from ChaCha streams keyed by (seed, e) and (seed, k). So
//! the content of every batch depends only on the seed and its position, not on thread timing,
//! and resuming at batch `p` is just starting the stream at `p`.
use super::classes::IGNORE;
use super::dataset::Dataset;
use super::transform::{Augment, Normalize};
use crate::error::Result;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::Arc;

#[derive(Clone, Debug)]
pub struct LoaderSpec {
    pub batch: usize,
    pub augment: Augment,
    pub normalize: Normalize,
    pub shuffle: bool,
    /// Decode labels (false for unlabelled target images).
    pub labels: bool,
    /// Keep labels at their stored resolution (evaluation at label size); needs batch 1, no crop.
    pub keep_label_size: bool,
    pub seed: u64,
    /// Batches decoded ahead of the consumer (bounds memory).
    pub prefetch: usize,
    /// Stop after one pass (evaluation) instead of cycling forever (training).
    pub once: bool,
    /// One pass (`once`) that goes on past an item that fails to load, reporting it in the
    /// stream (`segda predict` over a folder), instead of ending there.
    pub keep_going: bool,
}

impl LoaderSpec {
    pub fn train(batch: usize, augment: Augment, normalize: Normalize, labels: bool, seed: u64) -> Self {
        LoaderSpec {
            batch,
            augment,
            normalize,
            shuffle: true,
            labels,
            keep_label_size: false,
            seed,
            prefetch: 2,
            once: false,
            keep_going: false,
        }
    }
    /// One ordered pass, images resized to `resize`, labels at their own size.
    pub fn eval(resize: Option<[u32; 2]>, normalize: Normalize) -> Self {
        let augment = Augment { resize, crop: None, flip: false, upscale: None };
        LoaderSpec {
            batch: 1,
            augment,
            normalize,
            shuffle: false,
            labels: true,
            keep_label_size: true,
            seed: 0,
            prefetch: 2,
            once: true,
            keep_going: false,
        }
    }
}

/// A batch in NCHW (images) / NHW (labels, i64 trainIds with 255 = ignore) layout.
#[derive(Clone, Debug)]
pub struct Batch {
    pub n: usize,
    pub h: usize,
    pub w: usize,
    pub images: Vec<f32>,
    /// Per sample: (width, height, trainIds); sizes equal the image's unless keep_label_size.
    pub labels: Option<Vec<(u32, u32, Vec<u8>)>>,
    pub names: Vec<String>,
    /// Dataset indices of the samples.
    pub indices: Vec<usize>,
}

impl Batch {
    /// Labels as one flat i64 vector (all labels must share the image size).
    pub fn label_ids(&self) -> Option<Vec<i64>> {
        self.labels.as_ref().map(|ls| ls.iter().flat_map(|(_, _, v)| v.iter().map(|&x| x as i64)).collect())
    }
}

/// The item index and augmentation RNG of stream position `k`.
struct Stream {
    n: usize,
    seed: u64,
    shuffle: bool,
    epoch: u64,
    perm: Vec<usize>,
}

impl Stream {
    fn new(n: usize, seed: u64, shuffle: bool) -> Self {
        let mut s = Stream { n, seed, shuffle, epoch: u64::MAX, perm: Vec::new() };
        s.set_epoch(0);
        s
    }
    fn set_epoch(&mut self, e: u64) {
        if e == self.epoch {
            return;
        }
        self.epoch = e;
        self.perm = (0..self.n).collect();
        if self.shuffle {
            let mut rng = ChaCha8Rng::seed_from_u64(self.seed);
            rng.set_stream(e.wrapping_add(1) << 32);
            self.perm.shuffle(&mut rng);
        }
    }
    fn item(&mut self, k: u64) -> usize {
        self.set_epoch(k / self.n as u64);
        self.perm[(k % self.n as u64) as usize]
    }
    fn rng(&self, k: u64) -> ChaCha8Rng {
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed ^ 0x5E6D_A000);
        rng.set_stream(k);
        rng
    }
}

pub struct Loader {
    rx: Receiver<Result<Batch>>,
    position: u64,
    len: usize,
}

impl Loader {
    /// Start the stream at batch `start` (0 for a fresh run, the saved position on resume).
    pub fn new(dataset: Arc<Dataset>, spec: LoaderSpec, start: u64) -> Loader {
        let (tx, rx) = sync_channel(spec.prefetch.max(1));
        let len = dataset.len();
        std::thread::Builder::new()
            .name("segda-loader".into())
            .spawn(move || {
                // its own decoding pool: the thread that waits on this stream inside a training
                // step (ASS, LSE) is a worker of the global pool (`runtime::pool`), so decoding must not
                // need that pool's workers
                let pool = rayon::ThreadPoolBuilder::new()
                    .num_threads(rayon::current_num_threads())
                    .thread_name(|i| format!("segda-decode-{i}"))
                    .build();
                let mut stream = Stream::new(dataset.len(), spec.seed, spec.shuffle);
                let total = dataset.len() as u64;
                let mut b = start;
                loop {
                    let first = b * spec.batch as u64;
                    if spec.once && first >= total {
                        break;
                    }
                    let end =
                        if spec.once { (first + spec.batch as u64).min(total) } else { first + spec.batch as u64 };
                    let jobs: Vec<(u64, usize)> = (first..end).map(|k| (k, stream.item(k))).collect();
                    let batch = match &pool {
                        Ok(pool) => pool.install(|| make_batch(&dataset, &spec, &stream, &jobs)),
                        Err(e) => {
                            Err(crate::error::Error::Other(format!("cannot start the data loader's threads: {e}")))
                        }
                    };
                    let failed = batch.is_err();
                    if tx.send(batch).is_err() || (failed && !spec.keep_going) {
                        break;
                    }
                    b += 1;
                }
            })
            .expect("spawn loader thread");
        Loader { rx, position: start, len }
    }

    /// The next batch; None at the end of a one-pass loader.
    pub fn next_batch(&mut self) -> Option<Result<Batch>> {
        let b = self.rx.recv().ok()?;
        self.position += 1;
        Some(b)
    }

    /// Batches handed out so far (including those skipped by `start`).
    pub fn position(&self) -> u64 {
        self.position
    }

    pub fn dataset_len(&self) -> usize {
        self.len
    }
}

fn make_batch(ds: &Dataset, spec: &LoaderSpec, stream: &Stream, jobs: &[(u64, usize)]) -> Result<Batch> {
    let samples: Vec<_> = jobs
        .par_iter()
        .map(|&(k, idx)| {
            let s = ds.load(idx)?;
            let mut rng = stream.rng(k);
            let label = if spec.labels { s.label.as_ref() } else { None };
            let (img, lbl) = spec.augment.apply(&mut rng, &s.image, if spec.keep_label_size { None } else { label });
            let lbl = if spec.keep_label_size { label.cloned() } else { lbl };
            let mut x = vec![0.0f32; 3 * (img.width() * img.height()) as usize];
            spec.normalize.apply(&img, &mut x);
            Ok((s.name, idx, img.dimensions(), x, lbl))
        })
        .collect::<Result<Vec<_>>>()?;
    let (w, h) = samples[0].2;
    if let Some(other) = samples.iter().find(|s| s.2 != (w, h)) {
        return Err(crate::error::Error::format(
            &ds.items[other.1].image,
            format!(
                "image is {}x{}, other images of the batch are {w}x{h}: set a resize or crop size",
                other.2 .0, other.2 .1
            ),
        ));
    }
    let mut images = Vec::with_capacity(samples.len() * 3 * (w * h) as usize);
    let mut labels = spec.labels.then(Vec::new);
    let mut names = Vec::new();
    let mut indices = Vec::new();
    for (name, idx, _, x, lbl) in samples {
        images.extend_from_slice(&x);
        if let Some(ls) = labels.as_mut() {
            let l = lbl.unwrap_or_else(|| image::GrayImage::from_pixel(w, h, image::Luma([IGNORE])));
            ls.push((l.width(), l.height(), l.into_raw()));
        }
        names.push(name);
        indices.push(idx);
    }
    Ok(Batch { n: names.len(), h: h as usize, w: w as usize, images, labels, names, indices })
}
