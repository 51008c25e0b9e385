#!/usr/bin/env python3
"""Write tiny PyTorch reference fixtures for the segda Rust tests.

Run from anywhere (paths are resolved relative to the repository root):

    /work/venv/bin/python scripts/make_fixtures.py

Needs torch 2.x and safetensors (no torchvision). Everything runs on the CPU
in float32 with a single thread and fixed seeds, so the output is reproducible
on a given torch build. See tests/fixtures/README.md for the file contents.

Networks
  A. resnet_tiny    : DeepLab-v2 ResNet, AdaptSegNet `deeplab_multi.py` naming
                      (base width 8, Bottleneck x [1, 1, 1, 1], ASPP-v2 heads
                      layer5 (aux, on layer3) and layer6 (main, on layer4)).
  B. mobilenet_tiny : torchvision `mobilenet_v2` naming, width_mult 0.25,
                      output stride 8 (dilated), features.0..17, ASPP-v2 heads
                      `head` (main, on features.17) / `aux_head` (features.13).

NOTE: the ASPP-v2 head here sums ALL FOUR branches. The original AdaptSegNet
Classifier_Module has its `return out` inside the loop and therefore only sums
branches 0 and 1; we deliberately do not replicate that bug.
"""

import json
import os
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(REPO, "tests", "fixtures")

NUM_CLASSES = 19
IGNORE = 255
IN_SHAPE = (2, 3, 65, 97)
ASPP_DILATIONS = (6, 12, 18, 24)
AUX_WEIGHT = 0.1
LR_BACKBONE = 0.01
LR_HEAD = 0.1
MOMENTUM = 0.9
WEIGHT_DECAY = 5e-4


# ----------------------------------------------------------------------------
# A. DeepLab-v2 ResNet (AdaptSegNet deeplab_multi.py)
# ----------------------------------------------------------------------------
class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, inplanes, planes, stride=1, dilation=1, downsample=None):
        super().__init__()
        # Caffe style: the stride sits on the first 1x1 conv.
        self.conv1 = nn.Conv2d(inplanes, planes, 1, stride=stride, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=dilation,
                               dilation=dilation, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x):
        residual = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        if self.downsample is not None:
            residual = self.downsample(x)
        return self.relu(out + residual)


class ClassifierModule(nn.Module):
    """ASPP-v2: sum of four dilated 3x3 convs (AdaptSegNet naming)."""

    def __init__(self, cin, num_classes=NUM_CLASSES, dilations=ASPP_DILATIONS):
        super().__init__()
        self.conv2d_list = nn.ModuleList(
            nn.Conv2d(cin, num_classes, 3, stride=1, padding=d, dilation=d, bias=True)
            for d in dilations)

    def forward(self, x):
        out = self.conv2d_list[0](x)
        for conv in self.conv2d_list[1:]:
            out = out + conv(x)
        return out


class ResNetMulti(nn.Module):
    def __init__(self, width=8, layers=(1, 1, 1, 1), num_classes=NUM_CLASSES):
        super().__init__()
        self.inplanes = width
        self.conv1 = nn.Conv2d(3, width, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1, ceil_mode=True)
        self.layer1 = self._make_layer(width, layers[0])
        self.layer2 = self._make_layer(2 * width, layers[1], stride=2)
        self.layer3 = self._make_layer(4 * width, layers[2], stride=1, dilation=2)
        self.layer4 = self._make_layer(8 * width, layers[3], stride=1, dilation=4)
        self.layer5 = ClassifierModule(4 * width * 4, num_classes)
        self.layer6 = ClassifierModule(8 * width * 4, num_classes)

    def _make_layer(self, planes, blocks, stride=1, dilation=1):
        downsample = None
        if (stride != 1 or self.inplanes != planes * Bottleneck.expansion
                or dilation == 2 or dilation == 4):
            downsample = nn.Sequential(
                nn.Conv2d(self.inplanes, planes * 4, 1, stride=stride, bias=False),
                nn.BatchNorm2d(planes * 4))
        layers = [Bottleneck(self.inplanes, planes, stride, dilation, downsample)]
        self.inplanes = planes * 4
        for _ in range(1, blocks):
            layers.append(Bottleneck(self.inplanes, planes, dilation=dilation))
        return nn.Sequential(*layers)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer2(self.layer1(x))
        x = self.layer3(x)
        aux = self.layer5(x)
        main = self.layer6(self.layer4(x))
        return main, aux

    def param_groups(self):
        head_mods = (self.layer5, self.layer6)
        head = [p for m in head_mods for p in m.parameters() if p.requires_grad]
        head_ids = {id(p) for p in head}
        backbone = [p for p in self.parameters() if p.requires_grad and id(p) not in head_ids]
        return backbone, head


