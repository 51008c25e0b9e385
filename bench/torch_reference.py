#!/usr/bin/env python3
"""Time, in PyTorch, the same networks and steps as `segda bench` (src/bench.rs).

The networks are the parity-tested definitions of scripts/make_fixtures.py at full size:
DeepLab-v2 ResNet-101 (Caffe stride, dilated OS 8, ASPP-v2 x4 on layer4 and layer3) and the
MobileNetV2 DeepLab (OS 8, ASPP-v2 on features.17 and features.13). BatchNorm frozen (running
statistics, no affine training) as segda's `bn = "frozen"`. Steps:

  train  source-only: forward, CE(main) + 0.1 CE(aux) at input size, backward, SGD
         (momentum 0.9, weight decay 5e-4, heads 10x lr)
  adapt  AdaptSegNet: + target forward, fooling terms of two output-space discriminators
         (k4 s2, 64..512) on softmax maps (0.001 main, 0.0002 aux), then one Adam step of each
         discriminator on the detached maps
  apoda  APODA: source and target forward; a one-step feature attack on each (classifier CE or
         entropy + pointwise feature discriminator), CE on perturbed source features, KL between
         clean and perturbed target predictions, feature fooling term; discriminator Adam step
  infer  eval forward, upsample, argmax

Usage: python bench/torch_reference.py [--net mobilenet_v2 resnet101] [--step ...] [--threads N]
       [--batch 1] [--train-size 256x512] [--infer-size 512x1024] [--warmup 2] [--iters 5]
       [--json out.json] [--device cpu|cuda]
"""
import argparse
import json
import os
import statistics
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "scripts"))
from make_fixtures import MobileNetV2DeepLab, ResNetMulti  # noqa: E402

NUM_CLASSES, IGNORE = 19, 255


def frozen_bn(model):
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.eval()
            for p in m.parameters():
                p.requires_grad_(False)


def build(net):
    if net == "mobilenet_v2":
        m = MobileNetV2DeepLab(width_mult=1.0, output_stride=8)
        feat_ch = 320
    else:
        m = ResNetMulti(width=64, layers=(3, 4, 23, 3))
        feat_ch = 2048
    return m, feat_ch


def features_and_heads(model):
    """(features(x) -> (main_feat, aux_feat), head_main, head_aux) for either network."""
    if isinstance(model, MobileNetV2DeepLab):
        def feats(x):
            aux = None
            for i, f in enumerate(model.features):
                x = f(x)
                if i == model.AUX_INDEX:
                    aux = x
            return x, aux
        return feats, model.head, model.aux_head

    def feats(x):
        x = model.maxpool(model.relu(model.bn1(model.conv1(x))))
        x = model.layer3(model.layer2(model.layer1(x)))
        return model.layer4(x), x
    return feats, model.layer6, model.layer5


class Discriminator(nn.Module):
    """Convolutions with LeakyReLU(0.2) between: AdaptSegNet's (k4 s2, 64..512) or pointwise (1x1)."""

    def __init__(self, channels, kernel, stride, pad):
        super().__init__()
        self.convs = nn.ModuleList(nn.Conv2d(a, b, kernel, stride, pad) for a, b in zip(channels, channels[1:]))

    def forward(self, x):
        for i, c in enumerate(self.convs):
            x = c(x)
            if i + 1 < len(self.convs):
                x = F.leaky_relu(x, 0.2)
        return x


def fc_discriminator(cin, ndf=64):
    return Discriminator([cin, ndf, ndf * 2, ndf * 4, ndf * 8, 1], 4, 2, 1)


def pointwise(cin, widths=(256, 128)):
    return Discriminator([cin, *widths, 1], 1, 1, 0)


def up(x, size):
    return F.interpolate(x, size=size, mode="bilinear", align_corners=True)


def bce(logits, label):
    return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, label))


def entropy(prob):
    n, c, h, w = prob.shape
    return -(prob * torch.log(prob + 1e-30)).sum() / (n * h * w * torch.log(torch.tensor(float(c))))


def sgd(model, lr=2.5e-4):
    bb, head = model.param_groups()
    return torch.optim.SGD([{"params": bb, "lr": lr}, {"params": head, "lr": 10 * lr}],
                           lr=lr, momentum=0.9, weight_decay=5e-4)


def adam(mod):
    return torch.optim.Adam(mod.parameters(), lr=1e-4, betas=(0.9, 0.99), eps=1e-8)


