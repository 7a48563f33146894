"""How strongly each loss term pulls on its network: gradient norms of R's and D's loss terms at trained weights.

    python tools/loss_balance.py RUN_OR_MODEL [--records ../shared/data/records.json] [--source track1]
        [--batches 3] [--batch-size 8]

RUN_OR_MODEL is a run folder (or a bundled model name) holding ``reconstruction.safetensors`` and
``degradation.safetensors``. On a few training batches it prints, for every term of loss_R and loss_D
(with its weight), the loss value and the norm of its gradient with respect to the network it trains.
A term whose gradient is a hundredth of the others' does not steer training: this is how we found that
R's official L1 weight (0.01) leaves R's colours to the colour-blind VGG54 content term (README,
"Colour drift"). Discriminator terms are left out (discriminators are not saved with the models).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
import torch.nn.functional as F

from ddnsr.data import load_records, make_unpaired
from ddnsr.losses import color_distance
from ddnsr.modelfile import load_model
from ddnsr.nets import VGG19Features


def grad_norm(loss: torch.Tensor, net: torch.nn.Module) -> float:
    grads = torch.autograd.grad(loss, list(net.parameters()), retain_graph=True, allow_unused=True)
    return float(torch.sqrt(sum((g.float() ** 2).sum() for g in grads if g is not None)))


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model")
    ap.add_argument("--records", default="../shared/data/records.json")
    ap.add_argument("--data-root")
    ap.add_argument("--source", default="track1")
    ap.add_argument("--target", default="div2k")
    ap.add_argument("--batches", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=8)
    args = ap.parse_args(argv)
    folder = Path(args.model)
    if folder.is_dir():
        R, D = load_model(folder / "reconstruction.safetensors"), load_model(folder / "degradation.safetensors")
    else:
        R, D = load_model(args.model), load_model(args.model, kind="degradation")
    R.train()
    D.train()
    vgg = VGG19Features(("block5_conv4", "block3_conv4", "block2_conv2"))
    records = Path(args.records)
    stream = make_unpaired(load_records(records), Path(args.data_root) if args.data_root else records.parent,
                           args.source, args.target, batch_size=args.batch_size, lr_crop=32, crops_per_image=16,
                           shuffle_buffer=256, num_workers=0, seed=1)
    rows: dict[str, list[tuple[float, float]]] = {}
    torch.manual_seed(0)
    for _, (x, y) in zip(range(args.batches), stream, strict=False):
        y_lr = D(y, x)
        y_sr = R(y_lr.detach())
        f_y, f_sr = vgg(torch.cat((y, y_sr)))["block5_conv4"].chunk(2)
        x_cyc = D(R(x).detach(), x)
        f_pool, f_ylr = vgg(torch.cat((F.avg_pool2d(y, 4), y_lr)))["block3_conv4"].chunk(2)
        f_x, f_cyc = vgg(torch.cat((x, x_cyc)))["block2_conv2"].chunk(2)
        terms = {
            ("R", "content_up (VGG54), weight 1"): F.mse_loss(f_sr, f_y),
            ("R", "cycle_up (L1), weight 0.01"): 0.01 * F.l1_loss(y_sr, y),
            ("R", "cycle_up (L1), weight 1"): F.l1_loss(y_sr, y),
            ("D", "content_down (VGG34), weight 0.1"): 0.1 * F.mse_loss(f_ylr, f_pool),
            ("D", "cycle_down (VGG22), weight 10"): 10 * F.mse_loss(f_cyc, f_x),
            ("D", "color_down, weight 1"): color_distance(y_lr, y),
        }
        for (net, name), loss in terms.items():
            rows.setdefault(f"{net}: {name}", []).append(
                (float(loss.detach()), grad_norm(loss, R if net == "R" else D)))
    print(f"{'term':44s} {'value':>10s} {'|gradient|':>12s}")
    for name, vals in rows.items():
        print(f"{name:44s} {sum(v for v, _ in vals) / len(vals):10.4f} {sum(g for _, g in vals) / len(vals):12.4f}")


if __name__ == "__main__":
    main()