# ----------------------------------------------------------------------------
# B. DeepLab MobileNetV2 (torchvision mobilenet_v2 naming), output stride 8
# ----------------------------------------------------------------------------
def make_divisible(v, divisor=8, min_value=None):
    if min_value is None:
        min_value = divisor
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return new_v


class ConvBNReLU6(nn.Sequential):
    """torchvision ConvBNReLU / Conv2dNormActivation: keys .0 (conv), .1 (bn)."""

    def __init__(self, cin, cout, kernel=3, stride=1, groups=1, dilation=1):
        padding = (kernel - 1) // 2 * dilation
        super().__init__(
            nn.Conv2d(cin, cout, kernel, stride, padding, dilation=dilation,
                      groups=groups, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU6(inplace=True))


class InvertedResidual(nn.Module):
    def __init__(self, cin, cout, stride, expand_ratio, dilation=1):
        super().__init__()
        hidden = int(round(cin * expand_ratio))
        self.use_res_connect = stride == 1 and cin == cout
        layers = []
        if expand_ratio != 1:
            layers.append(ConvBNReLU6(cin, hidden, kernel=1))
        layers += [
            ConvBNReLU6(hidden, hidden, kernel=3, stride=stride, groups=hidden,
                        dilation=dilation),
            nn.Conv2d(hidden, cout, 1, 1, 0, bias=False),
            nn.BatchNorm2d(cout),
        ]
        self.conv = nn.Sequential(*layers)

    def forward(self, x):
        if self.use_res_connect:
            return x + self.conv(x)
        return self.conv(x)


class AsppHead(nn.Module):
    """ASPP-v2 with keys `convs.{i}`; sum of all four branches."""

    def __init__(self, cin, num_classes=NUM_CLASSES, dilations=ASPP_DILATIONS):
        super().__init__()
        self.convs = nn.ModuleList(
            nn.Conv2d(cin, num_classes, 3, padding=d, dilation=d, bias=True)
            for d in dilations)

    def forward(self, x):
        out = self.convs[0](x)
        for conv in self.convs[1:]:
            out = out + conv(x)
        return out


MBV2_SETTINGS = [  # t, c, n, s
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
]


class MobileNetV2DeepLab(nn.Module):
    AUX_INDEX = 13  # output of features.13 (end of the 96-channel stage)

    def __init__(self, width_mult=0.25, output_stride=8, num_classes=NUM_CLASSES):
        super().__init__()
        cin = make_divisible(32 * width_mult, 8)
        features = [ConvBNReLU6(3, cin, kernel=3, stride=2)]
        current_stride, dilation = 2, 1
        self.block_configs = []  # (index, cin, cout, t, stride, dilation) for the README
        for t, c, n, s in MBV2_SETTINGS:
            cout = make_divisible(c * width_mult, 8)
            stage_stride = s
            if s > 1:
                if current_stride >= output_stride:
                    dilation *= s
                    stage_stride = 1
                else:
                    current_stride *= s
            for i in range(n):
                stride = stage_stride if i == 0 else 1
                self.block_configs.append((len(features), cin, cout, t, stride, dilation))
                features.append(InvertedResidual(cin, cout, stride, t, dilation))
                cin = cout
        self.features = nn.Sequential(*features)  # features.0 .. features.17
        aux_cin = self.block_configs[self.AUX_INDEX - 1][2]
        self.head = AsppHead(cin, num_classes)
        self.aux_head = AsppHead(aux_cin, num_classes)

    def forward(self, x):
        aux_feat = None
        for i, f in enumerate(self.features):
            x = f(x)
            if i == self.AUX_INDEX:
                aux_feat = x
        return self.head(x), self.aux_head(aux_feat)

    def param_groups(self):
        head_mods = (self.head, self.aux_head)
        head = [p for m in head_mods for p in m.parameters() if p.requires_grad]
        head_ids = {id(p) for p in head}
        backbone = [p for p in self.parameters() if p.requires_grad and id(p) not in head_ids]
        return backbone, head


# ----------------------------------------------------------------------------
# Shared helpers
# ----------------------------------------------------------------------------
def init_weights(model, head_modules):
    """Non-trivial deterministic init (call right after torch.manual_seed)."""
    head_convs = {id(m) for h in head_modules for m in h.modules() if isinstance(m, nn.Conv2d)}
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.Conv2d):
                std = 0.01 if id(m) in head_convs else 0.1
                m.weight.normal_(0.0, std)
                if m.bias is not None:
                    m.bias.normal_(0.0, 0.01)
            elif isinstance(m, nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_(0.0, 0.1)
                m.running_mean.normal_(0.0, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    # Frozen BN (DeepLab protocol): affine params are not trained.
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            for p in m.parameters():
                p.requires_grad_(False)


def upsample(x, size):
    return F.interpolate(x, size=size, mode="bilinear", align_corners=True)


def seg_loss(main, aux, labels):
    size = labels.shape[-2:]
    main_up = upsample(main, size)
    aux_up = upsample(aux, size)
    loss = (F.cross_entropy(main_up, labels, ignore_index=IGNORE)
            + AUX_WEIGHT * F.cross_entropy(aux_up, labels, ignore_index=IGNORE))
    return loss, main_up


def make_data(seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(IN_SHAPE, generator=g, dtype=torch.float32)
    n, _, h, w = IN_SHAPE
    labels = torch.randint(0, NUM_CLASSES, (n, h, w), generator=g, dtype=torch.int64)
    ignore = torch.rand((n, h, w), generator=g) < 0.1
    labels[ignore] = IGNORE
    return x, labels


def clone_sd(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def build(name, ctor, head_attrs, init_seed, data_seed, after2_keys, legacy):
    torch.manual_seed(init_seed)
    model = ctor()
    init_weights(model, [getattr(model, a) for a in head_attrs])
    model.eval()

    pth = os.path.join(OUT, f"{name}.pth")
    torch.save(model.state_dict(), pth)  # default zip format
    if legacy:
        # legacy (non-zip) pickle, as torchvision's downloads are; only the stem and layer1, to
        # keep the fixture small: it tests the reader, the full file tests the numerics
        sub = {k: v for k, v in model.state_dict().items() if k.split(".")[0] in ("conv1", "bn1", "layer1")}
        torch.save(sub, os.path.join(OUT, f"{name}_legacy.pth"), _use_new_zipfile_serialization=False)
    sd0 = clone_sd(model)

    x, labels = make_data(data_seed)
    with torch.no_grad():
        main, aux = model(x)
        loss, main_up = seg_loss(main, aux, labels)

    # Two SGD steps, BN frozen (eval mode, affine params excluded).
    backbone, head = model.param_groups()
    opt = torch.optim.SGD(
        [{"params": backbone, "lr": LR_BACKBONE}, {"params": head, "lr": LR_HEAD}],
        lr=LR_BACKBONE, momentum=MOMENTUM, dampening=0, weight_decay=WEIGHT_DECAY,
        nesterov=False)
    step_losses = []
    for _ in range(2):
        opt.zero_grad(set_to_none=True)
        m_, a_ = model(x)
        l_, _ = seg_loss(m_, a_, labels)
        step_losses.append(l_.detach().clone())
        l_.backward()
        opt.step()
    assert torch.equal(step_losses[0], loss), (step_losses[0], loss)
    sd2 = model.state_dict()

    io = {
        "input": x,
        "main": main,
        "aux": aux,
        # every 8th row/column of the upsampled logits: checks align_corners over the whole
        # grid at a fraction of the size
        "main_up_sub": main_up[:, :, ::8, ::8],
        "labels": labels,
        "loss": loss.reshape(1),
        "loss_step2": step_losses[1].reshape(1),
    }
    for k in after2_keys:
        io["after2." + k] = sd2[k].detach().clone()
    io = {k: v.contiguous() for k, v in io.items()}
    save_file(io, os.path.join(OUT, f"{name}_io.safetensors"),
              # a single metadata entry: safetensors writes a multi-key
              # metadata map in random order, which breaks byte-reproducibility
              metadata={"generator": f"scripts/make_fixtures.py {name} "
                                     f"(torch {torch.__version__})"})
    os.chmod(os.path.join(OUT, f"{name}_io.safetensors"), 0o644)  # save_file writes 0600

    # ---- verification -------------------------------------------------------
    files = [pth]
    if legacy:
        leg = torch.load(os.path.join(OUT, f"{name}_legacy.pth"), map_location="cpu", weights_only=True)
        assert all(torch.equal(v, sd0[k]) for k, v in leg.items()) and len(leg) > 10
    loaded_io = load_file(os.path.join(OUT, f"{name}_io.safetensors"))
    for k, v in io.items():
        assert loaded_io[k].dtype == v.dtype and torch.equal(loaded_io[k], v), k
    for f in files:
        sd = torch.load(f, map_location="cpu", weights_only=True)
        assert list(sd.keys()) == list(sd0.keys()), f
        for k in sd0:
            assert torch.equal(sd[k], sd0[k]), (f, k)
        fresh = ctor()
        fresh.load_state_dict(sd, strict=True)
        fresh.eval()
        with torch.no_grad():
            m2, a2 = fresh(loaded_io["input"])
            l2, mu2 = seg_loss(m2, a2, loaded_io["labels"])
        assert torch.equal(m2, loaded_io["main"]), f
        assert torch.equal(a2, loaded_io["aux"]), f
        assert torch.equal(mu2[:, :, ::8, ::8], loaded_io["main_up_sub"]), f
        assert torch.equal(l2.reshape(1), loaded_io["loss"]), f
        print(f"  verified {os.path.relpath(f, REPO)}: reload + forward bit-exact")
    # the after2 tensors really changed (or, for BN, really did not)
    for k in after2_keys:
        changed = not torch.equal(sd2[k], sd0[k])
        print(f"  after2.{k}: {tuple(sd2[k].shape)} changed={changed}")

    n_params = sum(p.numel() for p in model.parameters())
    print(f"{name}: params={n_params} main={tuple(main.shape)} aux={tuple(aux.shape)} "
          f"loss={loss.item():.6f} loss_step2={step_losses[1].item():.6f} "
          f"|main|max={main.abs().max().item():.4g} |aux|max={aux.abs().max().item():.4g} "
          f"ignored={(labels == IGNORE).sum().item()}/{labels.numel()}")
    return model


def focal_fixture():
    """LSE's target loss, as its reference code computes it for VGG16-FCN8s: per-pixel CE l over
    valid pixels, mean(l) + beta * mean(l * (1 - exp(-l)) ** gamma), beta 0.1, gamma 3."""
    g = torch.Generator().manual_seed(7)
    logits = torch.randn(2, 5, 3, 4, generator=g) * 2.0
    labels = torch.randint(0, 5, (2, 3, 4), generator=g)
    labels[0, 0, :2] = IGNORE
    l = F.cross_entropy(logits, labels, ignore_index=IGNORE, reduction="none")[labels != IGNORE]
    loss = l.mean() + 0.1 * (l * (1 - torch.exp(-l)) ** 3).mean()
    out = {"shape": list(logits.shape), "logits": [round(v, 7) for v in logits.flatten().tolist()],
           "labels": labels.flatten().tolist(), "beta": 0.1, "gamma": 3.0, "loss": loss.item()}
    with open(os.path.join(OUT, "focal.json"), "w") as f:
        json.dump(out, f, indent=1)
    print(f"focal.json: loss {loss.item():.7f}")


def main():
    focal_fixture()
    torch.set_num_threads(1)
    torch.set_default_dtype(torch.float32)
    os.makedirs(OUT, exist_ok=True)

    build(
        "resnet_tiny", lambda: ResNetMulti(width=8, layers=(1, 1, 1, 1)),
        head_attrs=("layer5", "layer6"), init_seed=0, data_seed=1,
        after2_keys=[
            "conv1.weight",
            "bn1.weight",  # frozen: must equal the initial value
            "layer1.0.conv1.weight",
            "layer3.0.conv2.weight",
            "layer4.0.downsample.0.weight",
            "layer5.conv2d_list.0.bias",
            "layer6.conv2d_list.0.weight",
            "layer6.conv2d_list.3.bias",
        ],
        legacy=True)

    mb = build(
        "mobilenet_tiny", lambda: MobileNetV2DeepLab(width_mult=0.25, output_stride=8),
        head_attrs=("head", "aux_head"), init_seed=2, data_seed=3,
        after2_keys=[
            "features.0.0.weight",
            "features.0.1.weight",  # frozen BN: must equal the initial value
            "features.1.conv.0.0.weight",
            "features.5.conv.1.0.weight",
            "features.12.conv.1.0.weight",
            "features.17.conv.2.weight",
            "head.convs.0.weight",
            "head.convs.3.bias",
            "aux_head.convs.1.weight",
        ],
        legacy=False)
    print("mobilenet_tiny blocks (index, cin, cout, t, stride, dilation):")
    for cfg in mb.block_configs:
        print("  ", cfg)

    print("\nfixture sizes:")
    total = 0
    for f in sorted(os.listdir(OUT)):
        if f.endswith((".pth", ".safetensors")):
            sz = os.path.getsize(os.path.join(OUT, f))
            total += sz
            print(f"  {sz:>10,d}  tests/fixtures/{f}")
    print(f"  {total:>10,d}  total")


if __name__ == "__main__":
    sys.exit(main())
