//! Data-parallel training over several CUDA devices with burn's own mechanism (no collectives of
//! ours): a `DistributedContext` over the devices, the network's parameters marked distributed,
//! so each `backward()` all-reduces (averages) their gradients across the devices before it
//! returns, and one optimiser per device applies the same averaged gradients to the same weights:
//! the replicas stay identical.
//!
//! The first device (rank 0) is the training loop's own: it loads the data, logs, evaluates and
//! checkpoints. Every other device runs in a thread of its own, receives its slice of each batch,
//! runs the same iteration and answers with its scalars; the loop waits for every answer before
//! the next iteration, which also keeps one iteration's all-reduce from overlapping the next's.
//!
//! A method's own modules (discriminators, heads) are not distributed: each device trains its own
//! on its slice, and rank 0's are checkpointed (and loaded by every device on resume). Extra data
//! streams of a method (ASS's labelled target images, LSE's rounds) give every device the same
//! batches. burn 0.22.1 implements the all-reduce only on CUDA (NCCL).
use super::checkpoint;
use super::step::{iterate, Learner, Outcome};
use crate::config::Config;
use crate::data::loader::Batch;
use crate::error::{Error, Result};
use crate::methods::{self, Before, DomainBatch, Method, Needs};
use crate::model::SegNet;
use crate::optim::{self, ModuleOptimizer};
use burn::module::{Module, ModuleMapper, Param};
use burn::prelude::*;
use burn::tensor::distributed::{DistributedConfig, DistributedContext, ReduceOperation};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::thread::JoinHandle;

/// Named scalars of one replica's iteration.
type Scalars = Vec<(String, f64)>;

/// Marks every float parameter as distributed (keyed by its `ParamId`, equal across replicas
/// that were cloned from one network).
struct Distribute;

impl ModuleMapper for Distribute {
    fn map_float<const D: usize>(&mut self, p: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let (id, tensor, mapper) = p.consume();
        Param::from_mapped_value(id, tensor.set_distributed(id), mapper)
    }
}

/// One iteration's work for a replica: the iteration number and the whole batches (each replica
/// takes its own slice).
enum Job {
    Step { it: u64, source: Option<Batch>, target: Option<Batch> },
}

type Answer = Result<std::result::Result<Vec<(String, f64)>, (String, f64)>>;

struct Worker {
    jobs: Sender<Job>,
    answers: Receiver<Answer>,
    thread: JoinHandle<()>,
}

/// The devices after the first, each training a replica of the network in its own thread.
pub struct Replicas {
    workers: Vec<Worker>,
    world: usize,
    // dropped last: closes burn's synchronisation server once the workers are gone
    _context: DistributedContext,
}

/// Checks what data-parallel training needs before anything starts: CUDA devices (the only
/// backend with an all-reduce in burn 0.22.1) and a batch that splits evenly over them.
pub fn check(specs: &[String], batch: usize) -> Result<()> {
    if let Some(s) = specs.iter().find(|s| !s.starts_with("cuda")) {
        return Err(Error::Other(format!(
            "--devices: `{s}` is not a CUDA device; data-parallel training needs CUDA (burn 0.22.1 implements its all-reduce only through NCCL)"
        )));
    }
    if !batch.is_multiple_of(specs.len()) {
        return Err(Error::config(
            "train.batch",
            format!("{batch} images do not split evenly over {} devices", specs.len()),
        ));
    }
    Ok(())
}

/// Slice `rank` of `world` of a batch (batch sizes are checked to split evenly).
pub fn slice(b: &Batch, rank: usize, world: usize) -> Batch {
    let n = b.n / world;
    let per_image = 3 * b.h * b.w;
    let range = rank * n..(rank + 1) * n;
    Batch {
        n,
        h: b.h,
        w: b.w,
        images: b.images[range.start * per_image..range.end * per_image].to_vec(),
        labels: b.labels.as_ref().map(|l| l[range.clone()].to_vec()),
        names: b.names[range.clone()].to_vec(),
        indices: b.indices[range].to_vec(),
    }
}