def batch(n, size, seed, device):
    h, w = size
    i = torch.arange(n * 3 * h * w, dtype=torch.float32)
    x = (torch.sin(i * 0.001 + seed) * 50.0).reshape(n, 3, h, w)
    j = torch.arange(n * h * w)
    y = ((j // w // 16 + j % w // 16) % NUM_CLASSES)
    y[j % 31 == 0] = IGNORE
    return x.to(device), y.reshape(n, h, w).to(device)


def make_step(kind, model, feat_ch, size, device, n):
    feats, head, aux_head = features_and_heads(model)
    opt = sgd(model)
    xs, ys = batch(n, size, 0.0, device)
    xt, _ = batch(n, size, 1.0, device)

    def seg(main, aux, y):
        return F.cross_entropy(up(main, size), y, ignore_index=IGNORE) + 0.1 * F.cross_entropy(up(aux, size), y, ignore_index=IGNORE)

    if kind == "train":
        def step():
            opt.zero_grad(set_to_none=True)
            main, aux = model(xs)
            seg(main, aux, ys).backward()
            opt.step()
        return step

    if kind == "adapt":
        ds = [fc_discriminator(NUM_CLASSES).to(device) for _ in range(2)]
        dopt = [adam(d) for d in ds]

        def step():
            opt.zero_grad(set_to_none=True)
            s_main, s_aux = model(xs)
            t_main, t_aux = model(xt)
            loss = seg(s_main, s_aux, ys)
            maps_s = [F.softmax(up(s_main, size), 1), F.softmax(up(s_aux, size), 1)]
            maps_t = [F.softmax(up(t_main, size), 1), F.softmax(up(t_aux, size), 1)]
            for d in ds:
                d.requires_grad_(False)
            for d, mt, lam in zip(ds, maps_t, (0.001, 0.0002)):
                loss = loss + lam * bce(d(mt), 0.0)
            loss.backward()
            opt.step()
            for d, o, ms, mt in zip(ds, dopt, maps_s, maps_t):
                d.requires_grad_(True)
                o.zero_grad(set_to_none=True)
                (0.5 * (bce(d(ms.detach()), 0.0) + bce(d(mt.detach()), 1.0))).backward()
                o.step()
        return step

    if kind == "apoda":
        d = pointwise(feat_ch).to(device)
        dopt = adam(d)

        def attack(f, y):
            f = f.detach().requires_grad_(True)
            d.requires_grad_(False)
            logits = up(head(f), size)
            if y is not None:
                obj = F.cross_entropy(logits, y, ignore_index=IGNORE) + bce(d(f), 1.0)
            else:
                obj = entropy(F.softmax(logits, 1)) + bce(d(f), 0.0)
            (g,) = torch.autograd.grad(obj, f)
            return (g / (g.pow(2).sum(1, keepdim=True).sqrt() + 1e-12)).detach()

        def step():
            opt.zero_grad(set_to_none=True)
            fs, fs_aux = feats(xs)
            ft, ft_aux = feats(xt)
            loss = seg(head(fs), aux_head(fs_aux), ys)
            t_up = up(head(ft), size)
            dels = attack(fs, ys)
            delt = attack(ft, None)
            loss = loss + F.cross_entropy(up(head(fs + dels), size), ys, ignore_index=IGNORE)
            lp = F.log_softmax(t_up, 1).detach()
            lq = F.log_softmax(up(head(ft + delt), size), 1)
            loss = loss + (lp.exp() * (lp - lq)).sum() / (n * size[0] * size[1])
            loss = loss + 0.001 * bce(d(ft), 0.0)
            loss.backward()
            opt.step()
            d.requires_grad_(True)
            dopt.zero_grad(set_to_none=True)
            fsd, ftd = fs.detach(), ft.detach()
            s_in = torch.cat([fsd, fsd + dels])
            t_in = torch.cat([ftd, ftd + delt])
            (0.5 * (bce(d(s_in), 0.0) + bce(d(t_in), 1.0))).backward()
            dopt.step()
        return step

    big, _ = batch(n, size, 0.0, device)

    def step():
        with torch.no_grad():
            main, _ = model(big)
            up(main, size).argmax(1).cpu()
    return step


def peak_rss_mib():
    try:
        for line in open("/proc/self/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        return None


def reset_peak_rss():
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--net", nargs="+", default=["mobilenet_v2", "resnet101"])
    ap.add_argument("--step", nargs="+", default=["train", "adapt", "apoda", "infer"])
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--train-size", default="256x512")
    ap.add_argument("--infer-size", default="512x1024")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--iters", type=int, default=5)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--json")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    dev = torch.device(a.device)
    if dev.type == "cuda":
        # cuDNN picks its fastest kernels per shape, as segda's backends autotune theirs
        torch.backends.cudnn.benchmark = True
    sz = lambda s: tuple(int(v) for v in s.split("x"))  # noqa: E731
    rows = []
    print(f"torch {torch.__version__} on {a.device} ({torch.get_num_threads()} threads)", file=sys.stderr)
    print(f"{'net':<13} {'step':<6} {'batch':>5} {'size':>10} {'median s':>10} {'min s':>10} {'peak MiB':>10}")
    for net in a.net:
        for kind in a.step:
            model, feat_ch = build(net)
            model = model.to(dev)
            model.train()
            frozen_bn(model)
            if kind == "infer":
                model.eval()
            size = sz(a.infer_size if kind == "infer" else a.train_size)
            reset_peak_rss()
            if dev.type == "cuda":
                torch.cuda.empty_cache()
                torch.cuda.reset_peak_memory_stats()
            step = make_step(kind, model, feat_ch, size, dev, a.batch)
            times = []
            for i in range(a.warmup + a.iters):
                t = time.perf_counter()
                step()
                if dev.type == "cuda":
                    torch.cuda.synchronize()
                if i >= a.warmup:
                    times.append(time.perf_counter() - t)
            peak = peak_rss_mib()
            row = {"net": net, "step": kind, "batch": a.batch, "size": list(size), "median_s": statistics.median(times),
                   "min_s": min(times), "peak_rss_mib": peak,
                   "device_mib": torch.cuda.max_memory_reserved() / 2**20 if dev.type == "cuda" else None}
            rows.append(row)
            print(f"{net:<13} {kind:<6} {a.batch:>5} {'x'.join(map(str, size)):>10} {row['median_s']:>10.4f} "
                  f"{row['min_s']:>10.4f} {peak if peak is None else f'{peak:.0f}':>10}", flush=True)
            del model, step
    if a.json:
        with open(a.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