impl Replicas {
    /// Starts the synchronisation over `devices` (rank 0 first) and a replica of `net` on every
    /// device after the first; returns rank 0's network, marked distributed. `resume` is the
    /// checkpoint whose optimiser and method states every replica loads.
    pub fn start(
        net: SegNet,
        cfg: &Config,
        devices: &[Device],
        run: &Path,
        resume: Option<&Path>,
    ) -> Result<(SegNet, Replicas)> {
        let autodiff: Vec<Device> = devices.iter().map(|d| d.clone().autodiff()).collect();
        let context =
            DistributedContext::init(autodiff.clone(), DistributedConfig { all_reduce_op: ReduceOperation::Mean });
        let net = crate::nn::layers::materialize(net);
        let mut workers = Vec::new();
        for (rank, device) in autodiff.iter().enumerate().skip(1) {
            let replica = net.clone().fork(device).map(&mut Distribute);
            let (jobs, inbox) = channel::<Job>();
            let (outbox, answers) = channel::<Answer>();
            let replica = Replica {
                net: replica,
                cfg: cfg.clone(),
                device: device.clone(),
                rank,
                world: devices.len(),
                scratch: run.join("replicas").join(format!("rank{rank}")),
                resume: resume.map(Path::to_path_buf),
            };
            let thread = std::thread::Builder::new()
                .name(format!("segda-rank{rank}"))
                .spawn(move || replica.serve(inbox, outbox))
                .map_err(|e| Error::Other(format!("cannot start the thread of device {rank}: {e}")))?;
            workers.push(Worker { jobs, answers, thread });
        }
        Ok((net.map(&mut Distribute), Replicas { workers, world: devices.len(), _context: context }))
    }

    /// How many devices share each batch.
    pub fn world(&self) -> usize {
        self.world
    }

    /// Hands iteration `it`'s batches to every replica (call before rank 0's own step).
    pub fn send(&self, it: u64, source: Option<&Batch>, target: Option<&Batch>) -> Result<()> {
        for (k, w) in self.workers.iter().enumerate() {
            w.jobs
                .send(Job::Step { it, source: source.cloned(), target: target.cloned() })
                .map_err(|_| Error::Other(format!("device {} stopped", k + 1)))?;
        }
        Ok(())
    }

    /// Every replica's scalars for the iteration last sent, or the first failure.
    pub fn collect(&self) -> Result<std::result::Result<Vec<Scalars>, (String, f64)>> {
        let mut all = Vec::new();
        for (k, w) in self.workers.iter().enumerate() {
            match w
                .answers
                .recv()
                .map_err(|_| Error::Other(format!("device {} stopped without an answer", k + 1)))??
            {
                Ok(s) => all.push(s),
                Err(bad) => return Ok(Err(bad)),
            }
        }
        Ok(Ok(all))
    }

    /// Waits for every replica's thread to end (their job channels are closed first).
    pub fn finish(self) {
        let Replicas { workers, _context, .. } = self;
        let threads: Vec<JoinHandle<()>> = workers.into_iter().map(|w| w.thread).collect();
        for t in threads {
            let _ = t.join();
        }
    }
}

/// The mean of each scalar over the replicas (rank 0's first).
pub fn mean(ranks: &[Vec<(String, f64)>]) -> Vec<(String, f64)> {
    let n = ranks.len() as f64;
    ranks[0]
        .iter()
        .map(|(k, _)| {
            (k.clone(), ranks.iter().filter_map(|r| r.iter().find(|(rk, _)| rk == k).map(|x| x.1)).sum::<f64>() / n)
        })
        .collect()
}

/// A device after the first, with what its thread needs.
struct Replica {
    net: SegNet,
    cfg: Config,
    device: Device,
    rank: usize,
    world: usize,
    /// Where its methods keep their artefacts (apart from rank 0's run directory).
    scratch: PathBuf,
    /// The checkpoint whose optimiser and method states it starts from.
    resume: Option<PathBuf>,
}

impl Replica {
    /// Answers each job with the iteration's scalars until the jobs end or an iteration fails.
    fn serve(self, inbox: Receiver<Job>, outbox: Sender<Answer>) {
        let Replica { mut net, cfg, device, rank, world, scratch, resume } = self;
        let setup = || -> Result<(Vec<Box<dyn Method>>, ModuleOptimizer)> {
            std::fs::create_dir_all(&scratch).map_err(|e| Error::io(&scratch, e))?;
            let mut methods = methods::build(&cfg, &device)?;
            let mut optim = optim::sgd(&cfg.train);
            if let Some(ck) = &resume {
                optim = checkpoint::load_optim(optim, ck)?;
                for m in methods.iter_mut() {
                    m.load(&ck.join("methods").join(m.name()))?;
                }
            }
            Ok((methods, optim))
        };
        let (mut methods, mut optim) = match setup() {
            Ok(s) => s,
            Err(e) => {
                let _ = outbox.send(Err(e));
                return;
            }
        };
        let needs = methods.iter().fold(Needs::default(), |a, m| a.union(m.needs()));
        let seed = cfg.train.seed;
        // what methods run inference on (the replica's device without autodiff)
        let plain = device.clone().inner();
        while let Ok(Job::Step { it, source, target }) = inbox.recv() {
            let mut step = || -> Answer {
                device.seed((seed ^ it.wrapping_mul(0x9E37_79B9)).wrapping_add(rank as u64));
                for m in methods.iter_mut() {
                    m.before_step(&Before { it, net: &net, run: &scratch, device: &plain, cfg: &cfg })?;
                }
                let src = source.as_ref().map(|b| DomainBatch::upload(slice(b, rank, world), &device));
                let tgt = target.as_ref().map(|b| DomainBatch::upload(slice(b, rank, world), &device));
                let owned = net.clone();
                match iterate(
                    owned,
                    &mut Learner { optim: &mut optim, methods: &mut methods, needs, cfg: &cfg },
                    it,
                    src.as_ref(),
                    tgt.as_ref(),
                )? {
                    Outcome::Stepped { net: n, scalars } => {
                        net = n;
                        Ok(Ok(scalars))
                    }
                    Outcome::NonFinite { term, value } => Ok(Err((term, value))),
                }
            };
            let answer = step();
            let failed = !matches!(answer, Ok(Ok(_)));
            if outbox.send(answer).is_err() || failed {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(n: usize) -> Batch {
        let (h, w) = (2, 3);
        Batch {
            n,
            h,
            w,
            images: (0..n * 3 * h * w).map(|v| v as f32).collect(),
            labels: Some((0..n).map(|k| (w as u32, h as u32, vec![k as u8; h * w])).collect()),
            names: (0..n).map(|k| format!("img{k}")).collect(),
            indices: (0..n).collect(),
        }
    }

    #[test]
    fn slices_partition_the_batch_in_order() {
        let b = batch(4);
        let parts: Vec<Batch> = (0..2).map(|r| slice(&b, r, 2)).collect();
        assert_eq!(parts[0].names, ["img0", "img1"]);
        assert_eq!(parts[1].indices, [2, 3]);
        assert_eq!([parts[0].images.clone(), parts[1].images.clone()].concat(), b.images);
        assert_eq!(parts[1].labels.as_ref().unwrap()[0].2[0], 2);
    }

    #[test]
    fn only_cuda_devices_and_even_batches_are_accepted() {
        let specs = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert!(check(&specs(&["cuda:0", "cuda:1"]), 4).is_ok());
        let e = check(&specs(&["cuda:0", "wgpu:0"]), 4).unwrap_err().to_string();
        assert!(e.contains("wgpu:0") && e.contains("NCCL"), "{e}");
        let e = check(&specs(&["cuda:0", "cuda:1"]), 3).unwrap_err().to_string();
        assert!(e.contains("train.batch"), "{e}");
    }

    #[test]
    fn scalars_are_averaged_over_the_replicas() {
        let m = mean(&[vec![("a".into(), 1.0), ("b".into(), 4.0)], vec![("a".into(), 3.0), ("b".into(), 0.0)]]);
        assert_eq!(m, vec![("a".to_string(), 2.0), ("b".to_string(), 2.0)]);
    }
}
